package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hangman/hangman/services/game"
)

// Run the fuzzer with, for example:
//
//	go test -run='^$' -fuzz='^FuzzDecodeClientFrame$' -fuzztime=30s ./relay
//
// Its seeds are the files under testdata/fuzz/FuzzDecodeClientFrame/; any
// input the fuzzer finds that breaks a rule below is kept there too.

// FuzzDecodeClientFrame sends arbitrary text frames to a real relay, over a
// real websocket, in front of a real game service: the relay's whole frame
// decoding and validation (JSON, ids, types, fields, the commands they
// become). Whatever a browser sends in one frame within the size limit:
//
//   - the relay does not panic and keeps the connection open (only floods
//     and oversized frames close it, and are tested elsewhere);
//   - every answer is a JSON object with a type, and a refusal is an error
//     frame with a stable code and a message, of bounded size (a frame is
//     never echoed back whole);
//   - the connection still works: a ping sent after it is answered.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping","id":"1"}`,
		`{"type":"create","room":"lobby","id":"c1"}`,
		`{"type":"join","room":"lobby","playerId":"ann","name":"Ann","id":"j1"}`,
		`{"type":"guess","letter":"e","id":"g1"}`,
		`{"type":"watch","room":"lobby"}`,
		`{"type":"newRound","id":"n1"}`,
		`{"type":"list"}`,
		`{"type":"leave"}`,
		`{"type":"nope"}`,
		`{}`,
		`[]`,
		`null`,
		`{"type":"guess","letter":"ab"}`,
		`{"type":"create","room":"x","maxWrong":-1}`,
		"{\"type\":\"join\",\"room\":\"r\",\"playerId\":\"p\",\"name\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	cl := startCluster(f)
	tr := startRelay(f, cl, func(c *Config) {
		// Only the decoding is under test here: no rate limit.
		c.MessageRate, c.MessageBurst, c.SendBuffer = 1e9, 1<<30, 4096
	})
	var conn *websocket.Conn
	f.Cleanup(func() {
		if conn != nil {
			_ = conn.Close()
		}
	})
	seq := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		// The id extraction used for refusals, on its own.
		if id := idOf(data); id != "" && !game.ValidRequestID(id) {
			t.Fatalf("idOf returned the invalid id %q", id)
		}
		if len(data) > int(tr.cfg.MaxFrameBytes) {
			return // refused and closed: TestOversizedFrameRefused
		}
		if conn == nil {
			var err error
			if conn, _, err = websocket.DefaultDialer.Dial(strings.Replace(tr.url, "http://", "ws://", 1)+"/ws", nil); err != nil {
				t.Fatalf("dial relay: %v", err)
			}
		}
		seq++
		sync := fmt.Sprintf("fuzz-sync-%d", seq)
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := conn.WriteMessage(websocket.TextMessage, data); err != nil {
			conn = nil
			t.Fatalf("write frame: %v", err)
		}
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":"`+sync+`"}`)); err != nil {
			conn = nil
			t.Fatalf("write ping after %q: %v", data, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				_ = conn.Close()
				conn = nil
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					t.Fatalf("relay closed the connection after %q: %d %s", data, ce.Code, ce.Text)
				}
				t.Fatalf("connection failed after %q: %v", data, err)
			}
			typ := checkServerFrame(t, data, b)
			if typ == "pong" && strings.Contains(string(b), `"`+sync+`"`) {
				return
			}
		}
	})
}

var errorCode = regexp.MustCompile(`^[a-z][a-z_]{1,39}$`)

// maxErrorFrame bounds an error frame: a refusal names what was wrong,
// clipped, and never carries the frame back.
const maxErrorFrame = 1024

// checkServerFrame checks one frame the relay sent after in, and returns
// its type.
func checkServerFrame(t *testing.T, in, b []byte) string {
	t.Helper()
	var f struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("after %q the relay sent a frame that is not a JSON object: %q: %v", in, b, err)
	}
	if f.Type == "" {
		t.Fatalf("after %q the relay sent a frame without a type: %q", in, b)
	}
	if f.Type == "error" {
		if !errorCode.MatchString(f.Code) || f.Message == "" {
			t.Fatalf("after %q: error frame without a stable code and a message: %q", in, b)
		}
		if len(b) > maxErrorFrame {
			t.Fatalf("after %q: error frame of %d bytes (limit %d): %q", in, len(b), maxErrorFrame, b)
		}
	}
	return f.Type
}
