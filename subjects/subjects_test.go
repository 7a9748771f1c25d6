package subjects

import "testing"

// TestSubjectsAreDesignMDs spells out the subjects of DESIGN.md's table:
// other programs subscribe to these exact names.
func TestSubjectsAreDesignMDs(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{RoomState("lobby"), "hangman.room.lobby.state"},
		{RoomEvent("lobby"), "hangman.room.lobby.event"},
		{Room("lobby"), "hangman.room.lobby.*"},
		{Rooms, "hangman.room.>"},
		{ClusterLeader, "hangman.cluster.leader"},
		{ClusterMember, "hangman.cluster.member"},
		{Cluster, "hangman.cluster.>"},
		{APIEvents, "hangman.api.events"},
		{API, "hangman.api.>"},
		{APICreate, "hangman.api.create"},
		{APIJoin, "hangman.api.join"},
		{APIGuess, "hangman.api.guess"},
		{APINewRound, "hangman.api.newround"},
		{APIList, "hangman.api.list"},
		{Lobby, "hangman.lobby"},
		{RelayHeartbeat, "hangman.relay.heartbeat"},
		{RelayStatus, "hangman.relay.status"},
		{Relays, "hangman.relay.>"},
		{All, "hangman.>"},
		{NodeService, "hangman-node"},
		{RelayService, "hangman-relay"},
	} {
		if tc.got != tc.want {
			t.Errorf("subject %q, want %q", tc.got, tc.want)
		}
	}
}
