package relay

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"

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
				// The watch's ack and the room's state (fetched or cached);
				// welcome, relay list and spectator counts come too.
				for acked, stated := false, false; !acked || !stated; {
					_, msg, err := conn.ReadMessage()
					if err != nil {
						b.Fatal(err)
					}
					acked = acked || strings.HasPrefix(string(msg), `{"type":"ack"`)
					stated = stated || strings.HasPrefix(string(msg), `{"type":"state"`)
				}
				go func() {
					for {
						_, msg, err := conn.ReadMessage()
						if err != nil {
							return
						}
						// Only the states published below count: the
						// spectator counts of the sessions still joining
						// come meanwhile.
						if !strings.HasPrefix(string(msg), `{"type":"state"`) {
							continue
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

// BenchmarkFanOut measures the relay's write path alone: one state frame
// fanned out to every session of a room (the outboxes, their writers, a
// writev per socket) over real loopback TCP sockets, without NATS or
// websocket clients parsing frames. One op is one state written to all N
// sockets and read off by their peers.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			var stats counters
			log := slog.New(slog.DiscardHandler)
			out := &sender{sendBuffer: DefaultSendBuffer, writeTimeout: DefaultWriteTimeout, stats: &stats, log: log}
			f := newRoomFeed("bench", &roomSink{queue: out.queue, stats: &stats, log: log, eventWait: defaultEventWait})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			var received atomic.Int64
			for range n {
				peer, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				conn, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = peer.Close(); _ = conn.Close() })
				go func() {
					buf := make([]byte, 64<<10)
					for {
						k, err := peer.Read(buf)
						received.Add(int64(k))
						if err != nil {
							return
						}
					}
				}()
				f.sessions[&client{sess: &melody.Session{}, conn: &trackedConn{Conn: conn}}] = struct{}{}
			}
			st := game.State{Room: "bench", Round: 1, Masked: "h_ng_an", Guessed: []string{"h", "n", "g", "a"}, Wrong: []string{"e", "t"}, WrongLeft: 4, MaxWrong: 6, Status: game.StatusPlaying,
				Players: []game.Player{{ID: "p1", Name: "Ada", Score: 3}, {ID: "p2", Name: "Grace", Score: 5}}, LastGuess: &game.LastGuess{Player: "p2", Letter: "a", Outcome: game.OutcomeCorrect}}
			// Seqs of the same number of digits: every frame has the same
			// length, so the bytes read say how many arrived.
			frames := make([][]byte, b.N)
			for i := range frames {
				st.Seq = uint64(1_000_000_000 + i)
				frames[i] = wrapPayload("state", st.AppendJSON(nil))
			}
			perFrame := int64(len(appendFrameHeader(nil, len(frames[0]))) + len(frames[0]))
			b.SetBytes(perFrame * int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				f.mu.Lock()
				f.offerStateLocked(seqs{Seq: uint64(1_000_000_000 + i)}, frames[i])
				f.mu.Unlock()
				want := perFrame * int64(n) * int64(i+1)
				deadline := time.Now().Add(30 * time.Second)
				for received.Load() < want {
					if time.Now().After(deadline) {
						b.Fatalf("state %d: %d of %d bytes read", i, received.Load(), want)
					}
					runtime.Gosched()
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
