package chaos

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"
)

// TestKilledLeaderReplacedFast: a leader killed with kill -9 is replaced
// well within the heartbeat timeout, both when its raft port is left to
// refuse connections (a process on a host) and when its network goes with
// it, as a killed container's does: new connections to it get no answer,
// and only the connections it had open were closed from its end. The
// nodes run with a 3 s heartbeat timeout, so that a follower waiting out
// the silence could not elect anyone in less than about 2.4 s.
func TestKilledLeaderReplacedFast(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes; skipped under -short")
	}
	if err := netnsAvailable(); err != nil {
		t.Skipf("network namespaces unavailable (%v): the lab needs root, iproute2 and iptables", err)
	}
	const heartbeat = 3 * time.Second
	t.Setenv("HANGMAN_RAFT_HEARTBEAT_TIMEOUT", heartbeat.String())
	t.Setenv("HANGMAN_RAFT_ELECTION_TIMEOUT", heartbeat.String())
	bin := buildBinary(t)
	for _, tc := range []struct {
		name string
		// network is true when the leader's network goes with it.
		network bool
	}{
		{"port left closed", false},
		{"network gone too", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			lab, err := StartLab(ctx, LabConfig{Binary: bin, Dir: t.TempDir(), Nodes: 3, Log: log})
			if err != nil {
				t.Fatalf("start lab: %v", err)
			}
			defer lab.Close()
			leader, err := lab.WaitLeader(ctx, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if tc.network {
				// New connections to and from the leader go unanswered from
				// now on; those it has open carry on, and its end of them
				// closes when it dies.
				ns := lab.net.nodes[leader].ns
				if err := run("ip", "netns", "exec", ns, "iptables", "-A", "CHAOS", "-p", "tcp", "--syn", "-j", "DROP"); err != nil {
					t.Fatal(err)
				}
			}
			killed := time.Now()
			if err := lab.Nodes[leader].Proc.kill(); err != nil {
				t.Fatal(err)
			}
			next, err := lab.WaitLeader(ctx, 4*heartbeat)
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(killed)
			t.Logf("leader %s killed; %s leads %v later", lab.Nodes[leader].ID, lab.Nodes[next].ID, took.Round(time.Millisecond))
			if took >= 2*time.Second {
				t.Fatalf("a new leader took %v: the followers waited out the %v heartbeat timeout", took, heartbeat)
			}
		})
	}
}
