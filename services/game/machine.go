package game

import (
	"errors"
	"math"
	"slices"
	"strings"
	"time"
)

// Scoring: a correct letter scores once per occurrence in the word, and the
// guess that completes the word scores WinBonus more.
const WinBonus = 5

// Machine is the state of every room. It is not safe for concurrent use: the
// replication layer applies commands from one goroutine and guards reads.
type Machine struct {
	rooms map[string]*room
	// missing remembers the refusals of requests addressed to rooms that
	// did not exist, which have no session table of their own; a room
	// takes over its entries when it is created.
	missing window[missingKey]
	applied uint64
}

// sessionKey names a request: its id, in the scope of whoever sent it,
// the hash of the token the command carried (Command.TokenHash). A player's
// ids are theirs alone: a command carrying another token, whatever id it
// reuses, is another request, answered and remembered apart, so nobody can
// read or burn another player's request ids. Commands without a token
// (creations, new rounds of nobody, entries written before tokens) share
// the empty scope, as every request of a room once did.
type sessionKey struct {
	scope, id string
}

// scopeOf is the scope the request was sent in (windowKey).
func (k sessionKey) scopeOf() string { return k.scope }

// missingKey names a request addressed to a room that did not exist:
// request ids are per room.
type missingKey struct {
	room string
	sessionKey
}

type room struct {
	name     string
	round    uint64
	seq      uint64
	prev     uint64
	word     string
	maxWrong int
	guessed  []byte
	wrong    []byte
	status   Status
	players  []*seat
	last     *LastGuess
	// lastAt is the latest time (Command.At) of the commands applied to
	// the room, reclamations aside: when it was last played.
	lastAt int64
	// sessions remembers the first answer to each recent request.
	sessions window[sessionKey]
	// history holds the latest events, for EventsSince and republishing.
	history  history
	settings Settings
	// setter is the player who sets the round's word, in a host room.
	setter string
	// turnPlayer, turnNo and turnAt are the current turn of a timed room:
	// whose it is ("" for nobody's), its number and when it began.
	turnPlayer string
	turnNo     uint64
	turnAt     int64
	// rounds are the last finished rounds, oldest first; cur the guesses
	// of the round being played, recorded when it finishes.
	rounds []RoundRecord
	cur    []GuessRecord
}

// seat is a player of a room with what only the Machine knows of them.
type seat struct {
	Player
	// hash is HashToken of the seat's token: commands acting as the
	// player must carry it. A seat taken before tokens existed has none
	// until a join with a token claims it.
	hash string
	// lastAt is the latest time of the player's own commands: when they
	// last acted.
	lastAt int64
	// wins counts the rounds the player won by guessing the last letter.
	wins int64
}

// session remembers the first answer to one request: what applying it
// returned, or the refusal.
type session struct {
	Outcome Outcome `json:"o,omitempty"`
	// Seq is the index of the entry that answered the request.
	Seq uint64 `json:"s"`
	// At is the time the answering command carried (Command.At): how old
	// the answer is, for its window's retention.
	At int64 `json:"t,omitempty"`
	// Code and Msg are the refusal, if the request was refused.
	Code Code   `json:"c,omitempty"`
	Msg  string `json:"m,omitempty"`
}

// refusal returns the error s remembers, or nil if s was applied.
func (s session) refusal() error {
	if s.Code == 0 {
		return nil
	}
	return &Error{Code: s.Code, Msg: s.Msg}
}

// retention says which answers a window keeps: at least the keep newest,
// and every answer younger than minAge (milliseconds, by the times the
// commands carry), but never more than limit.
type retention struct {
	keep   int
	minAge int64
	limit  int
}

var (
	// roomRetention is what a room remembers of its requests.
	roomRetention = retention{keep: SessionWindow, minAge: SessionMinAge.Milliseconds(), limit: SessionCap}
	// missingRetention is what the cluster remembers of the refusals of
	// requests to rooms that do not exist.
	missingRetention = retention{keep: MissingRoomWindow, minAge: SessionMinAge.Milliseconds(), limit: MissingRoomCap}
)

// windowKey is what a window remembers answers by: a request, in the
// scope of the token it carried.
type windowKey interface {
	comparable
	scopeOf() string
}

// window remembers the first answers to requests by key, forgetting the
// oldest as its retention allows: deterministically, the same on every
// replica, since it goes by the log's order and the commands' times.
type window[K windowKey] struct {
	answers map[K]session
	order   []stamped[K] // the keys of answers and their times, oldest first
	// scopes counts the answers remembered per scope, so that a leader
	// can tell who fills a room (Admit) without reading them all. It is
	// derived from order, and rebuilt with it from a snapshot.
	scopes map[string]int
}

// stamped is a key of a window with its answer's time (session.At), kept
// in the order so that finding what may be forgotten reads no map.
type stamped[K windowKey] struct {
	key K
	at  int64
}

func (w *window[K]) get(k K) (session, bool) {
	s, ok := w.answers[k]
	return s, ok
}

// forgettable returns how many of the oldest answers p lets go at time
// now to make room for one more: while the window holds at least keep,
// those at least minAge old.
func (w *window[K]) forgettable(now int64, p retention) int {
	n := 0
	for len(w.order)-n >= p.keep && n < len(w.order) && now-w.order[n].at >= p.minAge {
		n++
	}
	return n
}

// full reports whether w can remember one more answer at time now only by
// forgetting one that p keeps: one that a retry may still ask for.
func (w *window[K]) full(now int64, p retention) bool {
	return w.young(now, p) >= p.limit
}

// record remembers s, the answer to k at s.At, forgetting what p lets go.
// Appliers check full first, so an answer p keeps goes only where a room
// is created with more refusals than it may hold (never, while
// MissingRoomCap is SessionCap).
func (w *window[K]) record(k K, s session, p retention) {
	n := max(w.forgettable(s.At, p), len(w.order)+1-p.limit)
	for _, old := range w.order[:n] {
		delete(w.answers, old.key)
		w.uncount(old.key)
	}
	clear(w.order[:n])
	w.order = w.order[n:]
	w.restore(k, s)
}

// restore appends s as the answer to k, as a snapshot lists them, oldest
// first, forgetting nothing: the snapshot holds what its window kept.
func (w *window[K]) restore(k K, s session) {
	if w.answers == nil {
		w.answers = make(map[K]session)
		w.scopes = make(map[string]int)
	}
	w.answers[k] = s
	w.order = append(w.order, stamped[K]{key: k, at: s.At})
	w.scopes[k.scopeOf()]++
}

// uncount takes a forgotten answer to k off its scope's count.
func (w *window[K]) uncount(k K) {
	scope := k.scopeOf()
	if w.scopes[scope]--; w.scopes[scope] == 0 {
		delete(w.scopes, scope)
	}
}

// young returns how many answers p keeps at time now: those a retry may
// still ask for.
func (w *window[K]) young(now int64, p retention) int {
	return len(w.order) - w.forgettable(now, p)
}

// take forgets the answers whose keys match and returns them, oldest first.
func (w *window[K]) take(match func(K) bool) (keys []K, answers []session) {
	kept := w.order[:0]
	for _, e := range w.order {
		if !match(e.key) {
			kept = append(kept, e)
			continue
		}
		keys = append(keys, e.key)
		answers = append(answers, w.answers[e.key])
		delete(w.answers, e.key)
		w.uncount(e.key)
	}
	clear(w.order[len(kept):])
	w.order = kept
	return keys, answers
}

// Result is what applying one command produced.
type Result struct {
	// Err is a refusal (an *Error). No room changed; only a refusal by
	// the rules of a command with a request id is remembered (see
	// Duplicate).
	Err error
	// Room names the room the command addressed.
	Room string
	// Outcome is set for guesses.
	Outcome Outcome
	// Duplicate is true when the request id had been answered before,
	// applied or refused: the Machine did not change, and Outcome and Err
	// are those of the first answer.
	Duplicate bool
	// Index is the log index that applied the command, or whose rules
	// refused it: for a duplicate, the index of the first answer. (A
	// command refused as invalid has none.)
	Index uint64
	// Event is the change made, or nil if nothing changed.
	Event *Event
	// State is the room's public state after the command (zero on Err),
	// without its History (see State.History).
	State State
	// History is the room's finished rounds when the command finished a
	// round, else nil: what the leader publishes once, beside the state.
	History *History
}

// New returns an empty Machine.
func New() *Machine {
	return &Machine{rooms: make(map[string]*room)}
}

// Applied returns the index of the last command applied (or restored).
func (m *Machine) Applied() uint64 { return m.applied }

// Apply decodes and applies the log entry at index. Entries that do not
// decode are refused like any invalid command: deterministically, on every
// replica, without changing anything.
func (m *Machine) Apply(index uint64, entry []byte) Result {
	return m.apply(index, entry, true)
}

func (m *Machine) apply(index uint64, entry []byte, states bool) Result {
	c, err := DecodeCommand(entry)
	if err != nil {
		m.applied = max(m.applied, index)
		return Result{Err: err}
	}
	return m.applyCommand(index, c, states)
}

// ApplyCommand applies c as the log entry at index.
func (m *Machine) ApplyCommand(index uint64, c Command) Result {
	return m.applyCommand(index, c, true)
}

// applyCommand applies c; with states false its Result has no State and
// no History: a follower publishes neither.
func (m *Machine) applyCommand(index uint64, c Command, states bool) Result {
	m.applied = max(m.applied, index)
	if err := c.Validate(); err != nil {
		return Result{Err: err, Room: c.Room}
	}
	r := m.rooms[c.Room]
	key := sessionKey{scope: c.TokenHash, id: c.RequestID}
	if c.RequestID != "" {
		if s, ok := m.answered(r, c.Room, key); ok {
			res := Result{Room: c.Room, Outcome: s.Outcome, Duplicate: true, Index: s.Seq, Err: s.refusal()}
			if states && res.Err == nil {
				res.State = r.public(false)
			}
			return res
		}
	}
	if c.RequestID != "" {
		if err := m.cannotRemember(r, c); err != nil {
			return Result{Err: err, Room: c.Room}
		}
	}
	var (
		ev       *Event
		err      error
		finished = r.lastFinished()
	)
	switch c.Kind {
	case KindCreateRoom:
		var created *room
		if created, ev, err = m.createRoom(c); err == nil {
			r = created
		}
	case KindJoinRoom:
		ev, err = r.join(c)
	case KindGuess:
		ev, err = r.guess(c)
	case KindNewRound:
		ev, err = r.newRound(c)
	case KindDeleteRoom:
		ev, err = m.deleteRoom(r, c)
	case KindReclaimSeat:
		ev, err = r.reclaimSeat(c)
	case KindSetWord:
		ev, err = r.setWord(c)
	case KindTurnTimeout:
		ev, err = r.turnTimeout(c)
	}
	if err != nil {
		if c.RequestID != "" {
			m.refused(r, c, key, index, err)
		}
		return Result{Err: err, Room: c.Room, Index: index}
	}
	if c.Kind != KindDeleteRoom && c.Kind != KindReclaimSeat && c.Kind != KindTurnTimeout {
		// Reclaiming and timing out are not playing: they leave the
		// room's time alone, so a timed room nobody plays is reclaimed.
		r.lastAt = max(r.lastAt, c.At)
	}
	res := Result{Room: c.Room, Index: index}
	if ev != nil {
		r.prev, r.seq = r.seq, index
		ev.Prev = r.prev
		ev.Seq = index
		ev.Room = r.name
		ev.Round = r.round
		ev.Status = r.status
		ev.At = time.UnixMilli(c.At).UTC()
		r.remember(*ev)
		res.Outcome = ev.Outcome
		res.Event = ev
		if n := len(r.rounds); r.lastFinished() != finished {
			// The change finished a round: it is the history's seq.
			r.rounds[n-1].Seq = index
			if states {
				res.History = &History{Room: r.name, Seq: index, Rounds: slices.Clone(r.rounds)}
			}
		}
	}
	if c.RequestID != "" {
		r.sessions.record(key, session{Outcome: res.Outcome, Seq: index, At: c.At}, roomRetention)
	}
	if states {
		res.State = r.public(false)
	}
	return res
}

func (m *Machine) createRoom(c Command) (*room, *Event, error) {
	if m.rooms[c.Room] != nil {
		return nil, nil, errorf(CodeExists, "room %q already exists", c.Room)
	}
	limit := MaxRooms
	if c.Limit > 0 {
		limit = c.Limit
	}
	if len(m.rooms) >= limit {
		return nil, nil, errorf(CodePrecondition, "the cluster holds its maximum of %d rooms; idle rooms are reclaimed, try again later", limit)
	}
	maxWrong := c.MaxWrong
	if maxWrong == 0 {
		maxWrong = DefaultMaxWrong
	}
	r := &room{name: c.Room, maxWrong: maxWrong, settings: c.settings().normalized()}
	r.start(c.Word, c.At)
	// The room's requests refused while it did not exist stay refused.
	keys, answers := m.missing.take(func(k missingKey) bool { return k.room == c.Room })
	for i, k := range keys {
		r.sessions.record(k.sessionKey, answers[i], roomRetention)
	}
	m.rooms[c.Room] = r
	return r, &Event{Kind: EventRoomCreated}, nil
}

// start begins the next round: with word, or, in a host room, waiting
// for the next setter to set one.
func (r *room) start(word string, at int64) {
	r.round++
	r.guessed = r.guessed[:0]
	r.wrong = r.wrong[:0]
	r.last = nil
	r.cur = nil
	if r.settings.Mode == ModeHost {
		r.word = ""
		r.status = StatusSetting
		r.setter = r.nextSeat(r.setter, func(string) bool { return true })
		return
	}
	r.word = word
	r.status = StatusPlaying
	r.passTurn(at)
}

// authorize checks that c, a command acting as the player of seat p,
// comes from the holder of the seat's token. A seat without a token (taken
// before tokens existed) is claimed by the next join that carries one;
// commands without a token act only on such seats, as all commands once
// did.
func (p *seat) authorize(c Command, room string) error {
	switch {
	case c.TokenHash == p.hash:
		return nil
	case p.hash == "" && c.Kind == KindJoinRoom:
		return nil
	case p.hash == "":
		return errorf(CodePermission, "player %q of room %q has no token yet: join again to claim the seat", c.Player, room)
	}
	return errorf(CodePermission, "player %q of room %q is someone else: send the token the seat was joined with, or join under another id", c.Player, room)
}

// touch records that the player acted at time at.
func (p *seat) touch(at int64) { p.lastAt = max(p.lastAt, at) }

func (r *room) join(c Command) (*Event, error) {
	if r == nil {
		return nil, errorf(CodeNotFound, "room %q does not exist", c.Room)
	}
	if p := r.seat(c.Player); p != nil {
		if err := p.authorize(c, r.name); err != nil {
			return nil, err
		}
		p.hash = c.TokenHash
		p.touch(c.At)
		if p.Name == c.Name {
			return nil, nil
		}
		p.Name = c.Name
		return &Event{Kind: EventPlayerRenamed, Player: c.Player, Name: c.Name}, nil
	}
	limit := MaxPlayers
	if c.Limit > 0 {
		limit = c.Limit
	}
	if r.settings.MaxPlayers > 0 {
		limit = min(limit, r.settings.MaxPlayers)
	}
	if len(r.players) >= limit {
		return nil, errorf(CodePrecondition, "room %q is full (%d players)", c.Room, limit)
	}
	r.players = append(r.players, &seat{Player: Player{ID: c.Player, Name: c.Name}, hash: c.TokenHash, lastAt: c.At})
	r.seated(c.Player, c.At)
	return &Event{Kind: EventPlayerJoined, Player: c.Player, Name: c.Name}, nil
}

func (r *room) guess(c Command) (*Event, error) {
	if r == nil {
		return nil, errorf(CodeNotFound, "room %q does not exist", c.Room)
	}
	p := r.seat(c.Player)
	if p == nil {
		return nil, errorf(CodePrecondition, "player %q has not joined room %q", c.Player, c.Room)
	}
	if err := p.authorize(c, r.name); err != nil {
		return nil, err
	}
	if err := r.mayGuess(c.Player); err != nil {
		return nil, err
	}
	p.touch(c.At)
	letter, _ := NormalizeLetter(c.Letter) // Validate has checked it
	var outcome Outcome
	switch {
	case slices.Contains(r.guessed, letter):
		outcome = OutcomeRepeated
	case strings.IndexByte(r.word, letter) >= 0:
		outcome = OutcomeCorrect
		r.guessed = append(r.guessed, letter)
		p.Score += int64(strings.Count(r.word, letterString(letter)))
		if r.solved() {
			r.status = StatusWon
			p.Score += WinBonus
			p.wins++
		}
	default:
		outcome = OutcomeWrong
		r.guessed = append(r.guessed, letter)
		r.wrong = append(r.wrong, letter)
		if len(r.wrong) >= r.maxWrong {
			r.status = StatusLost
		}
	}
	r.last = &LastGuess{Player: c.Player, Letter: letterString(letter), Outcome: outcome}
	r.afterGuess(p, letter, outcome, c.At)
	return &Event{Kind: EventGuess, Player: c.Player, Letter: letterString(letter), Outcome: outcome}, nil
}

// newRound starts the next round. A new round asked for by a player with a
// token must come from a seated player; one without (a new round of
// nobody, or an entry written before tokens) follows the old rules, which
// did not look at the player.
func (r *room) newRound(c Command) (*Event, error) {
	if r == nil {
		return nil, errorf(CodeNotFound, "room %q does not exist", c.Room)
	}
	var p *seat
	if c.Player != "" {
		p = r.seat(c.Player)
		switch {
		case p == nil && c.TokenHash != "":
			return nil, errorf(CodePrecondition, "player %q has not joined room %q", c.Player, c.Room)
		case p != nil:
			if err := p.authorize(c, r.name); err != nil {
				return nil, err
			}
		}
	}
	if r.status == StatusPlaying || r.status == StatusSetting {
		return nil, errorf(CodePrecondition, "round %d of room %q is still being played", r.round, c.Room)
	}
	if r.round == math.MaxUint64 {
		// Round 0 would not restore from a snapshot.
		return nil, errorf(CodePrecondition, "room %q has played its last round", c.Room)
	}
	if p != nil {
		p.touch(c.At)
	}
	r.start(c.Word, c.At)
	return &Event{Kind: EventRoundStarted, Player: c.Player}, nil
}

// deleteRoom deletes r if nothing was played in it after c.Cutoff. Its
// last state (StatusDeleted) and event say so; its name is free again, and
// what it remembered (request ids, events) goes with it.
func (m *Machine) deleteRoom(r *room, c Command) (*Event, error) {
	if r == nil {
		return nil, errorf(CodeNotFound, "room %q does not exist", c.Room)
	}
	if r.lastAt > c.Cutoff {
		return nil, errorf(CodePrecondition, "room %q was played at %d, after the cutoff %d", c.Room, r.lastAt, c.Cutoff)
	}
	delete(m.rooms, r.name)
	r.status = StatusDeleted
	r.players = nil
	r.last = nil
	return &Event{Kind: EventRoomDeleted}, nil
}

// reclaimSeat frees the seat of c.Player if they did not act after
// c.Cutoff. Their score goes with it; their id is free again.
func (r *room) reclaimSeat(c Command) (*Event, error) {
	if r == nil {
		return nil, errorf(CodeNotFound, "room %q does not exist", c.Room)
	}
	i := slices.IndexFunc(r.players, func(p *seat) bool { return p.ID == c.Player })
	if i < 0 {
		return nil, errorf(CodeNotFound, "player %q is not in room %q", c.Player, c.Room)
	}
	if at := r.players[i].lastAt; at > c.Cutoff {
		return nil, errorf(CodePrecondition, "player %q of room %q acted at %d, after the cutoff %d", c.Player, c.Room, at, c.Cutoff)
	}
	r.players = slices.Delete(r.players, i, i+1)
	r.unseated(c.Player, i, c.At)
	return &Event{Kind: EventSeatReclaimed, Player: c.Player}, nil
}

func (r *room) seat(id string) *seat {
	for _, p := range r.players {
		if p.ID == id {
			return p
		}
	}
	return nil
}

func (r *room) solved() bool {
	for i := 0; i < len(r.word); i++ {
		if !slices.Contains(r.guessed, r.word[i]) {
			return false
		}
	}
	return true
}

// answered returns the first answer to the request key, if it is
// remembered: by room r, or, if r is nil, among the refusals of requests
// to rooms that did not exist.
func (m *Machine) answered(r *room, name string, key sessionKey) (session, bool) {
	if r != nil {
		return r.sessions.get(key)
	}
	return m.missing.get(missingKey{room: name, sessionKey: key})
}

// cannotRemember returns a CodeBusy refusal when the answer to c, a
// request with an id to room r (nil if it does not exist), could be
// remembered only by forgetting one younger than SessionMinAge: then c is
// refused before the rules see it. A creation's answer goes to its new
// room, which starts with the room's refusals (at most MissingRoomCap,
// which fits).
func (m *Machine) cannotRemember(r *room, c Command) error {
	switch {
	case r != nil:
		if r.sessions.full(c.At, roomRetention) {
			return errorf(CodeBusy, "room %q answered %d requests in the last %v and must remember them all: send the request again with the same id in a few seconds", c.Room, SessionCap, SessionMinAge)
		}
	case c.Kind == KindCreateRoom:
	case m.missing.full(c.At, missingRetention):
		return errorf(CodeBusy, "the cluster refused %d requests to rooms that do not exist in the last %v and must remember them all: send the request again with the same id in a few seconds", MissingRoomCap, SessionMinAge)
	}
	return nil
}

// refused remembers that the rules refused c, the request key, at index,
// with err, so that the refusal is the request's only answer (guarantee
// 2): a retry, or a stale copy of c committed later, is refused the same
// even once what c needed has come true. Refusals of invalid commands are
// not remembered; they are refused the same every time anyway. A refusal
// is remembered in the scope of the token c carried: a command refused
// for acting as a player it could not prove to be leaves that player's
// request ids untouched.
func (m *Machine) refused(r *room, c Command, key sessionKey, index uint64, err error) {
	var e *Error
	if !errors.As(err, &e) || e.Code == CodeInvalid {
		return
	}
	s := session{Seq: index, At: c.At, Code: e.Code, Msg: e.Msg}
	if r != nil {
		r.sessions.record(key, s, roomRetention)
		return
	}
	m.missing.record(missingKey{room: c.Room, sessionKey: key}, s, missingRetention)
}

// public returns the state everyone may see: the word only once the round is
// over, the finished rounds only withHistory. A deleted room's is its last:
// no round to show.
func (r *room) public(withHistory bool) State {
	if r.status == StatusDeleted {
		return State{Room: r.name, Round: r.round, Seq: r.seq, Prev: r.prev, Guessed: []string{}, Wrong: []string{},
			MaxWrong: r.maxWrong, Status: StatusDeleted, Players: []Player{}}
	}
	// Masked keeps its '_' once a round is lost: the word is in Word, and
	// the letters nobody found stay told apart from the ones found.
	masked := make([]byte, len(r.word))
	for i := 0; i < len(r.word); i++ {
		if slices.Contains(r.guessed, r.word[i]) {
			masked[i] = r.word[i]
		} else {
			masked[i] = '_'
		}
	}
	s := State{
		Room:      r.name,
		Round:     r.round,
		Seq:       r.seq,
		Prev:      r.prev,
		Masked:    string(masked),
		Guessed:   letters(r.guessed),
		Wrong:     letters(r.wrong),
		WrongLeft: max(r.maxWrong-len(r.wrong), 0),
		MaxWrong:  r.maxWrong,
		Status:    r.status,
		Players:   make([]Player, len(r.players)),
	}
	if r.status != StatusPlaying {
		s.Word = r.word
	}
	for i, p := range r.players {
		s.Players[i] = p.Player
	}
	if r.last != nil {
		last := *r.last
		s.LastGuess = &last
	}
	r.publicRounds(&s, withHistory)
	return s
}

func letters(b []byte) []string {
	out := make([]string, len(b))
	for i, c := range b {
		out[i] = letterString(c)
	}
	return out
}

// letterString returns the one-byte string of c without allocating: a
// guess's letter ends up in several strings of every state and record, and
// string(c) of a byte allocates each time, while the runtime converts a
// one-byte slice to a string it keeps statically.
func letterString(c byte) string {
	return string([]byte{c})
}

// Room returns the public state of one room, with its History: what a
// reader of the room needs to show all of it.
func (m *Machine) Room(name string) (State, bool) {
	r := m.rooms[name]
	if r == nil {
		return State{}, false
	}
	return r.public(true), true
}

// Rooms lists every room, sorted by name.
func (m *Machine) Rooms() []Summary {
	out := make([]Summary, 0, len(m.rooms))
	for _, r := range m.rooms {
		out = append(out, r.summary())
	}
	slices.SortFunc(out, func(a, b Summary) int { return strings.Compare(a.Room, b.Room) })
	return out
}

// Counts returns how many rooms there are and how many seats they hold:
// what the caps bound, for metrics.
func (m *Machine) Counts() (rooms, seats int) {
	for _, r := range m.rooms {
		seats += len(r.players)
	}
	return len(m.rooms), seats
}

// States returns the public state of every room, sorted by name, without
// their histories: what a new leader republishes.
func (m *Machine) States() []State {
	names := m.roomNames()
	out := make([]State, len(names))
	for i, n := range names {
		out[i] = m.rooms[n].public(false)
	}
	return out
}

func (m *Machine) roomNames() []string {
	names := make([]string, 0, len(m.rooms))
	for n := range m.rooms {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
