package relay

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestGuessFlood1000PerSecondRefusedOthersPlay floods one connection with
// 1,000 guesses a second under the default limits: the flooder is told to
// slow down, frame by frame, and then cut off; a player in the same room
// keeps playing as if nothing happened.
func TestGuessFlood1000PerSecondRefusedOthersPlay(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "besieged")
	tr := startRelay(t, cl, nil)
	flooder := mustDial(t, tr.url)
	calm := mustDial(t, tr.url)
	join(flooder, "besieged", "mallory", "Mallory")
	join(calm, "besieged", "ann", "Ann")

	var (
		wg      sync.WaitGroup
		sent    int
		elapsed time.Duration
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond) // 1,000 frames a second
		defer tick.Stop()
		start := time.Now()
		defer func() { elapsed = time.Since(start) }()
		for i := range 1000 {
			<-tick.C
			flooder.wmu.Lock()
			err := flooder.conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"guess","letter":"%c","id":"f%d","token":%q}`, 'a'+i%26, i, flooder.token))
			flooder.wmu.Unlock()
			if err != nil {
				return // cut off
			}
			sent++
		}
	}()

	// Meanwhile the other player's guesses go through, with no limit hit.
	for i, letter := range []string{"e", "t"} {
		id := fmt.Sprintf("calm%d", i)
		calm.guess(letter, id)
		calm.expect("ack", func(f frame) bool { return f.ID == id && f.Op == "guess" })
	}

	limited := flooder.expectError(CodeRateLimited)
	if !strings.Contains(limited.Message, "slow down") || !strings.HasPrefix(limited.ID, "f") {
		t.Fatalf("rate limit error is not clear or not matched to its frame: %s", limited.raw)
	}
	flooder.expectError(CodeFlood)
	var ce *websocket.CloseError
	if err := flooder.waitClosed(); !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("flooder ended with %v, want close 1008", err)
	}
	wg.Wait()

	// What got through is the token bucket's allowance, not the flood.
	processed := 0
	for {
		select {
		case f := <-flooder.frames:
			flooder.seen = append(flooder.seen, f)
			continue
		default:
		}
		break
	}
	for _, f := range flooder.seen {
		if strings.HasPrefix(f.ID, "f") && f.Code != CodeRateLimited && f.Code != CodeFlood {
			processed++
		}
	}
	allowance := DefaultMessageBurst + int(elapsed.Seconds()*DefaultMessageRate) + 1
	if processed > allowance {
		t.Fatalf("%d of %d flood frames were processed in %v; the bucket allows %d", processed, sent, elapsed, allowance)
	}
	if tr.stats.rateLimited.Load() == 0 {
		t.Fatal("no frame counted as rate limited")
	}
	t.Logf("flooder sent %d frames in %v before being cut off; %d processed, %d rate limited", sent, elapsed.Round(time.Millisecond), processed, tr.stats.rateLimited.Load())

	// The calm player is still connected and served.
	calm.send(`{"type":"ping","id":"still-here"}`)
	calm.expect("pong", func(f frame) bool { return f.ID == "still-here" })
	for _, f := range calm.seen {
		if f.Type == "error" {
			t.Fatalf("the calm player got an error: %s", f.raw)
		}
	}
}

// TestIdleConnectionClosed: a connection that stops answering pings is
// closed after the idle timeout; one that answers stays open past it.
func TestIdleConnectionClosed(t *testing.T) {
	cl := startCluster(t)
	const idle = 300 * time.Millisecond
	tr := startRelay(t, cl, func(c *Config) { c.IdleTimeout = idle })
	alive := mustDial(t, tr.url) // its read loop answers pings
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	silent, _, err := d.Dial(strings.Replace(tr.url, "http://", "ws://", 1)+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetPingHandler(func(string) error { return nil }) // never answers
	start := time.Now()
	_ = silent.SetReadDeadline(time.Now().Add(waitFor))
	for {
		if _, _, err = silent.ReadMessage(); err != nil {
			break
		}
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("silent connection still open after %v", waitFor)
	}
	if took := time.Since(start); took < idle*8/10 {
		t.Fatalf("silent connection closed after %v, before the idle timeout %v", took, idle)
	}
	alive.send(`{"type":"ping","id":"p"}`)
	alive.expect("pong", func(f frame) bool { return f.ID == "p" })
}
