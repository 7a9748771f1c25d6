package harness

import (
	"fmt"
	"net"
	"strconv"
)

// FreePorts returns n loopback ports that were free a moment ago, for TCP
// and UDP alike (serf gossips on both at the port it is given): all are
// held open together, so the n are distinct, then released for the
// caller's servers to take. A port free for TCP but not for UDP is passed
// over.
func FreePorts(t TB, n int) []int {
	t.Helper()
	var held []interface{ Close() error }
	defer func() {
		for _, h := range held {
			_ = h.Close()
		}
	}()
	ports := make([]int, 0, n)
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		held = append(held, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		held = append(held, udp)
		ports = append(ports, port)
	}
	return ports
}

// FreeAddr returns a loopback address (host:port) whose port was free a
// moment ago, for a harness that is not a test.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr, nil
}
