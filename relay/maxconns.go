package relay

import "syscall"

// How many websockets a relay holds by default: as many as its file
// descriptors allow (each websocket is one), less a reserve for everything
// else it opens (NATS, the nodes' gRPC links, the page's requests, its
// logs), and at most MaxConnsCeiling. A relay measured 14.7 KiB of live
// heap and stacks per idle websocket (README, Performance), so the ceiling
// is about 1.5 GB of memory: what a relay of this design holds on a small
// machine, where a fixed number chosen for the smallest one would turn
// players away from a relay with room to spare.
const (
	// MaxConnsCeiling bounds the default, whatever the descriptor limit.
	MaxConnsCeiling = 100_000
	// fileReserve is the descriptors kept for what is not a websocket,
	// at most half of the limit.
	fileReserve = 1024
)

// DefaultMaxConns is the default of Config.MaxConns for this process: its
// open-file limit less a reserve, at most MaxConnsCeiling. Go raises the
// soft limit to the hard one when a program starts (on Linux), so this is
// the most the process may open. Where the limit cannot be read it is
// MaxConnsCeiling/10.
func DefaultMaxConns() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return MaxConnsCeiling / 10
	}
	return maxConnsFor(lim.Cur)
}

// maxConnsFor is the default number of websockets under an open-file limit
// of files.
func maxConnsFor(files uint64) int {
	n := files - min(fileReserve, files/2)
	return int(min(n, MaxConnsCeiling))
}
