package chaos

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// maxListPages bounds how many pages allRooms follows: far more than any
// run creates, so a node that kept answering "more" could not hold the
// harness forever.
const maxListPages = 1000

// roomLister is the one call of the game service allRooms needs.
type roomLister interface {
	ListRooms(ctx context.Context, in *hangmanv1.ListRoomsRequest, opts ...grpc.CallOption) (*hangmanv1.ListRoomsResponse, error)
}

// allRooms lists every room at the given consistency, following the pages
// of ListRooms (a page holds at most 100 rooms, and a soak creates more):
// the checks that compare rooms before and after a fault, or across
// replicas, must see all of them, not the first page.
func allRooms(ctx context.Context, c roomLister, consistency hangmanv1.Consistency) ([]*hangmanv1.RoomSummary, error) {
	var out []*hangmanv1.RoomSummary
	req := &hangmanv1.ListRoomsRequest{Consistency: consistency, PageSize: 100}
	for range maxListPages {
		resp, err := c.ListRooms(ctx, req)
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetRooms()...)
		if resp.GetNextPageToken() == "" {
			return out, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
	return nil, fmt.Errorf("list rooms: more than %d pages", maxListPages)
}
