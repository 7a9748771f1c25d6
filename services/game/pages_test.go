package game

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestRoomsAfterPagesThroughTheLobby lists lobbies of several sizes page by
// page, with several page sizes, and checks the pages put together are
// exactly the whole lobby in order, each page at most its size.
func TestRoomsAfterPagesThroughTheLobby(t *testing.T) {
	for _, rooms := range []int{0, 1, 7, 100, 333} {
		h := newHarness(t)
		for _, i := range rand.Perm(rooms) {
			h.ok(create(fmt.Sprintf("r%04d", i), "word"))
		}
		all := h.m.Rooms()
		for _, size := range []int{1, 3, 50, 100, 1000} {
			t.Run(fmt.Sprintf("%d rooms by %d", rooms, size), func(t *testing.T) {
				got := []Summary{}
				after := ""
				for pages := 0; ; pages++ {
					if pages > rooms+1 {
						t.Fatal("listing does not end")
					}
					page, more := h.m.RoomsAfter(after, size)
					if len(page) > size {
						t.Fatalf("page of %d rooms, asked for at most %d", len(page), size)
					}
					got = append(got, page...)
					if !more {
						break
					}
					if len(page) == 0 {
						t.Fatal("an empty page says more follow")
					}
					after = page[len(page)-1].Room
				}
				if !reflect.DeepEqual(got, all) {
					t.Fatalf("pages put together:\n%v\nwant the lobby:\n%v", got, all)
				}
			})
		}
	}
}

func TestRoomsAfterEdges(t *testing.T) {
	h := newHarness(t)
	for _, r := range []string{"b", "a", "c"} {
		h.ok(create(r, "word"))
	}
	for _, tc := range []struct {
		after string
		limit int
		want  []string
		more  bool
	}{
		{"", 0, nil, false},
		{"", -1, nil, false},
		{"", 2, []string{"a", "b"}, true},
		{"a", 2, []string{"b", "c"}, false},
		{"aa", 1, []string{"b"}, true},
		{"c", 5, nil, false},
		{"zzz", 5, nil, false},
	} {
		page, more := h.m.RoomsAfter(tc.after, tc.limit)
		var names []string
		for _, s := range page {
			names = append(names, s.Room)
		}
		if !reflect.DeepEqual(names, tc.want) || more != tc.more || page == nil {
			t.Errorf("RoomsAfter(%q, %d) = %v (nil: %v), more %v; want %v, more %v", tc.after, tc.limit, names, page == nil, more, tc.want, tc.more)
		}
	}
}
