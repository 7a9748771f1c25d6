package relay

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/subjects"
	"github.com/hangman/hangman/wire"
)

// TestRelayFollowsNodesToNewAddresses (issues 14 and 15): a relay started
// with its nodes' IPs keeps serving while every node comes back, one after
// the other, on an address it was never given, because it reads the new
// ones from the cluster; it drops a followed address the cluster no longer
// lists, and keeps its seeds.
func TestRelayFollowsNodesToNewAddresses(t *testing.T) {
	cl := startCluster(t)
	c2 := listen(t)
	n2 := cl.serveNode(t, c2)
	seedA, seedC := cl.grpcAddr, c2.Addr().String()
	tr := startRelay(t, cl, func(c *Config) { c.GRPCAddrs = []string{seedA, seedC} })
	ws := mustDial(t, tr.url)
	create := func(room string) {
		t.Helper()
		ws.send(map[string]any{"type": "create", "room": room, "id": "c-" + room})
		if f := ws.answer("c-" + room); f.Type != "ack" {
			t.Fatalf("create %s: %s", room, f.raw)
		}
	}
	create("before")

	member := func(name, addr string) *hangmanv1.Member {
		return &hangmanv1.Member{Name: name, Address: "10.0.0.1:7946", Status: "alive", GrpcAddress: addr}
	}
	// move stops a node's server and serves the cluster at a new address,
	// which the members then list, and nudges the relay as the leader's
	// membership announcement does.
	move := func(old interface{ Stop() }, name string, others ...*hangmanv1.Member) (string, interface{ Stop() }) {
		t.Helper()
		old.Stop()
		ln := listen(t)
		gs := cl.serveNode(t, ln)
		cl.members.set(append([]*hangmanv1.Member{member(name, ln.Addr().String())}, others...)...)
		b, _ := json.Marshal(wire.MemberChange{Node: name, Status: "alive", At: time.Now().UTC()})
		if err := cl.nc.Publish(subjects.ClusterMember, b); err != nil {
			t.Fatal(err)
		}
		return ln.Addr().String(), gs
	}
	follows := func(addr string) bool {
		st, ok := tr.nodes.states()[addr]
		return ok && st == "READY"
	}

	addrB, n1 := move(cl.grpc, "n1", member("n2", seedC))
	harness.EventuallyTrue(t, waitFor, "the relay follows n1 to "+addrB, func() bool { return follows(addrB) })
	// The names come with the addresses: the cluster view shows n1 at its
	// new address as n1 before it has answered there; the seed it left
	// is no one's now.
	if names := tr.nodes.names(); names[addrB] != "n1" || names[seedC] != "n2" || names[seedA] != "" {
		t.Fatalf("names %v: want n1 at %s, n2 at %s, none at %s", names, addrB, seedC, seedA)
	}
	addrD, _ := move(n2, "n2", member("n1", addrB))
	harness.EventuallyTrue(t, waitFor, "the relay follows n2 to "+addrD, func() bool { return follows(addrD) })
	create("after-both-moved")

	addrE, _ := move(n1, "n1", member("n2", addrD))
	harness.EventuallyTrue(t, waitFor, "the relay follows n1 to "+addrE+" and drops "+addrB, func() bool {
		st := tr.nodes.states()
		_, stale := st[addrB]
		return follows(addrE) && !stale
	})
	st := tr.nodes.states()
	for _, seed := range []string{seedA, seedC} {
		if _, ok := st[seed]; !ok {
			t.Fatalf("seed %s dropped: nodes %v", seed, st)
		}
	}
	create("after-n1-moved-again")
}

// TestGameNodes: only game nodes alive or failed, at a well-formed
// address, are followed, each once, in order, and at most maxFollowed;
// a name a page could not show is dropped, the address kept.
func TestGameNodes(t *testing.T) {
	m := func(status, addr string) *hangmanv1.Member {
		return &hangmanv1.Member{Name: "n", Status: status, GrpcAddress: addr}
	}
	named := func(name, addr string) *hangmanv1.Member {
		return &hangmanv1.Member{Name: name, Status: "alive", GrpcAddress: addr}
	}
	for _, tc := range []struct {
		name string
		in   []*hangmanv1.Member
		want []member
	}{
		{"alive and failed", []*hangmanv1.Member{m("failed", "b:7000"), m("alive", "a:7000")}, []member{{"a:7000", "n"}, {"b:7000", "n"}}},
		{"left and leaving dropped", []*hangmanv1.Member{m("left", "a:7000"), m("leaving", "b:7000"), m("alive", "c:7000")}, []member{{"c:7000", "n"}}},
		{"no game node", []*hangmanv1.Member{m("alive", "")}, nil},
		{"malformed", []*hangmanv1.Member{m("alive", "a"), m("alive", ":7000"), m("alive", "a:0"), m("alive", "a:x"), m("alive", "a:70000")}, nil},
		{"twice", []*hangmanv1.Member{m("alive", "a:7000"), m("failed", "a:7000")}, []member{{"a:7000", "n"}}},
		{"names a page cannot show", []*hangmanv1.Member{named("", "a:7000"), named("two words", "b:7000"), named(strings.Repeat("n", 65), "c:7000"), named("n\x00", "d:7000")}, []member{{"a:7000", ""}, {"b:7000", ""}, {"c:7000", ""}, {"d:7000", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gameNodes(tc.in); !slices.Equal(got, tc.want) {
				t.Fatalf("gameNodes = %v, want %v", got, tc.want)
			}
		})
	}
	var many []*hangmanv1.Member
	for i := range maxFollowed + 5 {
		many = append(many, m("alive", fmt.Sprintf("10.0.1.%d:7000", i)))
	}
	if got := gameNodes(many); len(got) != maxFollowed {
		t.Fatalf("%d members: %d addresses followed, want %d", len(many), len(got), maxFollowed)
	}
}
