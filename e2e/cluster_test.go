package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hangman/hangman/internal/harness"
)

// devSystem is `hangman dev` with its own relays, the only way the chaos
// controls exist.
type devSystem struct {
	*system
	relayURLs []string
	nodeHTTP  []string
}

var (
	playLine   = regexp.MustCompile(`^\s*play\s+(http://\S+)`)
	nodeHTTPRe = regexp.MustCompile(`\bhttp (http://\S+)`)
)

// devStartMax is how many port offsets are tried before giving up.
const devStartMax = 4

// startDevWithRelays runs the real binary's `hangman dev` (3 nodes, 2
// relays in one process) on a random port offset and waits until every
// relay is ready.
func startDevWithRelays(t *testing.T) *devSystem {
	t.Helper()
	s := newSystem(t)
	d := &devSystem{system: s}
attempt:
	for try := 0; ; try++ {
		offset := 10000 + rand.IntN(8000)
		lines := make(chan string, 64)
		p := s.spawn(fmt.Sprintf("dev+%d", offset), lines, "dev",
			"--data-dir", filepath.Join(s.dir, fmt.Sprintf("data-%d", try)),
			"--port-offset", strconv.Itoa(offset))
		d.relayURLs, d.nodeHTTP, s.grpc, s.nats = nil, nil, nil, nil
		timeout := time.After(60 * time.Second)
	read:
		for {
			select {
			case l := <-lines:
				if m := playLine.FindStringSubmatch(l); m != nil {
					d.relayURLs = append(d.relayURLs, m[1])
				} else if m := nodeLine.FindStringSubmatch(l); m != nil {
					s.grpc, s.nats = append(s.grpc, m[1]), append(s.nats, m[2])
					if h := nodeHTTPRe.FindStringSubmatch(l); h != nil {
						d.nodeHTTP = append(d.nodeHTTP, h[1])
					}
				}
				if len(s.grpc) == 3 {
					break read
				}
			case <-p.Done():
				if try < devStartMax {
					t.Logf("hangman dev on port offset %d exited early (port taken?); trying another", offset)
					continue attempt
				}
				t.Fatal("hangman dev exited before printing its addresses")
			case <-timeout:
				t.Fatal("hangman dev printed no addresses within 60s")
			}
		}
		if len(d.relayURLs) != 2 || len(s.grpc) != 3 {
			t.Fatalf("hangman dev printed relays %v and nodes %v; want 2 and 3", d.relayURLs, s.grpc)
		}
		t.Logf("hangman dev --port-offset %d: relays %v, nodes %v", offset, d.relayURLs, s.grpc)
		for _, u := range d.relayURLs {
			s.waitReady(u + "/readyz")
		}
		return d
	}
}

func httpStatus(t *testing.T, method, url string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestClusterViewSurvivesLeaderStop is the operator's story in `hangman
// dev`: the cluster view shows the nodes and the leader; stopping the
// leader from the page brings a new leader on screen, and a player's guess
// still goes through. The node comes back from the page too.
func TestClusterViewSurvivesLeaderStop(t *testing.T) {
	needBrowser(t)
	sys := startDevWithRelays(t)
	r1, r2 := sys.relayURLs[0], sys.relayURLs[1]
	// The game nodes' operator port is the same code as `hangman node`'s:
	// no development controls there either.
	for _, h := range sys.nodeHTTP {
		if code := httpStatus(t, "GET", h+"/dev/state"); code != http.StatusNotFound {
			t.Errorf("node %s: GET /dev/state = %d, want 404", h, code)
		}
		if code := httpStatus(t, "GET", h+"/metrics"); code != http.StatusOK {
			t.Errorf("node %s: GET /metrics = %d", h, code)
		}
	}

	ops := newBrowser(t, "operator", 1280, 900)
	player := newBrowser(t, "player", 1000, 800)

	// The player starts a game on relay 2.
	room := uniqueRoom("chaos")
	player.Do("open the page", chromedp.Navigate(r2+"/"))
	player.WaitJS("connected", connectedJS)
	player.createRoom("Pat", room)
	guess := func(what string) {
		t.Helper()
		var letter string
		player.Eval(`(document.querySelector('#keyboard button:not(:disabled)')||{}).dataset.letter`, &letter)
		if letter == "" {
			t.Fatal("no letter left to guess")
		}
		player.Do(what, chromedp.Click(chromedp.CSS(`#keyboard [data-letter="`+letter+`"]`)))
		player.WaitJS(what+" acknowledged", fmt.Sprintf(`(() => { const b = document.querySelector('#keyboard [data-letter="%s"]'); return b.disabled && !b.classList.contains("pending"); })()`, letter))
		player.WaitJS(what+" in the feed", fmt.Sprintf(`document.querySelector("#feed").textContent.includes("You guessed %s")`, string(letter[0]-32)))
	}
	guess("a first guess")

	// The operator opens the cluster view on relay 1.
	ops.Do("open the cluster view", chromedp.Navigate(r1+"/#/cluster"))
	ops.WaitJS("connected", connectedJS)
	ops.WaitJS("three nodes and a leader", `document.querySelectorAll("#nodes li").length === 3 && !!document.querySelector("#nodes li.leader") && document.querySelectorAll("#nodes .health.ok").length === 3`)
	ops.WaitJS("the chaos controls (dev only)", `!document.querySelector("#chaos").hidden && !!document.querySelector('#nodes li.leader button[data-action="stop"]')`)
	ops.WaitJS("both relays with connection counts", `document.querySelectorAll("#relay-list li").length === 2 && [...document.querySelectorAll("#relay-list .sessions")].every((e) => /^\d+/.test(e.textContent))`)
	ops.WaitJS("a leader event", `document.querySelector("#cluster-events").textContent.includes("became leader")`)
	var leader string
	ops.Eval(`document.querySelector("#nodes li.leader").dataset.node`, &leader)
	var summary string
	ops.Eval(`document.querySelector("#cluster-summary").textContent`, &summary)
	if !regexp.MustCompile(`Leader ` + regexp.QuoteMeta(leader) + ` · term \d+`).MatchString(summary) {
		t.Errorf("summary %q does not name leader %s", summary, leader)
	}
	t.Logf("leader before: %s (%s)", leader, summary)

	// Stop the leader from the page.
	ops.Do("stop the leader", chromedp.Click(chromedp.CSS(`#nodes li[data-node="`+leader+`"] button[data-action="stop"]`)))
	ops.WaitJS("the old leader shown stopped", fmt.Sprintf(`document.querySelector('#nodes li[data-node=%q]').dataset.role === "stopped"`, leader))
	ops.WaitJS("a new leader shown", fmt.Sprintf(`(() => { const l = document.querySelector("#nodes li.leader"); return !!l && l.dataset.node !== %q; })()`, leader))
	var newLeader string
	ops.Eval(`document.querySelector("#nodes li.leader").dataset.node`, &newLeader)
	ops.WaitJS("the new leader in the events", fmt.Sprintf(`document.querySelector("#cluster-events").textContent.includes(%q)`, newLeader+" became leader"))
	t.Logf("leader after stopping %s: %s", leader, newLeader)

	// The game carries on.
	guess("a guess after the leader stopped")

	ops.WaitJS("animations done", `document.getAnimations().length === 0`)
	ops.screenshot(filepath.Join(artifactsDir(t), "cluster.png"))

	// Membership: serf soon declares the stopped node failed, and the new
	// leader announces it.
	ops.WaitJS("the membership failure in the events", fmt.Sprintf(`document.querySelector("#cluster-events").textContent.includes(%q)`, leader+" failed"))

	// Bring the node back from the page; it rejoins as a follower.
	ops.Do("restart the old leader", chromedp.Click(chromedp.CSS(`#nodes li[data-node="`+leader+`"] button[data-action="start"]`)))
	ops.WaitJS("the old leader back and healthy", fmt.Sprintf(`(() => { const li = document.querySelector('#nodes li[data-node=%q]'); return li.dataset.role === "follower" && !!li.querySelector(".health.ok"); })()`, leader))
	ops.WaitJS("the membership join in the events", fmt.Sprintf(`document.querySelector("#cluster-events").textContent.includes(%q)`, leader+" joined"))
	guess("a guess with every node back")

	// Hand leadership over from the page.
	ops.Do("transfer leadership", chromedp.Click(chromedp.CSS("#transfer")))
	ops.WaitJS("another leader after the transfer", fmt.Sprintf(`(() => { const l = document.querySelector("#nodes li.leader"); return !!l && l.dataset.node !== %q; })()`, newLeader))
	guess("a guess after the transfer")

	// Stop the relay this page came from: the page moves to the other
	// relay, and restarts the stopped one through it.
	ops.WaitJS("the page knows both relays", fmt.Sprintf(`document.querySelector("#relays").textContent.includes(%q)`, r2[len("http://"):]))
	ops.Do("stop this page's relay", chromedp.Click(chromedp.CSS(`#relay-list li[data-relay="relay-1"] button[data-action="stop"]`)))
	ops.WaitJS("the page on relay-2", `document.querySelector("#badge").dataset.state === "connected" && document.querySelector("#badge-text").textContent.includes("relay-2")`)
	ops.WaitJS("relay-1 shown stopped", `!!document.querySelector('#relay-list li[data-relay="relay-1"] .role.stopped')`)
	ops.WaitJS("the controls answered by relay-2", `!!document.querySelector('#relay-list li[data-relay="relay-1"] button[data-action="start"]:not(:disabled)')`)
	ops.Do("start relay-1 again", chromedp.Click(chromedp.CSS(`#relay-list li[data-relay="relay-1"] button[data-action="start"]`)))
	ops.WaitJS("relay-1 running again", `!!document.querySelector('#relay-list li[data-relay="relay-1"] button[data-action="stop"]')`)
	sys.waitReady(r1 + "/readyz")
	guess("a guess after the relays moved")
	ops.WaitJS("animations done", `document.getAnimations().length === 0`)
	ops.screenshot(filepath.Join(artifactsDir(t), "cluster-recovered.png"))

	// The lists are rebuilt at every cluster view. A click whose press and
	// release straddle a rebuild still counts: press a follower's "Make
	// leader", let a guess change what the view shows, and release once
	// the node's stats were rebuilt under the pointer.
	var target string
	ops.Eval(`(() => { const b = document.querySelector('#nodes li:not(.leader) button[data-action="make"]'); return b ? b.closest("li").dataset.node : ""; })()`, &target)
	if target == "" {
		t.Fatal("no follower to make leader")
	}
	var at []float64
	ops.Eval(fmt.Sprintf(`(() => { const b = document.querySelector('#nodes li[data-node=%q] button[data-action="make"]'); b.scrollIntoView({block: "center"}); const r = b.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`, target), &at)
	var held bool
	ops.Eval(fmt.Sprintf(`!!(window.heldStats = document.querySelector('#nodes li[data-node=%q] .stats'))`, target), &held)
	ops.Do("press Make leader "+target, chromedp.MouseEvent(chromedp.MousePressed, at[0], at[1], chromedp.ButtonLeft, chromedp.ClickCount(1)))
	guess("a guess while the button is held")
	ops.WaitJS("the node list rebuilt under the pointer", `!document.contains(window.heldStats)`)
	ops.Do("release the button", chromedp.MouseEvent(chromedp.MouseReleased, at[0], at[1], chromedp.ButtonLeft, chromedp.ClickCount(1)))
	ops.WaitJS(target+" leads after the click", fmt.Sprintf(`(document.querySelector("#nodes li.leader") || {dataset: {}}).dataset.node === %q`, target))
}

// TestRelayCommandHasNoDevControls: `hangman relay`, the real binary, has
// no development controls whatever the request.
func TestRelayCommandHasNoDevControls(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	s := newSystem(t)
	port := harness.FreePorts(t, 1)[0]
	u := fmt.Sprintf("http://127.0.0.1:%d", port)
	// No cluster behind it: the relay serves HTTP while it keeps trying.
	s.spawn("relay", nil, "relay", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--nats", "nats://127.0.0.1:1", "--grpc", "127.0.0.1:1")
	s.waitReady(u + "/healthz")
	for _, c := range []struct{ method, path string }{
		{"GET", "/dev/state"}, {"POST", "/dev/nodes/node1/stop"}, {"POST", "/dev/relays/relay-1/stop"}, {"POST", "/dev/leader/transfer"},
	} {
		if code := httpStatus(t, c.method, u+c.path); code != http.StatusNotFound {
			t.Errorf("%s %s = %d, want 404", c.method, c.path, code)
		}
	}
	if code := httpStatus(t, "GET", u+"/metrics"); code != http.StatusOK {
		t.Errorf("GET /metrics = %d", code)
	}
	if code := httpStatus(t, "GET", u+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz without NATS = %d, want 503", code)
	}
}
