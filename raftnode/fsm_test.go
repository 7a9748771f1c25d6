package raftnode

import (
	"testing"

	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/raftnode/publish"
	"github.com/hangman/hangman/services/game"
)

// TestFSMBuildsStatesOnlyWhereSomeoneReadsThem: an entry this node
// proposed, or any entry while it publishes, gets results with the room's
// state; another node's entry on a node that does not publish gets none,
// and changes the game state all the same.
func TestFSMBuildsStatesOnlyWhereSomeoneReadsThem(t *testing.T) {
	create := func(room string) []byte {
		return game.Command{Kind: game.KindCreateRoom, Room: room, Word: "apple", At: 1}.Encode()
	}
	tests := []struct {
		name       string
		proposer   string
		publishing bool
		wantState  bool
	}{
		{"own entry", "me", false, true},
		{"own entry while publishing", "me", true, true},
		{"another node's entry", "other", false, false},
		{"another node's entry while publishing", "other", true, true},
		{"entry without a proposer", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM()
			f.self = []byte("me")
			var published []publish.Change
			f.onChange = func(cs []publish.Change) { published = append(published, cs...) }
			f.publishing = func() bool { return tt.publishing }
			out := f.ApplyBatch([]*raft.Log{{Index: 7, Type: raft.LogCommand, Data: create("r1"), Extensions: []byte(tt.proposer)}})
			res := out[0].(*applyResult).results[0]
			if res.Err != nil || res.Event == nil {
				t.Fatalf("result %+v, want a created room", res)
			}
			if got := res.State.Seq == 7 && res.State.Room == "r1"; got != tt.wantState {
				t.Fatalf("state built: %v, want %v (state %+v)", got, tt.wantState, res.State)
			}
			if st, ok := f.machine.Room("r1"); !ok || st.Seq != 7 {
				t.Fatalf("the room was not created: %+v", st)
			}
			if tt.publishing != (len(published) == 1) {
				t.Fatalf("published %d changes while publishing=%v", len(published), tt.publishing)
			}
			if tt.publishing && published[0].State.Seq != 7 {
				t.Fatalf("published a change without its state: %+v", published[0])
			}
		})
	}
}
