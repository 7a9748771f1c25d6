// Hangman in the browser: one websocket to a relay, failing over to the
// other relays it announces. Every piece of text that a player controls is
// inserted with textContent, never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const LETTERS = "abcdefghijklmnopqrstuvwxyz";
  const STAGES = 6; // head, body, two arms, two legs

  // ---- identity -----------------------------------------------------------
  // The player id lives in sessionStorage: one player per tab, kept across
  // reloads and relay changes. The nickname is remembered per browser.
  const randomId = (bytes) => {
    const b = new Uint8Array(bytes);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  };
  let playerId = sessionStorage.getItem("hangman.playerId");
  if (!playerId || !/^[A-Za-z0-9_-]{1,64}$/.test(playerId)) {
    newPlayerId();
  }
  function newPlayerId() {
    playerId = "p-" + randomId(9);
    sessionStorage.setItem("hangman.playerId", playerId);
  }
  let nickname = localStorage.getItem("hangman.nickname") || "";

  // A seat belongs to whoever holds its token: a secret of 192 random bits
  // this browser draws before its first join to a room, keeps in
  // localStorage per room and player (so a reload keeps the seat and its
  // score), and sends with every command as that player. Player ids are
  // public; the token is never shown, logged or sent anywhere else.
  const TOKEN = /^[A-Za-z0-9_-]{22,64}$/;
  const tokenKey = (r) => "hangman.token." + r + "." + playerId;
  function tokenFor(r) {
    let t = localStorage.getItem(tokenKey(r));
    if (!t || !TOKEN.test(t)) {
      const b = new Uint8Array(24);
      crypto.getRandomValues(b);
      t = btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
      localStorage.setItem(tokenKey(r), t);
    }
    return t;
  }
  function forgetToken(r) { localStorage.removeItem(tokenKey(r)); }

  // ---- connection ---------------------------------------------------------
  const here = location.protocol + "//" + location.host;
  let relays = [here]; // http(s) URLs, from the relays themselves
  let currentURL = here;
  let ws = null;
  let relayName = "";
  let attempt = 0;
  let reconnectTimer = 0;
  let pingTimer = 0;
  let pongTimer = 0;
  let welcomed = false;

  // Commands not yet acknowledged, by id. They are sent again, with the same
  // id, after a reconnect: the cluster applies each id at most once.
  const pending = new Map();

  // ---- views ----------------------------------------------------------------
  // "play" (the lobby or a room) or "cluster" (#/cluster).
  let view = viewFromHash();
  function viewFromHash() { return location.hash === "#/cluster" ? "cluster" : "play"; }

  // ---- game ---------------------------------------------------------------
  let room = roomFromHash();
  let joined = false; // this connection's join to the room was answered
  // spectating says the page watches the room without a seat: chosen with
  // Watch in the lobby, or an invite link opened before a nickname was
  // picked. watched says this connection's watch was answered.
  let spectating = false;
  let watched = false;
  // inGame says the game is shown (showView): the player holds a seat in
  // the room, or watches it. It outlives the connection: while the page
  // reconnects and joins again (a relay died), the game stays on screen
  // and what the player types waits among the pending commands.
  let inGame = false;
  let feedRoom = "";
  let state = null; // last state of the room
  // The room's finished rounds come in history frames of their own, when a
  // round finishes (and after the state on entering a room); a state names
  // the history it goes with in historySeq.
  let roomHistory = null;
  let spectatorCount = 0; // the room's spectators, over all relays
  let names = new Map(); // player id -> name, from states and events

  // A room's address is #/room/<name>: an invite link opens the room
  // through whichever relay serves the page. The older #room=<name> still
  // opens it.
  function roomFromHash() {
    const m = /^#(?:\/room\/|room=)([a-z0-9][a-z0-9_-]{0,31})$/.exec(location.hash);
    return m ? m[1] : "";
  }
  function roomHash(name) { return "#/room/" + name; }
  function inviteLink(name) { return location.origin + location.pathname + roomHash(name); }

  function wsURL(httpURL) {
    const u = new URL("/ws", httpURL);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    return u.toString();
  }

  function setBadge(kind, text) {
    $("badge").dataset.state = kind;
    $("badge-text").textContent = text;
  }

  function connect(url) {
    clearTimeout(reconnectTimer);
    currentURL = url;
    welcomed = false;
    setBadge("connecting", "Connecting to " + new URL(url).host + "…");
    let sock;
    try {
      sock = new WebSocket(wsURL(url));
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    const openTimer = setTimeout(() => { if (sock.readyState !== WebSocket.OPEN) sock.close(); }, 4000);
    sock.onopen = () => { clearTimeout(openTimer); };
    sock.onmessage = (ev) => { if (sock === ws) onFrame(ev.data); };
    sock.onclose = (ev) => {
      clearTimeout(openTimer);
      if (sock !== ws) return;
      ws = null;
      joined = false;
      watched = false;
      clearInterval(pingTimer);
      clearTimeout(pongTimer);
      if (ev.code === 1009) toast("A message was too large for the relay.");
      setBadge("offline", relayName ? "Lost " + relayName + ", reconnecting…" : "Reconnecting…");
      scheduleReconnect();
    };
  }

  // The next relay to try: the others first (in turn), the lost one last.
  function nextURL() {
    const others = relays.filter((u) => u !== currentURL);
    if (others.length === 0) return currentURL;
    const order = others.concat([currentURL]);
    return order[attempt % order.length];
  }

  function scheduleReconnect() {
    const delay = Math.min(250 * Math.pow(1.6, Math.max(0, attempt - 1)), 5000) * (attempt === 0 ? 0 : 1);
    const url = nextURL();
    attempt++;
    reconnectTimer = setTimeout(() => connect(url), delay + Math.random() * 100);
  }

  function send(msg) {
    if (!ws || ws.readyState !== WebSocket.OPEN || !welcomed) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  // command sends a command with an id and remembers it until acknowledged.
  // Commands in a room act as this player, so they carry its token.
  function command(msg) {
    msg.id = msg.id || randomId(8);
    if (msg.type === "guess" || msg.type === "newRound" || msg.type === "setWord") msg.token = tokenFor(room);
    pending.set(msg.id, msg);
    send(msg);
    return msg.id;
  }

  function startPings() {
    clearInterval(pingTimer);
    pingTimer = setInterval(() => {
      if (!send({ type: "ping" })) return;
      clearTimeout(pongTimer);
      // No answer in time: the relay is gone without a word; move on.
      pongTimer = setTimeout(() => { if (ws) ws.close(); }, 8000);
    }, 20000);
  }

  function onFrame(text) {
    let f;
    try { f = JSON.parse(text); } catch (e) { return; }
    switch (f.type) {
      case "welcome": onWelcome(f); break;
      case "relays": setRelays(f.relays); break;
      case "state": onState(f.data); if (f.event) onEvent(f.event); break;
      case "event": onEvent(f.data); break;
      case "history": onHistory(f.data); break;
      case "ack": onAck(f); break;
      case "error": onError(f); break;
      case "rooms": renderRooms(f); break;
      case "lobby": onLobby(f); break;
      case "pong": clearTimeout(pongTimer); break;
      case "cluster": onCluster(f); break;
      case "spectators": onSpectators(f); break;
    }
  }

  function onWelcome(f) {
    welcomed = true;
    attempt = 0;
    relayName = f.relay || new URL(currentURL).host;
    setBadge("connected", "Connected to " + relayName);
    $("badge").title = currentURL;
    setRelays(f.relays);
    startPings();
    send({ type: "list" });
    lobbyWatching = false;
    syncLobbyWatch();
    if (view === "cluster") send({ type: "cluster", watch: true });
    if (room) enterRoom(room, spectating);
    // Commands still unanswered when the last relay died.
    for (const msg of pending.values()) {
      if (msg.type !== "join") send(msg);
    }
  }

  function setRelays(list) {
    if (Array.isArray(list) && list.length > 0) {
      const valid = list.filter((u) => { try { return /^https?:$/.test(new URL(u).protocol); } catch (e) { return false; } });
      if (!valid.includes(currentURL)) valid.unshift(currentURL);
      relays = valid;
    }
    const out = $("relays");
    out.textContent = "";
    relays.forEach((u, i) => {
      if (i > 0) out.append(", ");
      const s = document.createElement("span");
      s.textContent = new URL(u).host;
      if (u === currentURL) { s.className = "current"; s.setAttribute("aria-current", "true"); }
      out.append(s);
    });
  }

  // ---- lobby --------------------------------------------------------------
  // The relay sends the lobby a page at a time: an answer to "More rooms"
  // (its id starts with "more-") adds to the list, any other replaces it.
  let roomsNext = "";

  function moreRooms() {
    if (roomsNext) send({ type: "list", after: roomsNext, id: "more-" + randomId(6) });
  }

  // The list stays live while the lobby shows: the relay pushes every
  // room's new line ("lobby" frames), and a line replaces the room's
  // shown one if its seq is newer. Rooms past the pages loaded so far are
  // left for "More rooms".
  const roomItems = new Map(); // room name -> { line, li }
  let lobbyWatching = false;

  function syncLobbyWatch() {
    const want = !$("lobby").hidden;
    if (want === lobbyWatching) return;
    if (send({ type: "lobby", watch: want })) lobbyWatching = want;
  }

  function renderRooms(f) {
    const list = f.rooms || [];
    if (!(f.id || "").startsWith("more-")) { $("rooms").textContent = ""; roomItems.clear(); }
    roomsNext = f.next || "";
    $("more-rooms").hidden = !roomsNext;
    for (const r of list) showRoom(r);
    $("no-rooms").hidden = roomItems.size > 0;
  }

  function onLobby(f) {
    for (const r of f.rooms || []) {
      if (!r || typeof r.room !== "string") continue;
      const known = roomItems.get(r.room);
      if (known && r.seq <= known.line.seq) continue;
      if (r.status === "deleted") {
        if (known) { known.li.remove(); roomItems.delete(r.room); }
        continue;
      }
      if (!known && roomsNext && r.room > roomsNext) continue; // on a page not loaded yet
      showRoom(r);
    }
    $("no-rooms").hidden = roomItems.size > 0;
  }

  function roomMeta(r) {
    return `round ${r.round} · ${r.players} player${r.players === 1 ? "" : "s"} · ${r.status}`;
  }

  // showRoom adds a room's line to the list, in name order, or updates it.
  function showRoom(r) {
    const known = roomItems.get(r.room);
    if (known) {
      known.line = r;
      known.li.querySelector(".meta").textContent = roomMeta(r);
      known.li.dataset.status = r.status;
      return;
    }
    const li = document.createElement("li");
    li.dataset.room = r.room;
    li.dataset.status = r.status;
    const info = document.createElement("div");
    const name = document.createElement("div");
    name.className = "room-name";
    name.textContent = r.room;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = roomMeta(r);
    info.append(name, meta);
    const acts = document.createElement("span");
    acts.className = "row";
    const btn = document.createElement("button");
    btn.type = "button";
    btn.textContent = "Join";
    btn.dataset.room = r.room;
    btn.setAttribute("aria-label", "Join room " + r.room);
    btn.addEventListener("click", () => { if (!needName()) enterRoom(r.room); });
    const watch = document.createElement("button");
    watch.type = "button";
    watch.textContent = "Watch";
    watch.className = "watch";
    watch.setAttribute("aria-label", "Watch room " + r.room + " without playing");
    watch.addEventListener("click", () => enterRoom(r.room, true));
    acts.append(btn, watch);
    li.append(info, acts);
    const ul = $("rooms");
    const after = Array.from(ul.children).find((el) => el.dataset.room > r.room);
    ul.insertBefore(li, after || null);
    roomItems.set(r.room, { line: r, li });
  }

  // Quick play joins the fullest room whose round is playing and that has
  // a free seat, or creates a room when there is none (or it filled up
  // meanwhile).
  const MAX_PLAYERS = 64;
  let quickJoin = "";

  function quickPlay() {
    if (needName()) return;
    const open = Array.from(roomItems.values(), (x) => x.line)
      .filter((r) => r.status === "playing" && r.players < MAX_PLAYERS)
      .sort((a, b) => b.players - a.players || (a.room < b.room ? -1 : 1));
    if (open.length === 0) { quickCreate(); return; }
    quickJoin = open[0].room;
    enterRoom(open[0].room);
  }

  function quickCreate() {
    quickJoin = "";
    command({ type: "create", room: "quick-" + randomId(4), playerId });
  }

  function needName() {
    if (nickname) return false;
    toast("Choose a nickname first.");
    $("name").focus();
    return true;
  }

  // enterRoom opens a room: with a seat, or as a spectator when asked to
  // (watch) or when the player has no nickname yet (an invite link opened
  // on a first visit shows the game, with a form to take a seat).
  function enterRoom(name, watch) {
    if (name !== room || feedRoom !== name) resetRoom(name);
    room = name;
    spectating = !!watch || !nickname;
    if (location.hash !== roomHash(name)) history.replaceState(null, "", roomHash(name));
    if (spectating) watchRoom(name);
    else joinRoom(name);
    showView();
  }

  // resetRoom clears what the page shows of the last room. The feed is
  // cleared here, before the join or watch is sent, and never when it is
  // answered: the room's events (the player's own "joined" among them)
  // may arrive before the answer.
  function resetRoom(name) {
    state = null;
    roomHistory = null;
    spectatorCount = 0;
    feedRoom = name;
    $("feed").textContent = "";
    $("masked").textContent = "";
    $("status").textContent = name ? "Waiting for the room…" : "";
  }

  function watchRoom(name) {
    send({ type: "watch", room: name, id: "watch-" + randomId(6) });
  }

  let joinRetry = 0;
  function joinRoom(name) {
    // A join is sent afresh on every connection (it is idempotent), so it
    // is not kept among the pending commands.
    clearTimeout(joinRetry);
    send({ type: "join", room: name, playerId, name: nickname, token: tokenFor(name), id: "join-" + randomId(6) });
  }

  function leaveRoom() {
    send({ type: "leave" });
    room = "";
    joined = false;
    watched = false;
    spectating = false;
    resetRoom("");
    history.replaceState(null, "", location.pathname);
    showView();
    send({ type: "list" });
  }

  // ---- game ---------------------------------------------------------------
  function showView() {
    const inCluster = view === "cluster";
    const wasInGame = inGame;
    inGame = !inCluster && !!room && (joined || watched);
    if (inGame && !wasInGame && $("toast").dataset.kind === "info") $("toast").hidden = true;
    $("lobby").hidden = inGame || inCluster;
    $("game").hidden = !inGame;
    $("cluster").hidden = !inCluster;
    $("join-form").hidden = !inGame || !spectating;
    $("keyboard").hidden = spectating;
    // The typing hint is for players in a room, not the lobby or spectators.
    $("keys-hint").hidden = !inGame || spectating;
    $("tab-play").href = room ? roomHash(room) : "#";
    if (spectating && !$("join-name").value) $("join-name").value = nickname;
    syncLobbyWatch();
    if (inCluster) { $("tab-cluster").setAttribute("aria-current", "page"); $("tab-play").removeAttribute("aria-current"); }
    else { $("tab-play").setAttribute("aria-current", "page"); $("tab-cluster").removeAttribute("aria-current"); }
    if (state) render();
  }

  function onAck(f) {
    const cmd = pending.get(f.id);
    pending.delete(f.id);
    switch (f.op) {
      case "join":
        if (f.token && f.room && TOKEN.test(f.token)) localStorage.setItem(tokenKey(f.room), f.token);
        if (f.room === room && !spectating) {
          joined = true;
          watched = false;
          showView();
        }
        break;
      case "watch":
        if (f.room === room && spectating) {
          watched = true;
          joined = false;
          showView();
        }
        break;
      case "create":
        enterRoom(f.room);
        break;
      case "guess":
        if (cmd) markPending();
        break;
    }
  }

  function onError(f) {
    const cmd = f.id ? pending.get(f.id) : null;
    if (f.id) pending.delete(f.id);
    const isJoin = typeof f.id === "string" && f.id.startsWith("join-");
    if (isJoin && quickJoin && quickJoin === room && !joined && f.code === "precondition") {
      // The room Quick play picked filled up meanwhile: make one.
      room = "";
      quickCreate();
      return;
    }
    if (f.code === "permission_denied" && room) {
      // Our token is not the seat's: the seat was freed while we were away
      // and someone else took our id. Play on as a new player.
      if (cmd && cmd.type === "guess") markPending();
      const r = room;
      forgetToken(r);
      newPlayerId();
      joined = false;
      toast("Your seat in room “" + r + "” belongs to someone else now; you join as a new player.");
      joinRoom(r);
      return;
    }
    if (f.code === "rate_limited" && isJoin && room) {
      // Too many seats taken from here at once: join when allowed.
      const r = room;
      toast(f.message || "Too many joins; trying again shortly.", "info");
      clearTimeout(joinRetry);
      joinRetry = setTimeout(() => { if (room === r && !joined) joinRoom(r); }, Math.min(f.retryAfterMs || 1000, 60000));
      return;
    }
    if (f.code === "not_found" && !joined && room) {
      // The room of the link does not exist (any more).
      toast("Room “" + room + "” does not exist.");
      leaveRoom();
      return;
    }
    if (isJoin && watched && !joined) {
      // A spectator could not take a seat (the room is full…): watch on.
      spectating = true;
      showView();
      toast(f.message || "You could not join the game.");
      return;
    }
    if (cmd && cmd.type === "guess") markPending();
    if (f.code === "busy") {
      // The relay's queue is full, or the room answered more requests
      // than it may remember: nothing was applied, and a later try is safe.
      toast("The room is very busy right now: try again in a moment.", "info");
      return;
    }
    toast(f.message || f.code || "Something went wrong.");
  }

  function onState(s) {
    if (!s || s.room !== room) return;
    if (state && state.room === s.room && s.seq < state.seq) return; // older than what we show
    if (s.status === "deleted") {
      // The room was idle so long that the cluster reclaimed it.
      forgetToken(s.room);
      leaveRoom();
      toast("Room “" + s.room + "” was closed after being idle; create it again to play on.");
      return;
    }
    if (joined && state && state.players.some((p) => p.id === playerId) && !(s.players || []).some((p) => p.id === playerId)) {
      // Our seat was freed: we did not play for a long while others did.
      // Joining again is up to the player, so an idle tab holds no seat.
      joined = false;
      toast("You were away for a while, so your seat was freed. Join the room again to play.");
      state = s;
      showView();
      return;
    }
    state = s;
    for (const p of s.players || []) names.set(p.id, p.name);
    render();
  }

  function render() {
    if (!state) return;
    const s = state;
    $("room-name").textContent = s.room;
    $("round").textContent = "Round " + s.round;

    renderWord(s);
    renderGallows(s);
    renderSpectators();
    $("copy-link").setAttribute("aria-label", "Copy the invite link to room " + s.room);

    const none = (s.wrong || []).length === 0;
    $("wrong").textContent = none ? "none" : s.wrong.join(" ");
    $("wrong").classList.toggle("none", none);
    $("wrong-left").textContent = s.status === "playing" ? `(${s.wrongLeft} left)` : "";

    const st = $("status");
    st.className = "status " + s.status;
    if (s.status === "won") st.textContent = "Solved! The word was “" + (s.word || s.masked) + "”.";
    else if (s.status === "lost") st.textContent = "Hanged. The word was “" + (s.word || "?") + "”.";
    else if (s.status === "setting") st.textContent = "Waiting for the word.";
    else if (spectating) st.textContent = "You are watching the players guess.";
    else st.textContent = "Guess a letter.";
    $("new-round").hidden = s.status === "playing" || s.status === "setting" || spectating;

    renderKeyboard();
    renderScores();
    renderRounds(s);
  }

  // renderWord shows the word one cell per letter: the letters found, a
  // blank for the others while the round plays, and once it is lost the
  // letters nobody guessed, set apart (the state's masked keeps "_" where
  // nobody found the letter; word has it).
  function renderWord(s) {
    const word = s.status !== "playing" && s.word ? s.word : "";
    const masked = $("masked");
    masked.textContent = "";
    const spoken = [];
    let revealed = 0;
    for (let i = 0; i < s.masked.length; i++) {
      const c = s.masked[i];
      const cell = document.createElement("span");
      cell.className = "cell";
      if (c === "_") {
        if (word) {
          cell.textContent = word[i];
          cell.classList.add("revealed");
          spoken.push(word[i] + " (not guessed)");
          revealed++;
        } else { cell.textContent = "_"; cell.classList.add("blank"); spoken.push("blank"); }
      } else {
        cell.textContent = c;
        cell.classList.add("found");
        spoken.push(c);
      }
      cell.setAttribute("aria-hidden", "true");
      masked.append(cell);
    }
    masked.setAttribute("aria-label", s.masked.length ? `Word of ${s.masked.length} letters: ${spoken.join(", ")}` : "No word yet");
    masked.setAttribute("role", "img");
    $("masked-legend").hidden = revealed === 0;
  }

  function renderSpectators() {
    const n = spectatorCount;
    $("spectators").textContent = n === 0 ? "No spectators" : n === 1 ? "1 spectator" : n + " spectators";
  }

  function onSpectators(f) {
    if (f.room !== room || typeof f.count !== "number") return;
    spectatorCount = f.count;
    renderSpectators();
  }

  function renderGallows(s) {

    // Gallows: stages in proportion to the misses allowed.
    const wrong = (s.wrong || []).length;
    const max = s.maxWrong || STAGES;
    const stage = wrong >= max ? STAGES : Math.ceil((wrong * STAGES) / max);
    for (const part of document.querySelectorAll("#gallows .part")) {
      part.classList.toggle("on", Number(part.dataset.stage) <= stage);
    }
    const g = $("gallows");
    g.classList.toggle("lost", s.status === "lost");
    g.classList.toggle("won", s.status === "won");
    const label = `Hangman drawing: ${wrong} of ${max} misses` +
      (s.status === "lost" ? ", the man is hanged" : s.status === "won" ? ", the man is saved" : "");
    g.setAttribute("aria-label", label);
    $("gallows-title").textContent = label;
  }

  // ---- room settings, host mode, turns, history (issue 20, parts 3-5) ----
  const CATEGORIES = { classic: "Classic words", animals: "Animals", countries: "Countries", food: "Food" };

  // roomSettings reads the create form's settings into a create frame. A
  // room whose players set the words has no use for a word list.
  function roomSettings(msg) {
    msg.mode = $("mode").value;
    if (msg.mode !== "host") msg.category = $("category").value;
    const len = $("word-length").value;
    if (len) [msg.minWordLen, msg.maxWordLen] = len.split("-").map(Number);
    msg.turnSeconds = Number($("turn-seconds").value);
    msg.maxPlayers = Number($("max-players").value) || 0;
    return msg;
  }

  // syncModeField disables the word list when the players set the words,
  // and says why next to it.
  function syncModeField() {
    const host = $("mode").value === "host";
    $("category").disabled = host;
    $("category-hint").textContent = host ? "The word list is not used: each round's setter picks the word."
      : "Words come from the chosen list.";
  }

  // canGuess says whether this page's player may guess now: seated, the
  // round playing, not its setter, and (in a timed room) on their turn.
  function canGuess(s) {
    return !!s && s.status === "playing" && !spectating &&
      !(s.setter && s.setter === playerId) && !(s.turn && s.turn.player !== playerId);
  }

  const nameIn = (s, id) => {
    const p = (s.players || []).find((q) => q.id === id) || (s.leaderboard || []).find((q) => q.id === id);
    return p ? p.name : names.get(id) || "a former player";
  };

  // renderRules lists the room's settings in the game's head, in words.
  function renderRules(s) {
    const st = s.settings || {};
    const tags = [];
    if (st.mode === "host") tags.push("Players pick the words");
    else tags.push(CATEGORIES[st.category] || st.category || "Classic words");
    if (st.minLen > 2 || (st.maxLen && st.maxLen < 32)) {
      tags.push(st.minLen === st.maxLen ? `${st.minLen} letters` : `${st.minLen}-${st.maxLen} letters`);
    } else tags.push("Any length");
    tags.push(`${s.maxWrong} misses allowed`);
    tags.push(st.turnSeconds ? `${st.turnSeconds} s turns` : "No turn timer");
    if (st.maxPlayers) tags.push(`Up to ${st.maxPlayers} players`);
    const ul = $("room-rules");
    ul.textContent = "";
    for (const t of tags) ul.append(el("li", "", t));
  }

  let turnTimer = 0;

  // renderRounds shows who sets the word (and the setter the form to set
  // it), whose turn it is with its countdown, the leaderboard and the
  // finished rounds.
  function renderRounds(s) {
    renderRules(s);
    const mine = s.status === "setting" && s.setter === playerId && !spectating;
    const form = $("set-word-form");
    if (mine && form.hidden) {
      const st = s.settings || {};
      const lo = Math.max(2, st.minLen || 2), hi = Math.min(32, st.maxLen || 32);
      const input = $("set-word");
      input.minLength = lo;
      input.maxLength = hi;
      input.pattern = `[A-Za-z]{${lo},${hi}}`;
      input.title = `${lo}-${hi} letters a-z`;
      $("set-word-hint").textContent = `${lo}-${hi} letters a-z. It stays hidden from everyone else until the round ends.`;
      showWord(false);
    }
    form.hidden = !mine;
    if (s.status === "setting") {
      $("status").textContent = mine ? "You set this round's word: the others guess it."
        : s.setter ? `Waiting for ${nameIn(s, s.setter)} to set the word.` : "Waiting for a player to set the word.";
    } else if (s.status === "playing" && s.setter && s.setter === playerId) {
      $("status").textContent = "You set this word: watch the others guess.";
    } else if (s.status === "playing" && s.turn && !spectating && s.turn.player !== playerId) {
      $("status").textContent = `Wait for your turn: ${nameIn(s, s.turn.player)} is guessing.`;
    } else if (s.status === "playing" && s.setter && !spectating) {
      $("status").textContent = `Guess the word ${nameIn(s, s.setter)} set.`;
    }
    renderTurn(s);
    renderLeaderboard(s);
    // A state with no finished round (or older ones than the history
    // held: the room was made again) means the history held is not its.
    if (roomHistory && (s.historySeq || 0) < roomHistory.seq) roomHistory = null;
    renderHistory(s);
  }

  function onHistory(h) {
    if (!h || h.room !== room) return;
    if (roomHistory && h.seq <= roomHistory.seq) return;
    roomHistory = h;
    if (state) renderHistory(state);
  }

  // renderTurn shows whose turn it is (a live region, spoken when the turn
  // changes) and its seconds left (a timer, updated in place and not
  // spoken every second).
  function renderTurn(s) {
    clearInterval(turnTimer);
    const box = $("turn");
    box.hidden = !s.turn;
    if (!s.turn) { delete box.dataset.player; delete box.dataset.number; delete box.dataset.deadline; return; }
    const t = s.turn;
    const me = t.player === playerId;
    box.classList.toggle("mine", me);
    box.dataset.player = t.player;
    box.dataset.number = String(t.number);
    box.dataset.deadline = String(t.deadline);
    const who = me ? "▶ Your turn" : `${nameIn(s, t.player)}'s turn`;
    if ($("turn-who").textContent !== who) $("turn-who").textContent = who;
    const total = ((s.settings && s.settings.turnSeconds) || 1) * 1000;
    const tick = () => {
      const ms = Math.max(0, t.deadline - Date.now());
      const left = Math.ceil(ms / 1000);
      const text = left === 0 ? "time is up" : `${left} s left`;
      if ($("turn-left").textContent !== text) $("turn-left").textContent = text;
      box.classList.toggle("low", left <= 3);
      $("turn-fill").style.transform = `scaleX(${Math.min(1, ms / total).toFixed(3)})`;
      if (ms === 0) clearInterval(turnTimer);
    };
    tick();
    turnTimer = setInterval(tick, 250);
  }

  function renderLeaderboard(s) {
    const ol = $("leaderboard");
    ol.textContent = "";
    const rows = s.leaderboard || [];
    rows.forEach((r, i) => {
      const li = el("li", r.id === playerId ? "me" : "");
      const rank = el("span", "rank", `${i + 1}.`);
      const name = el("span", "pname", r.name + (r.id === playerId ? " (you)" : ""));
      const pts = el("span", "points", `${r.score} pt${r.score === 1 ? "" : "s"}`);
      pts.append(el("span", "wins", ` · ${r.wins} win${r.wins === 1 ? "" : "s"}`));
      li.append(rank, name, pts);
      ol.append(li);
    });
  }

  // renderHistory lists the finished rounds, newest first: the word, how
  // the round ended (in words and a mark, not colour alone), who set it
  // and who guessed what.
  function renderHistory(s) {
    const list = $("history");
    list.textContent = "";
    const rounds = (roomHistory ? roomHistory.rounds || [] : []).slice().reverse();
    $("history-card").hidden = rounds.length === 0;
    for (const r of rounds) {
      const li = el("li", r.status);
      const head = el("span", "round-head", `Round ${r.round}: `);
      head.append(el("span", "word", r.word));
      const how = r.status === "won" ? `✓ Solved by ${nameIn(s, r.winner)}` : "✗ Hanged: nobody solved it";
      const line = el("span", "how", how + (r.setter ? ` · set by ${nameIn(s, r.setter)}` : ""));
      const guesses = (r.guesses || []).map((g) => `${nameIn(s, g.player)} ${g.letter.toUpperCase()}${g.outcome === "wrong" ? " ✗" : " ✓"}`);
      li.append(head, line);
      if (guesses.length) li.append(el("span", "guesses", "Guesses: " + guesses.join(", ")));
      list.append(li);
    }
  }

  // showWord shows the setter's word as typed, or hides it again (the
  // default: nobody reads it over the setter's shoulder).
  function showWord(on) {
    $("set-word").type = on ? "text" : "password";
    $("show-word").setAttribute("aria-pressed", String(on));
    $("show-word").textContent = on ? "Hide" : "Show";
    $("show-word").setAttribute("aria-label", on ? "Hide the word" : "Show the word");
  }

  function renderKeyboard() {
    const kb = $("keyboard");
    if (kb.children.length === 0) {
      for (const l of LETTERS) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = l;
        b.dataset.letter = l;
        b.addEventListener("click", () => guess(l));
        kb.append(b);
      }
    }
    const s = state;
    const guessed = new Set(s ? s.guessed : []);
    const wrong = new Set(s ? s.wrong : []);
    kb.classList.toggle("idle", !canGuess(s));
    for (const b of kb.children) {
      const l = b.dataset.letter;
      const done = guessed.has(l);
      b.classList.toggle("hit", done && !wrong.has(l));
      b.classList.toggle("miss", wrong.has(l));
      b.disabled = done || !canGuess(s);
      b.setAttribute("aria-label", "Letter " + l.toUpperCase() + (done ? (wrong.has(l) ? ", missed" : ", found") : ""));
    }
    markPending();
  }

  function markPending() {
    const waiting = new Set();
    for (const m of pending.values()) if (m.type === "guess") waiting.add(m.letter);
    for (const b of $("keyboard").children) b.classList.toggle("pending", waiting.has(b.dataset.letter));
  }

  function renderScores() {
    const ol = $("scores");
    ol.textContent = "";
    const players = [...(state.players || [])].sort((a, b) => b.score - a.score || a.name.localeCompare(b.name));
    for (const p of players) {
      const li = document.createElement("li");
      if (p.id === playerId) li.className = "me";
      const n = document.createElement("span");
      n.className = "pname";
      n.textContent = p.name + (p.id === playerId ? " (you)" : "");
      const sc = document.createElement("span");
      sc.className = "score";
      sc.textContent = String(p.score);
      sc.setAttribute("aria-label", p.score + " points");
      li.append(n, sc);
      ol.append(li);
    }
  }

  // guess plays a letter. Typed while the page is getting back into the
  // room, before the join on the new connection is answered, it is not
  // dropped: the join goes first on every connection (onWelcome) and a
  // relay runs a connection's commands in order, so it is sent (now, or
  // with the pending commands once connected) after the join.
  function guess(letter) {
    if (!inGame || !canGuess(state)) return;
    letter = letter.toLowerCase();
    if (!LETTERS.includes(letter) || state.guessed.includes(letter)) return;
    for (const m of pending.values()) if (m.type === "guess" && m.letter === letter) return;
    command({ type: "guess", letter });
    markPending();
  }

  function onEvent(e) {
    if (!e || e.room !== room) return;
    if (e.name) names.set(e.player, e.name);
    const who = (id) => (id === playerId ? "You" : names.get(id) || "someone");
    let text = "";
    switch (e.kind) {
      case "room_created": text = "Room created."; break;
      case "player_joined": text = who(e.player) + " joined."; break;
      case "player_renamed": text = "A player is now called " + e.name + "."; break;
      case "round_started": text = "Round " + e.round + " started."; break;
      case "seat_reclaimed": text = who(e.player) + " left (away too long)."; break;
      case "word_set": text = who(e.player) + " set the word."; break;
      case "turn_timeout": text = (e.player === playerId ? "Your" : who(e.player) + "'s") + " turn ran out."; break;
      case "room_deleted": text = "The room was closed after being idle."; break;
      case "guess":
        text = `${who(e.player)} guessed ${String(e.letter).toUpperCase()}: ${e.outcome}.`;
        if (e.status === "won") text += " The word is solved!";
        if (e.status === "lost") text += " The man is hanged.";
        break;
      default: text = e.kind + ".";
    }
    const li = document.createElement("li");
    if (e.outcome) li.className = e.outcome;
    const t = document.createElement("time");
    const at = new Date(e.at);
    if (!isNaN(at)) { t.dateTime = at.toISOString(); t.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }); }
    li.append(t, document.createTextNode(text));
    const feed = $("feed");
    feed.append(li);
    while (feed.children.length > 50) feed.firstChild.remove();
    feed.scrollTop = feed.scrollHeight;
  }

  // ---- cluster view -------------------------------------------------------
  // The relay pushes a "cluster" frame (the whole view) while we watch. In
  // `hangman dev` the relays also serve /dev/ (chaos controls); elsewhere
  // /dev/state is a 404 and no control is shown.
  let cluster = null; // the latest cluster frame
  let dev = null; // the answer of GET /dev/state, null outside hangman dev
  let devTimer = 0;
  let devBusy = "";

  // The dev controls are asked of the relay the websocket is on: the page's
  // own relay may be the one that was stopped.
  function devBase() { return welcomed ? currentURL : here; }

  function startDevPolling() {
    clearInterval(devTimer);
    refreshDev();
    devTimer = setInterval(refreshDev, 2000);
  }
  function stopDevPolling() { clearInterval(devTimer); devTimer = 0; }

  async function refreshDev() {
    try {
      const res = await fetch(devBase() + "/dev/state", { cache: "no-store" });
      dev = res.ok ? await res.json() : null;
    } catch (e) {
      // The relay asked is going away; the next poll asks the new one.
    }
    renderCluster();
  }

  async function devAction(path, done) {
    if (devBusy) return;
    devBusy = path;
    renderCluster();
    try {
      const res = await fetch(devBase() + path, { method: "POST", cache: "no-store" });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) toast(body.error || "The control failed (" + res.status + ").");
      else {
        if (body.state) dev = body.state;
        toast(done + ".", "info");
      }
    } catch (e) {
      toast("The control failed: " + e.message);
    } finally {
      devBusy = "";
      renderCluster();
      refreshDev(); // the answer may have been lost with a stopped relay
    }
  }

  function onCluster(f) {
    cluster = f;
    renderCluster();
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function controlButton(label, path, done, kind, name) {
    const b = el("button", kind || "", label);
    b.type = "button";
    b.dataset.action = label.toLowerCase().split(" ")[0];
    b.setAttribute("aria-label", label + " " + name);
    b.disabled = !!devBusy;
    if (devBusy === path) b.textContent = label + "…";
    b.addEventListener("click", () => devAction(path, done));
    return b;
  }

  // renderList makes list show items (fresh li elements, each keyed by
  // its dataset[key]) in that order. The lists are rebuilt at every
  // cluster view, a few times a second while the cluster changes, and a
  // button taken out of the document between the press and the release
  // of a click loses the click (moving it counts); so an item already
  // shown is updated in place, its controls (.actions, its last child)
  // stay in the document while they show the same buttons (their markup
  // names their action and target), and the items that go are removed
  // first, so that those after them need not move.
  function renderList(list, key, items) {
    const wanted = new Set(items.map((li) => li.dataset[key]));
    const shown = new Map();
    for (const li of [...list.children]) {
      const k = li.dataset[key];
      if (wanted.has(k) && !shown.has(k)) shown.set(k, li);
      else li.remove();
    }
    let prev = null;
    for (const fresh of items) {
      let li = shown.get(fresh.dataset[key]);
      if (li) {
        shown.delete(fresh.dataset[key]);
        patchItem(li, fresh);
      } else {
        li = fresh;
      }
      const want = prev ? prev.nextSibling : list.firstChild;
      if (li !== want) list.insertBefore(li, want);
      prev = li;
    }
  }

  // patchItem makes li look like fresh, keeping li's controls when fresh
  // has the same.
  function patchItem(li, fresh) {
    li.className = fresh.className;
    for (const k of Object.keys(li.dataset)) delete li.dataset[k];
    Object.assign(li.dataset, fresh.dataset);
    const acts = li.querySelector(":scope > .actions");
    const freshActs = fresh.querySelector(":scope > .actions");
    const keep = !!acts && !!freshActs && acts.outerHTML === freshActs.outerHTML;
    for (const c of [...li.childNodes]) if (!keep || c !== acts) c.remove();
    for (const c of [...fresh.childNodes]) {
      if (keep && c === freshActs) continue;
      if (keep) li.insertBefore(c, acts);
      else li.append(c);
    }
  }

  function stat(label, value) {
    const d = el("div");
    d.append(el("dt", "", label), el("dd", "", String(value)));
    return d;
  }

  function renderCluster() {
    if (view !== "cluster") return;
    const c = cluster;
    $("chaos").hidden = !dev;
    $("transfer").disabled = !!devBusy;

    // Summary: who leads.
    const sum = $("cluster-summary");
    sum.textContent = "";
    sum.className = "summary";
    if (!c) sum.textContent = "Waiting for the cluster view…";
    else if (c.leader) {
      sum.append("Leader ", el("span", "lead", c.leader), " · term " + c.term + " · seen by " + c.relay);
    } else {
      sum.className = "summary noleader";
      sum.textContent = "No leader: the nodes are electing one (term " + c.term + ")";
    }

    // Nodes: the relay's view, with the ones dev knows stopped. A node
    // the relay cannot name yet takes the name dev gives its address;
    // one still nameless goes last, so that its naming moves no other.
    const devNodes = new Map(((dev && dev.nodes) || []).map((n) => [n.id, n]));
    const devNames = new Map([...devNodes.values()].map((d) => [d.grpc, d.id]));
    const nodes = c ? c.nodes.map((n) => (n.id || !devNames.has(n.addr) ? n : { ...n, id: devNames.get(n.addr) })) : [];
    for (const d of devNodes.values()) {
      if (!nodes.some((n) => n.id === d.id)) nodes.push({ id: d.id, addr: d.grpc, role: "unknown" });
    }
    nodes.sort((a, b) => (!a.id - !b.id) || String(a.id || a.addr).localeCompare(String(b.id || b.addr)));
    const nodeItems = [];
    for (const n of nodes) {
      const d = devNodes.get(n.id);
      const stopped = d && !d.running;
      const role = stopped ? "stopped" : n.role;
      const isLeader = !!c && !stopped && n.role === "leader" && n.id === c.leader;
      const li = el("li", "node" + (isLeader ? " leader" : "") + (role === "unreachable" || stopped ? " down" : ""));
      li.dataset.node = n.id || n.addr;
      li.dataset.role = role;
      const top = el("div", "node-top");
      const dot = el("span", "health " + (n.healthy && !stopped ? "ok" : role === "unreachable" || stopped ? "" : "warn"));
      const health = stopped ? "stopped" : n.healthy ? "healthy" : role === "unreachable" ? "unreachable" : "no leader known";
      dot.setAttribute("role", "img");
      dot.setAttribute("aria-label", health);
      dot.title = health + (n.error ? ": " + n.error : "");
      top.append(dot, el("span", "node-name", n.id || n.addr), el("span", "role " + role, role));
      li.append(top);
      const dl = el("dl", "stats");
      const known = role !== "unreachable" && !stopped && role !== "unknown";
      dl.append(stat("term", known ? n.term : "–"), stat("commit", known ? n.commitIndex : "–"), stat("applied", known ? n.appliedIndex : "–"));
      li.append(dl, el("div", "where", (n.addr || "") + " · " + health));
      if (dev && d) {
        const acts = el("div", "actions");
        const id = d.id;
        if (d.running) {
          acts.append(controlButton("Stop", "/dev/nodes/" + encodeURIComponent(id) + "/stop", id + " stopped", "danger", id));
          if (!isLeader && n.role === "follower") {
            acts.append(controlButton("Make leader", "/dev/leader/transfer?to=" + encodeURIComponent(id), "Leadership moved to " + id, "", id));
          }
        } else {
          acts.append(controlButton("Start", "/dev/nodes/" + encodeURIComponent(id) + "/start", id + " started", "go", id));
        }
        li.append(acts);
      }
      nodeItems.push(li);
    }
    renderList($("nodes"), "node", nodeItems);

    // Relays, with their open connections.
    const relays = c && c.relayList ? [...c.relayList] : [];
    const devRelays = new Map(((dev && dev.relays) || []).map((r) => [r.name, r]));
    for (const d of devRelays.values()) {
      if (!relays.some((r) => r.name === d.name)) relays.push({ name: d.name, url: d.url, sessions: null });
    }
    relays.sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const relayItems = [];
    for (const r of relays) {
      const d = devRelays.get(r.name);
      const stopped = d && !d.running;
      const li = el("li", "relay" + (stopped || r.sessions === null ? " down" : ""));
      li.dataset.relay = r.name;
      const top = el("div", "node-top");
      const dot = el("span", "health " + (stopped || r.sessions === null ? "" : "ok"));
      dot.setAttribute("role", "img");
      dot.setAttribute("aria-label", stopped ? "stopped" : r.sessions === null ? "silent" : "up");
      let host = r.url;
      try { host = new URL(r.url).host; } catch (e) { /* shown as given */ }
      top.append(dot, el("span", "node-name", r.name));
      if (r.url === currentURL && welcomed) top.append(el("span", "role", "this page"));
      else if (stopped) top.append(el("span", "role stopped", "stopped"));
      li.append(top);
      const sessions = el("div", "sessions", r.sessions === null ? "–" : String(r.sessions));
      sessions.append(el("small", "", r.sessions === 1 ? " connection" : " connections"));
      li.append(sessions, el("div", "where", host));
      if (dev && d) {
        const acts = el("div", "actions");
        if (d.running) acts.append(controlButton("Stop", "/dev/relays/" + encodeURIComponent(d.name) + "/stop", d.name + " stopped", "danger", d.name));
        else acts.append(controlButton("Start", "/dev/relays/" + encodeURIComponent(d.name) + "/start", d.name + " started", "go", d.name));
        li.append(acts);
      }
      relayItems.push(li);
    }
    renderList($("relay-list"), "relay", relayItems);

    // Events, newest first.
    const ol = $("cluster-events");
    ol.textContent = "";
    const events = c ? [...c.events].reverse() : [];
    $("no-events").hidden = events.length > 0;
    for (const e of events) {
      const li = el("li", e.kind === "leader" ? "leader" : e.status || "");
      const t = el("time");
      const at = new Date(e.at);
      if (!isNaN(at)) { t.dateTime = at.toISOString(); t.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }); }
      li.append(t, document.createTextNode(eventText(e)));
      ol.append(li);
    }
  }

  function eventText(e) {
    switch (e.kind) {
      case "leader": return e.node + " became leader (term " + e.term + ")";
      case "member": {
        const what = { join: "joined", leave: "left", fail: "failed", reap: "was reaped", update: "rejoined or changed" }[e.status] || e.status;
        return e.node + " " + what + " (membership)";
      }
      case "node": return e.node + (e.status === "down" ? " stopped answering" : " is answering again");
      case "relay": return "Relay " + e.relay + (e.status === "join" ? " appeared" : " went silent");
      default: return e.kind;
    }
  }

  // copyLink puts the room's invite link on the clipboard, or shows it to
  // be copied by hand where the browser does not allow that.
  async function copyLink() {
    if (!room) return;
    const link = inviteLink(room);
    try {
      await navigator.clipboard.writeText(link);
      toast("Invite link copied: " + link, "info");
    } catch (e) {
      toast("Copy this invite link: " + link);
    }
  }

  // toast shows a message for a while; an "info" one also goes as soon as
  // the player moves on (enters a room).
  let toastTimer = 0;
  function toast(msg, kind) {
    const t = $("toast");
    t.textContent = msg;
    t.dataset.kind = kind || "error";
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, kind === "info" ? 2500 : 6000);
  }

  // ---- wiring -------------------------------------------------------------
  $("name").value = nickname;
  // setNickname keeps a nickname typed in the lobby or the join form; false
  // (and a message) when it is blank.
  function setNickname(input) {
    const v = input.value.trim();
    if (!v) { toast("A nickname cannot be blank."); return false; }
    nickname = v.slice(0, 32);
    localStorage.setItem("hangman.nickname", nickname);
    $("name").value = nickname;
    $("join-name").value = nickname;
    return true;
  }
  $("name-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!setNickname($("name"))) return;
    if (room && !inGame) enterRoom(room);
    else toast("Nickname saved.", "info");
  });
  // A spectator takes a seat.
  $("join-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!room || !setNickname($("join-name"))) return;
    enterRoom(room);
  });
  $("copy-link").addEventListener("click", copyLink);
  $("create-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (needName()) return;
    const name = $("new-room").value.trim().toLowerCase();
    if (!/^[a-z0-9][a-z0-9_-]{0,31}$/.test(name)) { toast("Room names are 1-32 of a-z, 0-9, - or _."); return; }
    command(roomSettings({ type: "create", room: name, maxWrong: Number($("max-wrong").value), playerId }));
  });
  $("set-word-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const w = $("set-word").value.trim();
    if (!/^[A-Za-z]{2,32}$/.test(w)) { toast("A word is 2-32 letters a-z."); return; }
    $("set-word").value = "";
    showWord(false);
    command({ type: "setWord", word: w });
  });
  $("show-word").addEventListener("click", () => showWord($("set-word").type === "password"));
  $("mode").addEventListener("change", syncModeField);
  $("refresh").addEventListener("click", () => send({ type: "list" }));
  $("quick-play").addEventListener("click", quickPlay);
  $("more-rooms").addEventListener("click", moreRooms);
  $("leave").addEventListener("click", leaveRoom);
  $("new-round").addEventListener("click", () => command({ type: "newRound" }));
  document.addEventListener("keydown", (ev) => {
    if ($("game").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = ev.target && ev.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
    if (ev.key && ev.key.length === 1 && /[a-z]/i.test(ev.key)) {
      ev.preventDefault();
      guess(ev.key);
    } else if (ev.key === "Enter" && state && state.status !== "playing" && state.status !== "setting" && !spectating && tag !== "BUTTON" && tag !== "A") {
      command({ type: "newRound" });
    }
  });
  window.addEventListener("hashchange", () => {
    const was = view;
    view = viewFromHash();
    if (view !== was) {
      send({ type: "cluster", watch: view === "cluster" });
      if (view === "cluster") startDevPolling(); else stopDevPolling();
    }
    const r = roomFromHash();
    if (r && r !== room) enterRoom(r);
    else showView();
    if (view === "cluster") renderCluster();
  });
  $("transfer").addEventListener("click", () => devAction("/dev/leader/transfer", "Leadership transferred"));

  renderKeyboard();
  syncModeField();
  showView();
  setRelays(relays);
  if (view === "cluster") { startDevPolling(); renderCluster(); }
  connect(here);
})();
