package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"
)

// scriptedClusterJS runs before the page's own script: it keeps the
// page's websockets, so that a test can hand the page a cluster frame of
// its own (cluster(frame), synchronously, as the socket would), and
// answers the page's GET /dev/state with window.devState when a test sets
// one, as a relay of `hangman dev` would.
const scriptedClusterJS = `(() => {
  const sockets = [];
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...args) { super(...args); sockets.push(this); }
  };
  window.cluster = (frame) => {
    const s = sockets[sockets.length - 1];
    s.dispatchEvent(new MessageEvent("message", { data: JSON.stringify(frame) }));
  };
  const fetch = window.fetch;
  window.fetch = (url, opts) => (String(url).endsWith("/dev/state") && window.devState)
    ? Promise.resolve(new Response(JSON.stringify(window.devState), { headers: { "Content-Type": "application/json" } }))
    : fetch(url, opts);
})()`

// listChangesJS hands the page two cluster frames, one after the other,
// and reports the node list after each and which list items the second
// took out of the document: all within one task, so that no frame of the
// real relay comes between.
const listChangesJS = `((first, second) => {
  const keys = () => [...document.querySelectorAll("#nodes li")].map((li) => li.dataset.node);
  window.cluster(first);
  const before = keys();
  const observer = new MutationObserver(() => {});
  observer.observe(document.querySelector("#nodes"), { childList: true });
  window.cluster(second);
  const removed = [];
  for (const m of observer.takeRecords()) for (const n of m.removedNodes) removed.push(n.dataset.node);
  observer.disconnect();
  return { before, after: keys(), removed };
})`

// TestClusterListKeepsItsItems: the cluster view's node list, from
// frames handed to the page. A button a click is on must stay in the
// document, and in its place on the screen, while the list changes
// around it (issue: a "Make leader" click lost in CI, when the view
// showed a node by address for a moment). So a node the relay could not
// name yet takes the name `hangman dev` gives its address; one nobody
// names goes after the named ones; and a node that leaves the list takes
// nothing else out of the document with it.
func TestClusterListKeepsItsItems(t *testing.T) {
	needBrowser(t)
	sys := startSystem(t, 1)
	ops := newBrowser(t, "operator", 1280, 900)
	addScript(ops, scriptedClusterJS)
	ops.Do("open the cluster view", chromedp.Navigate(sys.relays[0].url+"/#/cluster"))
	ops.WaitJS("connected", connectedJS)
	ops.WaitJS("the relay's own view", `document.querySelectorAll("#nodes li").length === 3`)

	node := func(id, addr, role string) map[string]any {
		return map[string]any{"id": id, "addr": addr, "role": role, "leader": "b", "term": 3, "commitIndex": 9, "appliedIndex": 9, "lastLogIndex": 9, "healthy": role != "unreachable"}
	}
	frame := func(nodes ...map[string]any) map[string]any {
		return map[string]any{"type": "cluster", "relay": "r", "leader": "b", "term": 3, "nodes": nodes, "relayList": []any{}, "events": []any{}}
	}
	type changes struct {
		Before, After, Removed []string
	}
	change := func(what string, first, second map[string]any) changes {
		t.Helper()
		a, _ := json.Marshal(first)
		b, _ := json.Marshal(second)
		var c changes
		ops.Eval(fmt.Sprintf("%s(%s, %s)", listChangesJS, a, b), &c)
		t.Logf("%s: %+v", what, c)
		return c
	}

	// As `hangman dev` serves it: every node's name and address, all running.
	ops.Eval(`!!(window.devState = {nodes: [
		{id: "a", grpc: "127.0.0.1:7001", http: "http://127.0.0.1:7101", running: true},
		{id: "b", grpc: "127.0.0.1:7002", http: "http://127.0.0.1:7102", running: true},
		{id: "c", grpc: "127.0.0.1:7003", http: "http://127.0.0.1:7103", running: true}], relays: []})`, new(bool))
	ops.WaitJS("the development controls", `!document.querySelector("#chaos").hidden`)

	named := frame(node("a", "127.0.0.1:7001", "follower"), node("b", "127.0.0.1:7002", "leader"), node("c", "127.0.0.1:7003", "follower"))
	c := change("a node the relay cannot name yet",
		named,
		frame(node("", "127.0.0.1:7001", "unreachable"), node("b", "127.0.0.1:7002", "leader"), node("c", "127.0.0.1:7003", "follower")))
	if want := []string{"a", "b", "c"}; !slices.Equal(c.After, want) || len(c.Removed) != 0 {
		t.Errorf("a node shown by address that dev names: list %v, removed %v; want %v, nothing removed", c.After, c.Removed, want)
	}

	c = change("a node nobody names",
		named,
		frame(node("", "10.9.9.9:7000", "unreachable"), node("a", "127.0.0.1:7001", "follower"), node("b", "127.0.0.1:7002", "leader"), node("c", "127.0.0.1:7003", "follower")))
	if want := []string{"a", "b", "c", "10.9.9.9:7000"}; !slices.Equal(c.After, want) || len(c.Removed) != 0 {
		t.Errorf("a node known by address alone: list %v, removed %v; want %v, nothing removed", c.After, c.Removed, want)
	}

	c = change("a node leaves ahead of the others",
		frame(node("0", "127.0.0.1:7000", "follower"), node("a", "127.0.0.1:7001", "follower"), node("b", "127.0.0.1:7002", "leader"), node("c", "127.0.0.1:7003", "follower")),
		named)
	if want := []string{"0", "a", "b", "c"}; !slices.Equal(c.Before, want) {
		t.Fatalf("list %v before, want %v", c.Before, want)
	}
	if !slices.Equal(c.After, []string{"a", "b", "c"}) || !slices.Equal(c.Removed, []string{"0"}) {
		t.Errorf("node 0 left: list %v, and out of the document went %v; want only 0 out", c.After, c.Removed)
	}
}
