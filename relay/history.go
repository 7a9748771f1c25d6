package relay

import (
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/wire"
)

// A room's finished rounds (game.History) are not part of its states: a
// state names the version of the history it goes with (historySeq, the
// seq of the change that finished the last round), and the history itself
// comes once, on hangman.room.<room>.history, right after the state of the
// change that finished a round. Carried in every state, ten rounds of
// guesses made each guess's state about ten times larger, on every hop.
//
// The relay keeps the newest history of each watched room and sends it as
// a frame of its own, {"type":"history","data":<History>}: to every
// session when it changes, and to a new watcher after the room's state. A
// history is taken from NATS only once a state the relay sent names its
// seq, so what a session is told is as vouched for as the states are;
// when the history a state names does not come (the leader died between
// the two messages, or NATS lost one), the anti-entropy sweep reads the
// room, whose read carries its history.

// roomHistory is a history frame and its seq.
type roomHistory struct {
	seq   uint64
	frame []byte
}

// historyItem is a room's history frame as it waits in an outbox: a newer
// one supersedes an older one still waiting.
func historyItem(room string, frame []byte) outItem {
	return outItem{kind: outHistory, key: room, frame: frame}
}

// onHistoryMsg takes a room's history from NATS: at once if the latest
// state sent names it, later (historyCursor.name) if that state has not
// been sent yet.
func (rs *roomSet) onHistoryMsg(rm *room, m *nats.Msg) {
	var s seqs
	if err := json.Unmarshal(m.Data, &s); err != nil || s.Seq == 0 {
		rs.log.Debug("dropping malformed room history", "subject", m.Subject, "err", err)
		return
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	rm.offerHistoryLocked(&roomHistory{seq: s.Seq, frame: wrapPayload("history", m.Data)})
}

// historyCursor is how far a room's sessions have been brought in its
// finished rounds: the latest history sent, the one the latest state sent
// names, and one that came ahead of the state naming it. Its methods only
// decide, as cursor's do; the feed sends what they accept.
type historyCursor struct {
	frame []byte // the latest history frame sent
	seq   uint64 // its seq
	want  uint64 // the historySeq the latest state sent names
	// missed is when a state first named a history the relay lacks.
	missed time.Time
	// pending is the newest history NATS brought ahead of the state
	// naming it.
	pending *roomHistory
}

// offer decides on a history from NATS, and reports whether it is to be
// sent now: it is if the latest state sent names it; one ahead of that
// state waits (the newest of them) for a state naming it.
func (hc *historyCursor) offer(h *roomHistory) (send bool) {
	switch {
	case h.seq == hc.want:
		return hc.accept(h)
	case h.seq > hc.want && (hc.pending == nil || h.seq > hc.pending.seq):
		hc.pending = h
	}
	return false
}

// name notes the historySeq of a state just sent, at now, and returns the
// history waiting for it, to be sent now; one that has not come is missed
// from now on (missedAt).
func (hc *historyCursor) name(seq uint64, now time.Time) (send *roomHistory) {
	if seq == hc.want {
		return nil
	}
	hc.want = seq
	if p := hc.pending; p != nil && p.seq <= seq {
		hc.pending = nil
		if p.seq == seq {
			if hc.accept(p) {
				return p
			}
			return nil
		}
	}
	switch {
	case seq == 0 || seq < hc.seq:
		// No finished round (a room made again under the same name):
		// the history the relay holds is another room's.
		hc.frame, hc.seq, hc.missed = nil, 0, time.Time{}
	case seq > hc.seq && hc.missed.IsZero():
		hc.missed = now
	}
	return nil
}

// accept makes h the latest history, and reports whether it is news (not
// one the cursor has, or older).
func (hc *historyCursor) accept(h *roomHistory) bool {
	if h.seq <= hc.seq {
		return false
	}
	hc.frame, hc.seq = h.frame, h.seq
	if hc.seq >= hc.want {
		hc.missed = time.Time{}
	}
	return true
}

// missedAt reports whether, at now, a state sent has named a history that
// has not come for quietAfter: the room must then be read.
func (hc *historyCursor) missedAt(now time.Time) bool {
	return !hc.missed.IsZero() && now.Sub(hc.missed) >= quietAfter
}

// offerHistoryLocked sends a history from NATS to the sessions if the
// history cursor accepts it now.
func (f *roomFeed) offerHistoryLocked(h *roomHistory) {
	if f.history.offer(h) {
		f.sendHistoryLocked(h)
	}
}

// wantHistoryLocked notes the historySeq of a state just sent, and sends
// the history that waited for it.
func (f *roomFeed) wantHistoryLocked(seq uint64) {
	if h := f.history.name(seq, time.Now()); h != nil {
		f.sendHistoryLocked(h)
	}
}

// offerReadHistoryLocked takes the history a read of the room brought,
// if it is newer than the room's.
func (f *roomFeed) offerReadHistoryLocked(st *hangmanv1.RoomState) {
	seq := st.GetHistorySeq()
	if seq == 0 || seq <= f.history.seq {
		return
	}
	hist := wire.HistoryFromProto(st)
	h := &roomHistory{seq: seq, frame: wrapPayload("history", hist.AppendJSON(nil))}
	if f.history.accept(h) {
		f.sendHistoryLocked(h)
	}
}

// sendHistoryLocked sends an accepted history to every session.
func (f *roomFeed) sendHistoryLocked(h *roomHistory) {
	f.sink.stats.histories.Add(1)
	f.fanOutLocked(historyItem(f.name, h.frame))
}
