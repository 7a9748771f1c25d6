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

// historyKey is the outbox key of a room's history frames: a newer one
// supersedes an older one still waiting.
func historyItem(room string, frame []byte) outItem {
	return outItem{kind: outView, key: "history." + room, frame: frame}
}

// onHistoryMsg takes a room's history from NATS: at once if the latest
// state sent names it, later (acceptPendingLocked) if that state has not
// been sent yet.
func (r *Relay) onHistoryMsg(rm *room, m *nats.Msg) {
	var s seqs
	if err := json.Unmarshal(m.Data, &s); err != nil || s.Seq == 0 {
		r.log.Debug("dropping malformed room history", "subject", m.Subject, "err", err)
		return
	}
	h := &roomHistory{seq: s.Seq, frame: wrapPayload("history", m.Data)}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	switch {
	case h.seq == rm.wantHistory:
		r.acceptHistoryLocked(rm, h)
	case h.seq > rm.wantHistory && (rm.pending == nil || h.seq > rm.pending.seq):
		rm.pending = h
	}
}

// wantHistoryLocked notes the historySeq of a state just sent: the history
// waiting for it is sent now, and one that has not come is missed from
// now on (missedHistoryLocked).
func (r *Relay) wantHistoryLocked(rm *room, seq uint64) {
	if seq == rm.wantHistory {
		return
	}
	rm.wantHistory = seq
	if p := rm.pending; p != nil && p.seq <= seq {
		rm.pending = nil
		if p.seq == seq {
			r.acceptHistoryLocked(rm, p)
			return
		}
	}
	switch {
	case seq == 0 || seq < rm.historySeq:
		// No finished round (a room made again under the same name):
		// the history the relay holds is another room's.
		rm.history, rm.historySeq, rm.historyMissed = nil, 0, time.Time{}
	case seq > rm.historySeq && rm.historyMissed.IsZero():
		rm.historyMissed = time.Now()
	}
}

// acceptHistoryLocked makes h the room's history, unless it has it or a
// newer one, and sends it to every session.
func (r *Relay) acceptHistoryLocked(rm *room, h *roomHistory) {
	if h.seq <= rm.historySeq {
		return
	}
	rm.history, rm.historySeq = h.frame, h.seq
	if rm.historySeq >= rm.wantHistory {
		rm.historyMissed = time.Time{}
	}
	r.stats.histories.Add(1)
	r.fanOutLocked(rm, historyItem(rm.name, h.frame))
}

// offerReadHistoryLocked takes the history a read of the room brought,
// if it is newer than the room's.
func (r *Relay) offerReadHistoryLocked(rm *room, st *hangmanv1.RoomState) {
	seq := st.GetHistorySeq()
	if seq == 0 || seq <= rm.historySeq {
		return
	}
	h := wire.HistoryFromProto(st)
	r.acceptHistoryLocked(rm, &roomHistory{seq: seq, frame: wrapPayload("history", h.AppendJSON(nil))})
}

// missedHistoryLocked reports whether a state sent names a history that
// has not come for quietAfter: the room must then be read.
func (rm *room) missedHistoryLocked(now time.Time) bool {
	return !rm.historyMissed.IsZero() && now.Sub(rm.historyMissed) >= quietAfter
}
