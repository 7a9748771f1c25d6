package relay

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hangman/hangman/subjects"
)

// TestWelcomeComesFirstWhileTheRelayListChanges: every connection's first
// frame is its welcome (PROTOCOL.md), even when the relay list changes
// while browsers connect and every session is told of it. A browser that
// got the new list first took it for a protocol error; the bench saw one
// in 10,000 connections while two relays found each other.
func TestWelcomeComesFirstWhileTheRelayListChanges(t *testing.T) {
	cl := startCluster(t)
	urls := []string{"http://a.example", "http://b.example"}
	tr := startRelay(t, cl, func(c *Config) { c.AllowedOrigins = urls })

	// Another relay, as its heartbeats say, moves between two trusted
	// URLs as fast as NATS takes it: each move is told to every session.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b, _ := json.Marshal(heartbeat{Name: "mover", URL: urls[i%2], At: time.Now()})
			// One move per round trip to NATS: fast enough to land in the
			// gap, without burying the relay under heartbeats.
			if err := cl.nc.Publish(subjects.RelayHeartbeat, b); err != nil {
				t.Error(err)
				return
			}
			if err := cl.nc.Flush(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws := strings.Replace(tr.url, "http://", "ws://", 1) + "/ws"
	relaysSeen := 0
	for i := range 300 {
		conn, _, err := d.Dial(ws, nil)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(waitFor))
		var first, second frame
		err = conn.ReadJSON(&first)
		if err == nil && first.Type == "welcome" {
			err = conn.ReadJSON(&second)
		}
		_ = conn.Close()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if first.Type != "welcome" {
			t.Fatalf("connection %d: first frame %q, want welcome", i, first.Type)
		}
		if second.Type == "relays" {
			relaysSeen++
		}
	}
	if relaysSeen == 0 {
		t.Fatal("no connection was told of a relay list change: the test did not race the welcome")
	}
}
