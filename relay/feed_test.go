package relay

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// feedRecorder is a roomSink's queue that writes down what each session
// was sent, as the tokens TestFeedSendsEachChangeOnce compares: S<seq> a
// state alone, S<seq>e a state carrying its change's event, E<seq> an
// event alone, H<seq> a history.
type feedRecorder map[*client][]string

func (rec feedRecorder) queue(c *client, it outItem) {
	var tok string
	switch it.kind {
	case outState:
		tok = fmt.Sprintf("S%d", it.seq)
		if it.event != nil {
			if !strings.Contains(string(it.frame), eventKey) {
				tok += "(event missing from the frame)"
			}
			tok += "e"
		}
	case outEvent:
		tok = fmt.Sprintf("E%d", it.seq)
	case outHistory:
		var f struct{ Data seqs }
		if err := json.Unmarshal(it.frame, &f); err != nil {
			tok = "H(" + err.Error() + ")"
			break
		}
		tok = fmt.Sprintf("H%d", f.Data.Seq)
	default:
		tok = fmt.Sprintf("?%d", it.kind)
	}
	rec[c] = append(rec[c], tok)
}

// feedStep plays one step of a room's feed: a message from NATS (s<seq>
// or s<seq>h<historySeq> a state, e<seq>/<prev> an event, h<seq> a
// history), r<seq>h<historySeq> a state read over gRPC, with its history,
// "timer" the event's wait running out, "join" a new watcher. It returns
// what the step sent (the new watcher's frames for a join), and "gap" when
// the room's state must be fetched.
func feedStep(t *testing.T, f *roomFeed, rec feedRecorder, watcher *client, step string) string {
	t.Helper()
	before := len(rec[watcher])
	var gap bool
	var seq, prev, hist uint64
	switch {
	case step == "timer":
		f.flushEventLocked(math.MaxUint64)
	case step == "join":
		c := &client{}
		f.addLocked(c)
		return strings.Join(rec[c], "+")
	case scan(step, "e%d/%d", &seq, &prev):
		gap = f.offerEventLocked(roomMsg{seqs: seqs{Seq: seq, Prev: prev}, event: true, data: []byte("{}"), frame: wrapPayload("event", []byte(fmt.Sprintf(`{"seq":%d}`, seq)))})
	case scan(step, "r%dh%d", &seq, &hist), scan(step, "r%d", &seq):
		f.offerReadLocked(&hangmanv1.RoomState{Room: f.name, Seq: seq, HistorySeq: hist})
	case scan(step, "s%dh%d", &seq, &hist), scan(step, "s%d", &seq):
		f.offerStateLocked(seqs{Seq: seq, HistorySeq: hist}, wrapPayload("state", []byte(fmt.Sprintf(`{"seq":%d,"historySeq":%d}`, seq, hist))))
	case scan(step, "h%d", &seq):
		f.offerHistoryLocked(&roomHistory{seq: seq, frame: wrapPayload("history", []byte(fmt.Sprintf(`{"seq":%d}`, seq)))})
	default:
		t.Fatalf("unknown step %q", step)
	}
	out := rec[watcher][before:]
	if gap {
		out = append(out, "gap")
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, "+")
}

// scan reports whether step is exactly format filled in.
func scan(step, format string, args ...any) bool {
	n, err := fmt.Sscanf(step, format, args...)
	return err == nil && n == len(args) && fmt.Sprintf(format, derefAll(args)...) == step
}

func derefAll(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = *a.(*uint64)
	}
	return out
}

// TestFeedSendsEachChangeOnce plays orders in which a room's states,
// events and histories reach a relay through the room's feed, without
// NATS or a node, and checks what its session is sent at each step: every
// change once, in seq order, its event in its state's frame when both
// came, and a history once a state sent names it.
func TestFeedSendsEachChangeOnce(t *testing.T) {
	tests := []struct {
		name  string
		steps string
		want  string // one outcome per step
	}{
		{"in order: each event goes in its state's frame",
			"e1/0 s1 e4/1 s4 e9/4 s9", "- S1e - S4e - S9e"},
		{"a state before its event: the event follows alone",
			"s4 e4/1", "S4 E4"},
		{"a duplicate state", "s1 e4/1 s4 s4", "S1 - S4e -"},
		{"a duplicate event", "s1 e4/1 s4 e4/1", "S1 - S4e -"},
		{"an older state after a newer one", "s9 s4", "S9 -"},
		{"an older event after a newer one", "s4 e9/4 s9 e4/1", "S4 - S9e -"},
		{"a gap, the event sent alone when its wait ran out, then the read state",
			"s4 e9/7 timer r9 e12/9 s12", "S4 gap E9 S9 - S12e"},
		{"a gap whose read state comes before the wait ran out takes the event",
			"s4 e9/7 r9", "S4 gap S9e"},
		{"a lost state: the next state sends the waiting event first",
			"s4 e6/4 s9", "S4 - E6+S9"},
		{"an event older than the latest state goes alone, with no fetch",
			"s12 e9/7", "S12 E9"},
		{"an event of a cold room that follows others", "e9/7 s9", "gap S9e"},
		{"a history after the state naming it", "s9h9 h9", "S9 H9"},
		{"a history ahead of the state naming it waits for it",
			"s4 h9 s9h9", "S4 - S9+H9"},
		{"a history older than the one the state names is dropped",
			"s4 h7 s9h9 h7 h9", "S4 - S9 - H9"},
		{"a duplicate history", "s9h9 h9 h9", "S9 H9 -"},
		{"a read brings the history NATS lost", "s9h9 r9h9", "S9 H9"},
		{"a new watcher gets the latest state, without its event, then the history",
			"s1 e4/1 s4 h4 e9/4 s9h4 join", "S1 - S4e - - S9e+H4 S9+H4"},
		{"a room made again under its name: its old history is forgotten",
			"s9h9 h9 s12 join", "S9 H9 S12 S12"},
		{"an older read changes nothing", "s9h9 h9 r4h4", "S9 H9 -"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := feedRecorder{}
			f := newRoomFeed("den", &roomSink{queue: rec.queue, stats: &counters{}, log: slog.New(slog.DiscardHandler), eventWait: time.Hour})
			watcher := &client{}
			// Held throughout, so the event's timer cannot fire between
			// steps: "timer" is the step that stands for it.
			f.mu.Lock()
			f.addLocked(watcher)
			var got []string
			for _, step := range strings.Fields(tc.steps) {
				got = append(got, feedStep(t, &f, rec, watcher, step))
			}
			if f.eventTimer != nil {
				f.eventTimer.Stop()
			}
			f.mu.Unlock()
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("steps %s:\n got %s\nwant %s", tc.steps, g, tc.want)
			}
		})
	}
}
