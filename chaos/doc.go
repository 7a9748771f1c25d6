// Package chaos is the fault-injection harness for hangman: it runs the real
// `hangman` binary as separate processes (game nodes and relays), drives
// players and linearizable readers against them while it kills, pauses and
// partitions the processes, and then checks the recorded history.
//
// Why a separate harness: the unit and integration tests of raftnode and
// relay run everything in one process, where a "crash" is a clean Close and
// a "partition" cannot cut serf's UDP gossip. Only separate processes in
// separate network namespaces show what kill -9, SIGSTOP and a real network
// split do to the guarantees of DESIGN.md.
//
// What runs (see Lab):
//
//   - every game node in its own network namespace, joined to a bridge the
//     harness creates, so each node has its own IP and binds the same ports
//     as in production; partitions are iptables DROP rules inside the
//     namespaces (TCP and UDP alike), NATS route loss is a TCP reset on the
//     route port, crashes are SIGKILL followed by a restart on the same data
//     directory, pauses are SIGSTOP/SIGCONT;
//   - the relays in the harness's own namespace on loopback, reaching the
//     nodes over the bridge;
//   - clients (goroutines) that guess with unique request ids, retrying an
//     unknown outcome with the same id on another node, and read rooms with
//     CONSISTENCY_LINEARIZABLE; observers that subscribe to every node's
//     NATS server and watch every room through every relay's websocket.
//
// What is checked after the faults heal (see Run and Report):
//
//   - the history of guesses and reads is linearizable (porcupine, with the
//     model documented on roomModel);
//   - every acknowledged guess is in the final state (nothing lost);
//   - no request id was applied twice (every observed guess event is
//     attributed to exactly one request);
//   - every relay's last seq per room equals the leader's within 2 s;
//   - seq is strictly increasing per room on every subscriber and websocket,
//     and no two messages carry the same seq with different contents.
//
// The short run (TestChaosShort, about a minute) runs in CI; the soak is
// `task chaos DURATION=10m`, i.e.
//
//	go test ./chaos -run '^TestChaos$' -v -timeout 0 -chaos.duration=10m
//
// with -chaos.nodes=5 for five nodes, -chaos.faults=kill-leader,... to
// inject only some kinds, -chaos.seed=N to replay a fault schedule, and
// -chaos.binary=PATH to test a prebuilt binary. Both tests need root
// (network namespaces and iptables) and skip with a message without it,
// and under -short.
//
// Every run prints its summary (faults by kind, operations, acknowledged,
// lost, duplicates, ordering, convergence, the checker's verdict) and saves
// it as chaos-<time>-summary.txt in $HANGMAN_ARTIFACTS (default: artifacts/
// at the module root). A failing run also saves the history as JSON,
// porcupine's visualization as HTML, and every process's log there, and
// names them in the failure message. Docker networks and a fault-injecting TCP proxy were the
// alternatives; namespaces cut UDP too and need no port rewriting, so they are
// the one mechanism implemented.
package chaos
