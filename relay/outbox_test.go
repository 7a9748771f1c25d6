package relay

import (
	"fmt"
	"strings"
	"testing"
)

// TestOutboxSupersedes is the outbox's rules as a table: what a frame
// pushed behind others leaves waiting.
func TestOutboxSupersedes(t *testing.T) {
	state := func(room string, seq uint64) outItem {
		return outItem{kind: outState, key: room, seq: seq, frame: []byte(fmt.Sprintf("s%s%d", room, seq))}
	}
	carried := func(room string, seq uint64) outItem {
		it := state(room, seq)
		it.frame = []byte(fmt.Sprintf("s%s%d+e", room, seq))
		it.event = []byte(fmt.Sprintf("e%s%d", room, seq))
		return it
	}
	event := func(room string, seq uint64) outItem {
		return outItem{kind: outEvent, key: room, seq: seq, frame: []byte(fmt.Sprintf("e%s%d", room, seq))}
	}
	plain := func(s string) outItem { return outItem{frame: []byte(s)} }
	view := func(key, s string) outItem { return outItem{kind: outView, key: key, frame: []byte(s)} }
	for _, tc := range []struct {
		name       string
		push       []outItem
		want       string
		superseded int
	}{
		{"a newer state replaces the older and goes last", []outItem{state("a", 1), plain("ack"), state("a", 2)}, "ack sa2", 1},
		{"rooms do not mix", []outItem{state("a", 1), state("b", 2), state("a", 3)}, "sb2 sa3", 1},
		{"events wait in order before the latest state", []outItem{event("a", 1), state("a", 1), event("a", 2), state("a", 2)}, "ea1 ea2 sa2", 1},
		{"a superseded state leaves its event", []outItem{carried("a", 1), carried("a", 2)}, "ea1 sa2+e", 1},
		{"a room's history waits after the state that replaced the one it followed", []outItem{state("a", 11), historyItem("a", []byte("ha11")), state("a", 12)}, "sa12 ha11", 1},
		{"a history whose state was written waits where it is", []outItem{historyItem("a", []byte("ha11")), state("a", 12)}, "ha11 sa12", 0},
		{"an older state than one waiting is dropped", []outItem{state("a", 5), state("a", 4)}, "sa5", 1},
		{"views replace the older of their key", []outItem{view(viewCluster, "c1"), view(viewRelays, "r1"), plain("ack"), view(viewCluster, "c2")}, "r1 ack c2", 1},
		{"answers are never superseded", []outItem{plain("a"), plain("b"), state("a", 1), plain("c")}, "a b sa1 c", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o outbox
			got := 0
			for i, it := range tc.push {
				n, full, start := o.push(it, 64)
				if full {
					t.Fatalf("push %d: full", i)
				}
				if start != (i == 0) {
					t.Fatalf("push %d: start=%v, want a writer started by the first push only", i, start)
				}
				got += n
			}
			batch, ok := o.take(nil)
			var frames []string
			for _, it := range batch {
				frames = append(frames, string(it.frame))
			}
			if !ok || strings.Join(frames, " ") != tc.want || got != tc.superseded {
				t.Fatalf("waiting %q, superseded %d; want %q, %d", strings.Join(frames, " "), got, tc.want, tc.superseded)
			}
			if _, more := o.take(nil); more {
				t.Fatal("a second take found frames")
			}
		})
	}
}

// TestOutboxBounds: a browser far behind keeps the latest
// maxEventsWaiting events of a room, and one that lets answers pile up is
// refused past the limit.
func TestOutboxBounds(t *testing.T) {
	var o outbox
	superseded := 0
	for seq := uint64(1); seq <= 100; seq++ {
		n, _, _ := o.push(outItem{kind: outEvent, key: "a", seq: seq, frame: []byte("e")}, 8)
		superseded += n
		n, _, _ = o.push(outItem{kind: outState, key: "a", seq: seq, frame: []byte("s")}, 8)
		superseded += n
	}
	if len(o.items) != maxEventsWaiting+1 || o.items[0].seq != 100-maxEventsWaiting+1 || o.items[len(o.items)-1].kind != outState {
		t.Fatalf("%d frames waiting, first seq %d", len(o.items), o.items[0].seq)
	}
	if want := 99 + 100 - maxEventsWaiting; superseded != want {
		t.Fatalf("superseded %d, want %d", superseded, want)
	}
	for i := range 8 {
		if _, full, _ := o.push(outItem{frame: []byte("ack")}, 8); full {
			t.Fatalf("answer %d refused below the limit", i)
		}
	}
	if _, full, _ := o.push(outItem{frame: []byte("ack")}, 8); !full {
		t.Fatal("answer past the limit accepted")
	}
}

// TestOutboxHeldUntilWelcome: a new session's outbox starts no writer for
// what it is told before its welcome, and the welcome leaves first.
func TestOutboxHeldUntilWelcome(t *testing.T) {
	o := outbox{held: true}
	for i, it := range []outItem{
		{kind: outView, key: viewRelays, frame: []byte("r1")},
		{kind: outView, key: viewCluster, frame: []byte("c1")},
		{kind: outView, key: viewRelays, frame: []byte("r2")},
	} {
		if _, full, start := o.push(it, 64); full || start {
			t.Fatalf("push %d before the welcome: full=%v start=%v, want it held", i, full, start)
		}
	}
	if _, full, start := o.push(outItem{kind: outWelcome, frame: []byte("welcome")}, 64); full || !start {
		t.Fatalf("the welcome: full=%v start=%v, want the writer started", full, start)
	}
	if _, _, start := o.push(outItem{frame: []byte("ack")}, 64); start {
		t.Fatal("a frame after the welcome started a second writer")
	}
	batch, ok := o.take(nil)
	var frames []string
	for _, it := range batch {
		frames = append(frames, string(it.frame))
	}
	if got, want := strings.Join(frames, " "), "welcome c1 r2 ack"; !ok || got != want {
		t.Fatalf("waiting: %q, want %q", got, want)
	}
}
