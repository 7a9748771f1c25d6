package chaos

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// pagedLobby serves names in pages of at most size rooms, as a node does.
type pagedLobby struct {
	names []string
	size  int
	calls int
}

func (l *pagedLobby) ListRooms(_ context.Context, in *hangmanv1.ListRoomsRequest, _ ...grpc.CallOption) (*hangmanv1.ListRoomsResponse, error) {
	l.calls++
	start := 0
	for start < len(l.names) && in.GetPageToken() != "" && l.names[start] <= in.GetPageToken() {
		start++
	}
	end := min(start+l.size, len(l.names))
	out := &hangmanv1.ListRoomsResponse{}
	for _, n := range l.names[start:end] {
		out.Rooms = append(out.Rooms, &hangmanv1.RoomSummary{Room: n})
	}
	if end < len(l.names) {
		out.NextPageToken = l.names[end-1]
	}
	return out, nil
}

// TestAllRoomsFollowsPages: a soak's 120 rooms span several pages, and a
// check that read only the first would report the others as lost.
func TestAllRoomsFollowsPages(t *testing.T) {
	for _, n := range []int{0, 1, 50, 100, 120, 250} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			l := &pagedLobby{size: 50}
			for i := range n {
				l.names = append(l.names, fmt.Sprintf("r%03d", i))
			}
			got, err := allRooms(context.Background(), l, hangmanv1.Consistency_CONSISTENCY_STALE)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n {
				t.Fatalf("listed %d rooms, want %d", len(got), n)
			}
			for i, r := range got {
				if r.GetRoom() != l.names[i] {
					t.Fatalf("room %d is %q, want %q", i, r.GetRoom(), l.names[i])
				}
			}
			if want := max(1, (n+49)/50); l.calls != want {
				t.Errorf("%d calls, want %d", l.calls, want)
			}
		})
	}
}
