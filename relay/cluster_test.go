package relay

import (
	"encoding/json"
	"testing"
	"time"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// clusterOf decodes a "cluster" frame.
func clusterOf(t *testing.T, f frame) clusterFrame {
	t.Helper()
	var cf clusterFrame
	if err := json.Unmarshal(f.raw, &cf); err != nil {
		t.Fatalf("bad cluster frame %s: %v", f.raw, err)
	}
	return cf
}

func hasEvent(cf clusterFrame, kind, name, status string, term uint64) bool {
	for _, e := range cf.Events {
		if e.Kind == kind && (e.Node == name || e.Relay == name) && e.Status == status && e.Term == term {
			return true
		}
	}
	return false
}

// TestClusterFeed: a session that asks for the cluster view gets it at
// once and again when the cluster announces something; relays show with
// their connection counts; a session that did not ask gets nothing.
func TestClusterFeed(t *testing.T) {
	cl := startCluster(t)
	twoLn := listen(t)
	tr := startRelay(t, cl, func(c *Config) { c.AllowedOrigins = []string{urlOf(twoLn)} })
	bystander := mustDial(t, tr.url)
	c := mustDial(t, tr.url)
	c.send(`{"type":"cluster","watch":true,"id":"c1"}`)
	c.expect("ack", func(f frame) bool { return f.Op == "cluster" && f.ID == "c1" })
	first := clusterOf(t, mustFrame(c, "cluster", nil))
	if first.Relay != tr.cfg.Name || len(first.Nodes) != 1 || first.Nodes[0].Addr != cl.grpcAddr {
		t.Fatalf("first cluster frame %+v", first)
	}
	if len(first.Relays) != 1 || !first.Relays[0].Self || first.Relays[0].Sessions != 2 {
		t.Fatalf("relays %+v: want this relay with its 2 sessions", first.Relays)
	}

	// The leader's announcements become events.
	at := time.Now().UTC().Format(time.RFC3339Nano)
	if err := cl.nc.Publish("hangman.cluster.leader", []byte(`{"leader":"n2","term":7,"at":"`+at+`"}`)); err != nil {
		t.Fatal(err)
	}
	if err := cl.nc.Publish("hangman.cluster.member", []byte(`{"node":"n4","status":"join","at":"`+at+`"}`)); err != nil {
		t.Fatal(err)
	}
	f := mustFrame(c, "cluster", func(f frame) bool {
		cf := clusterOf(t, f)
		return hasEvent(cf, "leader", "n2", "", 7) && hasEvent(cf, "member", "n4", "join", 0)
	})
	_ = f
	// An older term is no news.
	_ = cl.nc.Publish("hangman.cluster.leader", []byte(`{"leader":"n1","term":3,"at":"`+at+`"}`))
	// A second relay appears with its own sessions.
	two := startRelayOn(t, cl, twoLn, nil)
	mustDial(t, two.url)
	last := clusterOf(t, mustFrame(c, "cluster", func(f frame) bool {
		cf := clusterOf(t, f)
		for _, r := range cf.Relays {
			if r.URL == two.url && r.Sessions == 1 {
				return true
			}
		}
		return false
	}))
	if hasEvent(last, "leader", "n1", "", 3) {
		t.Errorf("a stale leader announcement became an event: %+v", last.Events)
	}

	// A node without ClusterService shows as unreachable, with why.
	if n := last.Nodes[0]; n.Role != "unreachable" || n.Healthy || n.Error == "" {
		t.Errorf("node without a cluster service: %+v", n)
	}

	// Only the watcher got cluster frames.
	bystander.send(`{"type":"ping","id":"p"}`)
	bystander.expect("pong", nil)
	for _, f := range bystander.seen {
		if f.Type == "cluster" {
			t.Fatalf("a session that did not ask got %s", f.raw)
		}
	}

	// GET /cluster serves the same view to scripts.
	code, body := httpGet(t, tr.url+"/cluster", nil)
	var viaHTTP clusterFrame
	if code != 200 || json.Unmarshal(body, &viaHTTP) != nil || viaHTTP.Type != "cluster" || !hasEvent(viaHTTP, "leader", "n2", "", 7) {
		t.Fatalf("GET /cluster = %d %s", code, body)
	}
}

// TestClusterFeedRefusesOddAnnouncements: what does not look like a node
// name never reaches the page.
func TestClusterFeedRefusesOddAnnouncements(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	c := mustDial(t, tr.url)
	c.send(`{"type":"cluster"}`)
	c.expect("ack", func(f frame) bool { return f.Op == "cluster" })
	mustFrame(c, "cluster", nil)
	_ = cl.nc.Publish("hangman.cluster.member", []byte(`{"node":"<img src=x>  spaced","status":"join"}`))
	_ = cl.nc.Publish("hangman.cluster.member", []byte(`{"node":"n9","status":"join"}`))
	cf := clusterOf(t, mustFrame(c, "cluster", func(f frame) bool { return hasEvent(clusterOf(t, f), "member", "n9", "join", 0) }))
	if len(cf.Events) != 1 {
		t.Fatalf("events %+v: the odd one got in", cf.Events)
	}
}

func mustFrame(c *wsClient, typ string, ok func(frame) bool) frame {
	c.t.Helper()
	f, _ := c.expect(typ, ok)
	return f
}

// TestClusterViewNamesNodesItHasNotHeard: a node that has not answered
// this relay's status polls (down, or back but not yet answering) is shown
// under the name the cluster's members give its address, not by its
// address alone: the operator sees which node is silent, and the page
// keeps it in its place in the list instead of moving every other node.
func TestClusterViewNamesNodesItHasNotHeard(t *testing.T) {
	cl := startCluster(t)
	// The test cluster's node has no status to give: it stays unreachable.
	cl.members.set(&hangmanv1.Member{Name: "n1", Address: "10.0.0.1:7946", Status: "alive", GrpcAddress: cl.grpcAddr})
	tr := startRelay(t, cl, nil)
	c := mustDial(t, tr.url)
	c.send(`{"type":"cluster","watch":true,"id":"c1"}`)
	mustFrame(c, "cluster", func(f frame) bool {
		cf := clusterOf(t, f)
		return len(cf.Nodes) == 1 && cf.Nodes[0].Role == "unreachable" && cf.Nodes[0].ID == "n1"
	})
}
