package raftnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

func TestNodeOfRaftID(t *testing.T) {
	for _, tc := range []struct{ id, node string }{
		{"n1-0123456789abcdef", "n1"},
		{"hangman-node-0-fedcba9876543210", "hangman-node-0"},
		{"n1", "n1"}, // from before raft ids were per data dir
		{"n1-0123456789ABCDEF", "n1-0123456789ABCDEF"}, // not ours: upper case
		{"n1-0123456789abcde", "n1-0123456789abcde"},   // 15 digits
		{"-0123456789abcdef", "-0123456789abcdef"},     // no node id before it
		{"n1_0123456789abcdef", "n1_0123456789abcdef"},
	} {
		if got := nodeOfRaftID(raft.ServerID(tc.id)); got != tc.node {
			t.Errorf("nodeOfRaftID(%q) = %q, want %q", tc.id, got, tc.node)
		}
	}
	id, err := newRaftID("n7")
	if err != nil {
		t.Fatal(err)
	}
	if nodeOfRaftID(id) != "n7" {
		t.Fatalf("new raft id %s does not map back to its node", id)
	}
}

func TestLoadRaftID(t *testing.T) {
	quiet := harness.Logger()
	withState := func() *raft.InmemStore {
		s := raft.NewInmemStore()
		if err := s.SetUint64([]byte("CurrentTerm"), 3); err != nil {
			t.Fatal(err)
		}
		if err := s.StoreLog(&raft.Log{Index: 1, Term: 1, Type: raft.LogConfiguration}); err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("a data dir without raft state gets a new id, every time", func(t *testing.T) {
		dir := t.TempDir()
		a, err := loadRaftID(dir, "n1", raft.NewInmemStore(), raft.NewInmemStore(), quiet)
		if err != nil {
			t.Fatal(err)
		}
		if nodeOfRaftID(a) != "n1" || a == "n1" {
			t.Fatalf("fresh raft id %q", a)
		}
		// The id file survived but the log did not (raft.db deleted): the
		// old id must not be reused with a forgotten term and vote.
		b, err := loadRaftID(dir, "n1", raft.NewInmemStore(), raft.NewInmemStore(), quiet)
		if err != nil {
			t.Fatal(err)
		}
		if b == a {
			t.Fatalf("a data dir that lost its log reused raft id %s", a)
		}
		// With state, the id on file is kept.
		s := withState()
		c, err := loadRaftID(dir, "n1", s, s, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if c != b {
			t.Fatalf("raft id %s changed to %s across a restart with state", b, c)
		}
	})
	t.Run("state from before per-data-dir ids keeps the node id", func(t *testing.T) {
		s := withState()
		id, err := loadRaftID(t.TempDir(), "n1", s, s, quiet)
		if err != nil || id != "n1" {
			t.Fatalf("got %q, %v; want n1", id, err)
		}
	})
	for _, tc := range []struct{ name, file, want string }{
		{"a damaged id file is an error", "\n", "damaged"},
		{"another node's data dir is an error", "n2-0123456789abcdef\n", `belongs to node "n2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, raftIDFile), []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			s := withState()
			_, err := loadRaftID(dir, "n1", s, s, quiet)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestAdvertiseTakesNamesAndIPs(t *testing.T) {
	for _, tc := range []struct {
		advertise, bind, want, err string
	}{
		{"", "10.0.0.5:7001", "10.0.0.5:7001", ""},
		{"node1", "0.0.0.0:7001", "node1:7001", ""},
		{"hangman-node-0.hangman-node.default.svc.cluster.local", "0.0.0.0:7001", "hangman-node-0.hangman-node.default.svc.cluster.local:7001", ""},
		{"hangman_node1", "0.0.0.0:7001", "hangman_node1:7001", ""},
		{"fd00::5", "[::]:7001", "[fd00::5]:7001", ""},
		{"", "0.0.0.0:7001", "", "unspecified"},
		{"", ":7001", "", "unspecified"},
		{"0.0.0.0", "0.0.0.0:7001", "", "unspecified"},
		{"bad host!", "0.0.0.0:7001", "", "neither an IP address nor a DNS name"},
		{"-node", "0.0.0.0:7001", "", "neither an IP address nor a DNS name"},
		{"a..b", "0.0.0.0:7001", "", "neither an IP address nor a DNS name"},
	} {
		c := Config{Advertise: tc.advertise}
		got, err := c.advertised(tc.bind)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("advertise %q bind %q: got %q, %v; want %q", tc.advertise, tc.bind, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("advertise %q bind %q: got %q, %v; want an error containing %q", tc.advertise, tc.bind, got, err, tc.err)
		}
	}
}

func TestReadPeersFile(t *testing.T) {
	for _, tc := range []struct {
		name, file, err string
		servers         int
	}{
		{"node ids", `[{"id": "n1"}, {"id": "n2", "address": "10.0.0.2:7001"}, {"id": "n3", "non_voter": true}]`, "", 3},
		{"not JSON", `n1,n2`, "want a JSON array", 0},
		{"an object", `{"id": "n1"}`, "want a JSON array", 0},
		{"unknown field", `[{"id": "n1", "voter": true}]`, "unknown field", 0},
		{"trailing data", `[{"id": "n1"}] [{"id": "n2"}]`, "unexpected data", 0},
		{"empty", `[]`, "lists no servers", 0},
		{"no id", `[{"address": "10.0.0.1:7001"}]`, "has no id", 0},
		{"twice", `[{"id": "n1"}, {"id": "n1"}]`, `lists "n1" twice`, 0},
		{"bad address", `[{"id": "n1", "address": "10.0.0.1"}]`, "address", 0},
		{"no voter", `[{"id": "n1", "non_voter": true}]`, "no voter", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "peers.json")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			p, err := ReadPeersFile(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil || len(p.Servers) != tc.servers {
				t.Fatalf("got %+v, %v", p, err)
			}
		})
	}
	if _, err := ReadPeersFile(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("a missing peers file is no error")
	}
}

// writePeers writes a peers file and reads it back as a node would.
func writePeers(t *testing.T, content string) *Peers {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peers.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := ReadPeersFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// wipe deletes node i's data dir, as a lost disk or `docker volume rm`.
func (c *testCluster) wipe(i int) {
	c.t.Helper()
	if err := os.RemoveAll(c.cfgs[i].DataDir); err != nil {
		c.t.Fatalf("wipe %s: %v", c.cfgs[i].ID, err)
	}
}

// readdress gives every node new ports, and the join list their new serf
// addresses, as containers or pods recreated on new IPs.
func (c *testCluster) readdress() {
	c.t.Helper()
	ports := harness.FreePorts(c.t, 6*len(c.cfgs))
	var joins []string
	for i := range c.cfgs {
		p := ports[6*i:]
		addr := func(k int) string { return "127.0.0.1:" + strconv.Itoa(p[k]) }
		cfg := &c.cfgs[i]
		cfg.GRPCAddr, cfg.RaftAddr, cfg.SerfAddr = addr(0), addr(1), addr(2)
		cfg.NATSAddr, cfg.NATSClusterAddr, cfg.HTTPAddr = addr(3), addr(4), addr(5)
		joins = append(joins, cfg.SerfAddr)
	}
	for i := range c.cfgs {
		c.cfgs[i].Join = joins
	}
}

// readdressOne moves node i alone to new ports, joining the others where
// they are: a container or pod recreated on a new IP while the rest run.
func (c *testCluster) readdressOne(i int) {
	c.t.Helper()
	p := harness.FreePorts(c.t, 6)
	addr := func(k int) string { return "127.0.0.1:" + strconv.Itoa(p[k]) }
	cfg := &c.cfgs[i]
	cfg.GRPCAddr, cfg.RaftAddr, cfg.SerfAddr = addr(0), addr(1), addr(2)
	cfg.NATSAddr, cfg.NATSClusterAddr, cfg.HTTPAddr = addr(3), addr(4), addr(5)
	cfg.Join = nil
	for j := range c.cfgs {
		if j != i {
			cfg.Join = append(cfg.Join, c.cfgs[j].SerfAddr)
		}
	}
}

// TestNodeBackOnANewAddressWhileTheOthersRun: a node crashes and comes
// back at once on new addresses, while its peers still gossip its old
// incarnation as alive. It must get its name back at the new address,
// catch up and serve, and the others must dial it there: the name is the
// node's identity, not its address. (serf's name-conflict resolution used
// to make the newcomer quit gossip for good, a minority of one.)
func TestNodeBackOnANewAddressWhileTheOthersRun(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	moved := (lead + 1) % 3
	setupRoom(t, c, lead, "before")
	c.converged()
	c.kill(moved)
	c.readdressOne(moved)
	n := c.start(moved)
	setupRoom(t, c, c.leader(), "after")
	harness.Eventually(t, 30*time.Second, n.ID()+" a member again at its new address, caught up", func() error {
		if !roomNames(n)["after"] {
			return fmt.Errorf("%s lacks the room made after it moved", n.ID())
		}
		for i, other := range c.alive() {
			m, ok := other.members.get(n.ID())
			if !ok || m.Raft != c.cfgs[moved].RaftAddr || m.Status != serf.StatusAlive {
				return fmt.Errorf("node %d sees %s as %+v", i, n.ID(), m)
			}
		}
		return nil
	})
	c.converged()
}

// roomNames lists the rooms a node has applied.
func roomNames(n *Node) map[string]bool {
	out := make(map[string]bool)
	n.Read(func(m *game.Machine) {
		for _, s := range m.States() {
			out[s.Room] = true
		}
	})
	return out
}

// voteRequestSeen reports whether raft itself ever saw a vote or pre-vote
// request while the node was not a voter; the transport should have
// refused those before raft.
func voteRequestSeen(n *Node) func() error {
	var mu sync.Mutex
	var seen error
	obs := raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.RequestVoteRequest, raft.RequestPreVoteRequest:
			if !n.ident.isVoter() {
				mu.Lock()
				seen = fmt.Errorf("raft on %s was asked for a vote (%T) while not a voter", n.ID(), o.Data)
				mu.Unlock()
			}
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// TestServerWithoutStateRefusesVotes: hashicorp/raft grants any vote while
// its configuration is empty; a node with an empty log (a wiped disk, a
// node waiting to be added) must not.
func TestServerWithoutStateRefusesVotes(t *testing.T) {
	ports := harness.FreePorts(t, 5)
	addr := func(k int) string { return "127.0.0.1:" + strconv.Itoa(ports[k]) }
	n, err := Start(context.Background(), Config{ID: "lone", DataDir: t.TempDir(), GRPCAddr: addr(0), RaftAddr: addr(1), SerfAddr: addr(2),
		NATSAddr: addr(3), NATSClusterAddr: addr(4), FastGossip: true, Logger: harness.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, time.Second, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trans.Close() })
	requireVotesRefused(t, n, trans, raft.ServerAddress(addr(1)))
}

// voteSender is a candidate's end of raft's RPCs: what asks n for votes.
type voteSender interface {
	raft.Transport
	raft.WithPreVote
}

// requireVotesRefused asks n, at addr, for a pre-vote and a vote for term
// 7 over trans, as a candidate with a long log would, and fails unless n
// refuses both and stays at term 0.
func requireVotesRefused(t *testing.T, n *Node, trans voteSender, addr raft.ServerAddress) {
	t.Helper()
	header := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("candidate"), Addr: []byte(trans.LocalAddr())}
	var pre raft.RequestPreVoteResponse
	if err := trans.RequestPreVote(n.ident.raftID, addr, &raft.RequestPreVoteRequest{RPCHeader: header, Term: 7, LastLogIndex: 100, LastLogTerm: 6}, &pre); err != nil {
		t.Fatal(err)
	}
	var vote raft.RequestVoteResponse
	if err := trans.RequestVote(n.ident.raftID, addr, &raft.RequestVoteRequest{RPCHeader: header, Term: 7, LastLogIndex: 100, LastLogTerm: 6}, &vote); err != nil {
		t.Fatal(err)
	}
	if pre.Granted || vote.Granted {
		t.Fatalf("a server with an empty log granted votes: pre-vote %v, vote %v", pre.Granted, vote.Granted)
	}
	if term := n.raft.CurrentTerm(); term != 0 {
		t.Fatalf("a refused vote moved the term to %d", term)
	}
}

// TestWipedVoterRejoinsAsANewServer: the leader loses its disk under load
// and comes back. It must come back under a new raft id, never be asked
// (by raft) for a vote before it is a voter again, join as a non-voter,
// be promoted only once its old incarnation is out of the configuration,
// and nothing acknowledged may be lost.
func TestWipedVoterRejoinsAsANewServer(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	victim := c.leader()
	victimID := c.cfgs[victim].ID
	oldRaftID := c.nodes[victim].ident.raftID
	survivor := (victim + 1) % 3

	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		cl := c.client((victim + 1 + w) % 3)
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				room := fmt.Sprintf("load-%d-%d", w, k)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: room, MaxWrong: 26, RequestId: room})
				cancel()
				if err == nil {
					mu.Lock()
					acked = append(acked, room)
					mu.Unlock()
				}
			}
		})
	}
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	harness.Eventually(t, 15*time.Second, "writes under load", func() error {
		if k := ackedCount(); k < 20 {
			return fmt.Errorf("%d acknowledged", k)
		}
		return nil
	})

	c.kill(victim)
	c.wipe(victim)
	n := c.start(victim)
	voteSeen := voteRequestSeen(n)
	if n.ident.raftID == oldRaftID || nodeOfRaftID(n.ident.raftID) != victimID {
		t.Fatalf("wiped %s came back as raft server %s (was %s)", victimID, n.ident.raftID, oldRaftID)
	}
	before := ackedCount()
	harness.Eventually(t, 30*time.Second, "the wiped node to be a voter again, its old incarnation gone", func() error {
		if err := voteSeen(); err != nil {
			return err
		}
		if s := c.suffrage(victimID); s != raft.Voter.String() {
			return fmt.Errorf("%s is %q", victimID, s)
		}
		for _, s := range c.nodes[c.leader()].raft.GetConfiguration().Configuration().Servers {
			if s.ID == oldRaftID {
				return fmt.Errorf("old incarnation %s still in the configuration", oldRaftID)
			}
		}
		if k := ackedCount(); k < before+20 {
			return fmt.Errorf("only %d writes acknowledged since the restart", k-before)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if err := voteSeen(); err != nil {
		t.Fatal(err)
	}
	c.converged()

	// The configuration history, as the log holds it: the new server
	// joined as a non-voter and became a voter only once the old one was
	// gone.
	checkIncarnationHistory(t, c.nodes[survivor], oldRaftID, n.ident.raftID)

	for i, node := range c.alive() {
		rooms := roomNames(node)
		mu.Lock()
		for _, r := range acked {
			if !rooms[r] {
				t.Errorf("node %d (%s) lacks acknowledged room %s", i, node.ID(), r)
			}
		}
		mu.Unlock()
	}
	t.Logf("%d writes acknowledged under load, none lost", ackedCount())
}

// checkIncarnationHistory reads every configuration entry in n's log and
// checks how newID replaced oldID.
func checkIncarnationHistory(t *testing.T, n *Node, oldID, newID raft.ServerID) {
	t.Helper()
	first, err := n.logStore.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := n.logStore.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	joined := false
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := n.logStore.GetLog(i, &l); err != nil {
			t.Fatalf("read entry %d: %v", i, err)
		}
		if l.Type != raft.LogConfiguration {
			continue
		}
		cfg := raft.DecodeConfiguration(l.Data)
		var hasOld bool
		suffrage := raft.ServerSuffrage(-1)
		for _, s := range cfg.Servers {
			hasOld = hasOld || s.ID == oldID
			if s.ID == newID {
				suffrage = s.Suffrage
			}
		}
		switch {
		case !joined && suffrage == raft.Voter:
			t.Fatalf("entry %d: %s entered the configuration as a voter", i, newID)
		case suffrage == raft.Voter && hasOld:
			t.Fatalf("entry %d: %s is a voter while its old incarnation %s is still in the configuration", i, newID, oldID)
		case suffrage == raft.Nonvoter:
			joined = true
		}
	}
	if !joined {
		t.Fatalf("%s never appears as a non-voter in the log [%d, %d]", newID, first, last)
	}
}

// TestWipedMajorityNeverFormsAClusterAndRecovers: node 1 is stopped,
// nodes 2 and 3 lose their disks and come back. Nothing may be formed
// over node 1's log: no leader, no acknowledged write, each node says
// why; the operator recovers node 1 from a peers file, and then every
// room acknowledged before is there and the wiped nodes rejoin as new
// servers.
func TestWipedMajorityNeverFormsAClusterAndRecovers(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	for _, room := range []string{"r1", "r2", "r3"} {
		setupRoom(t, c, 0, room)
	}
	c.converged()
	before := roomsOf(t, c.nodes[0])
	for i := range 3 {
		c.kill(i)
	}
	c.wipe(1)
	c.wipe(2)
	c.start(1)
	c.start(2)
	harness.Eventually(t, 15*time.Second, "the wiped nodes to wait for a third", func() error {
		for _, i := range []int{1, 2} {
			if err := c.nodes[i].Ready(); err == nil || !strings.Contains(err.Error(), "waiting for 3 nodes") {
				return fmt.Errorf("%s: %v", c.cfgs[i].ID, err)
			}
		}
		return nil
	})

	c.start(0)
	harness.Eventually(t, 15*time.Second, "every node to name the lost majority", func() error {
		for i, n := range c.alive() {
			var lost *lostMajorityError
			if err := n.Ready(); !errors.As(err, &lost) {
				return fmt.Errorf("node %d: %v", i, err)
			}
		}
		return nil
	})
	reason := c.nodes[1].Ready().Error()
	for _, want := range []string{"2 of 3 raft voters (n2, n3)", "n1's log at index", "hangman node --recover", "on n1"} {
		if !strings.Contains(reason, want) {
			t.Errorf("n2's reason %q does not say %q", reason, want)
		}
	}
	t.Logf("n2: %s", reason)
	t.Logf("n1: %s", c.nodes[0].Ready())
	cl := c.client(1)
	harness.Throughout(t, 3*time.Second, "no leader and no acknowledged write", func() error {
		for _, n := range c.alive() {
			if n.IsLeader() {
				return fmt.Errorf("%s leads", n.ID())
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "w1", MaxWrong: 26}); err == nil {
			return errors.New("CreateRoom w1 was acknowledged")
		}
		return nil
	})

	// The operator's way back: node 1 alone is the configuration.
	c.kill(0)
	c.cfgs[0].Recover = writePeers(t, `[{"id": "n1"}]`)
	c.start(0)
	if l := c.leader(); l != 0 {
		t.Fatalf("leader is %s after recovering n1", c.cfgs[l].ID)
	}
	for _, id := range []string{"n2", "n3"} {
		harness.Eventually(t, 30*time.Second, id+" to rejoin as a voter", func() error {
			if s := c.suffrage(id); s != raft.Voter.String() {
				return fmt.Errorf("%s is %q", id, s)
			}
			return nil
		})
	}
	c.converged()
	for i, n := range c.alive() {
		if got := roomsOf(t, n); got != before {
			t.Fatalf("node %d after recovery has rooms %s, want %s", i, got, before)
		}
		if err := n.Ready(); err != nil {
			t.Fatalf("node %d not ready after recovery: %v", i, err)
		}
	}

	// A restart with the same flag does not apply the file again: n1
	// comes back with the three voters it had.
	c.kill(0)
	n1 := c.start(0)
	if servers := n1.raft.GetConfiguration().Configuration().Servers; len(servers) != 3 {
		t.Fatalf("restarting with the same --recover applied it again: configuration %v", servers)
	}
	c.leader()
}

// TestRecoverRefusesWhatItCannotDo: a peers file that leaves this node
// out, or names a server this node does not know, is refused before
// anything is changed.
func TestRecoverRefusesWhatItCannotDo(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	setupRoom(t, c, 0, "kept")
	c.converged()
	c.kill(0)
	last, err := lastIndexInDir(c.cfgs[0].DataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ peers, want string }{
		{`[{"id": "n2"}]`, "does not list this node"},
		{`[{"id": "n1"}, {"id": "n9"}]`, `"n9" is neither this node nor a server of its raft configuration`},
	} {
		cfg := c.cfgs[0]
		cfg.Recover = writePeers(t, tc.peers)
		if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("recover with %s: got %v, want an error containing %q", tc.peers, err, tc.want)
		}
		if got, err := lastIndexInDir(c.cfgs[0].DataDir); err != nil || got != last {
			t.Fatalf("refused recovery changed the log: last index %d (was %d), %v", got, last, err)
		}
	}
	c.start(0)
	c.leader()
	c.converged()
}

// TestClusterRestartedOnNewAddressesElects: every node restarts with the
// same data on new ports (containers or pods recreated on new IPs). The
// raft configuration on disk holds only the old addresses; the nodes must
// find each other by id through serf and elect within seconds.
func TestClusterRestartedOnNewAddressesElects(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	for _, room := range []string{"a1", "a2"} {
		setupRoom(t, c, 0, room)
	}
	c.converged()
	before := roomsOf(t, c.nodes[0])
	for i := range 3 {
		c.kill(i)
	}
	c.readdress()
	start := time.Now()
	for i := range 3 {
		c.start(i)
	}
	c.leader()
	t.Logf("a leader %v after restarting on new addresses", time.Since(start).Round(time.Millisecond))
	c.converged()
	for i, n := range c.alive() {
		if got := roomsOf(t, n); got != before {
			t.Fatalf("node %d has rooms %s, want %s", i, got, before)
		}
	}
	setupRoom(t, c, 1, "after")
	// Every node reports the servers at the addresses raft dials now.
	harness.Eventually(t, 15*time.Second, "every server reported at its new address", func() error {
		for i, n := range c.alive() {
			st, err := c.clusterClient(i).Status(ctxT(t), &hangmanv1.StatusRequest{})
			if err != nil {
				return err
			}
			for _, s := range st.GetConfiguration() {
				m, ok := n.members.byRaftID(raft.ServerID(s.GetId()))
				if !ok || s.GetAddress() != m.Raft {
					return fmt.Errorf("%s reports %s at %s", n.ID(), s.GetId(), s.GetAddress())
				}
			}
		}
		return nil
	})
}
