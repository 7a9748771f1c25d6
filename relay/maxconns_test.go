package relay

import "testing"

// TestMaxConnsFollowsTheFileLimit checks the default number of websockets
// against open-file limits: a reserve for the rest, the ceiling on large
// limits, half of a small one.
func TestMaxConnsFollowsTheFileLimit(t *testing.T) {
	tests := []struct {
		files uint64
		want  int
	}{
		{20_000, 18_976},
		{65_536, 64_512},
		{1 << 20, MaxConnsCeiling},
		{1 << 62, MaxConnsCeiling},
		{1_024, 512},
		{2, 1},
		{0, 0},
	}
	for _, tt := range tests {
		if got := maxConnsFor(tt.files); got != tt.want {
			t.Errorf("maxConnsFor(%d) = %d, want %d", tt.files, got, tt.want)
		}
	}
	if n := DefaultMaxConns(); n < 1 || n > MaxConnsCeiling {
		t.Errorf("DefaultMaxConns() = %d, want 1..%d", n, MaxConnsCeiling)
	}
}
