package relay

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hangman/hangman/services/game"
)

// BenchmarkBroadcast measures one NATS state message reaching every session
// of a room: publish, relay fan-out (one frame shared by all sessions),
// websocket writes, and N clients reading it. One op is one message
// delivered to all N.
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			cl := startTrustedCluster(b)
			cl.createRoom(b, "bench")
			// Every session is on loopback: no per-address cap.
			tr := startRelay(b, cl, func(c *Config) { c.SendBuffer = 256; c.MaxConnsPerAddr = -1 })
			var total atomic.Int64
			var target atomic.Int64
			done := make(chan struct{}, 1)
			for i := 0; i < n; i++ {
				conn, _, err := websocket.DefaultDialer.Dial(strings.Replace(tr.url, "http://", "ws://", 1)+"/ws", nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = conn.Close() })
				if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"watch","room":"bench","id":"w"}`)); err != nil {
					b.Fatal(err)
				}
				// welcome, ack, and the room's state (fetched or cached)
				for got := 0; got < 3; {
					_, msg, err := conn.ReadMessage()
					if err != nil {
						b.Fatal(err)
					}
					if !strings.Contains(string(msg), `"relays"`) || strings.Contains(string(msg), `"welcome"`) {
						got++
					}
				}
				go func() {
					for {
						if _, _, err := conn.ReadMessage(); err != nil {
							return
						}
						if total.Add(1) == target.Load() {
							done <- struct{}{}
						}
					}
				}()
			}
			st := game.State{Room: "bench", Round: 1, Masked: "h_ng_an", Guessed: []string{"h", "n", "g", "a"}, Wrong: []string{"e", "t"}, WrongLeft: 4, MaxWrong: 6, Status: game.StatusPlaying,
				Players: []game.Player{{ID: "p1", Name: "Ada", Score: 3}, {ID: "p2", Name: "Grace", Score: 5}}, LastGuess: &game.LastGuess{Player: "p2", Letter: "a", Outcome: game.OutcomeCorrect}}
			payloads := make([][]byte, b.N)
			for i := range payloads {
				st.Seq, st.Prev = uint64(1_000_000+i+1), uint64(1_000_000+i)
				payloads[i], _ = json.Marshal(st)
			}
			b.SetBytes(int64(len(payloads[0])) * int64(n))
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				target.Store(int64(n) * int64(i+1))
				if err := cl.nc.Publish("hangman.room.bench.state", payloads[i]); err != nil {
					b.Fatal(err)
				}
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					b.Fatalf("message %d reached %d of %d sessions", i, total.Load()-int64(n)*int64(i), n)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "frames/s")
			if d := tr.stats.slowDropped.Load(); d != 0 {
				b.Fatalf("%d sessions dropped as slow", d)
			}
		})
	}
}
