// Package chaos is the fault-injection harness for hangman: it runs the real
// `hangman` binary as separate processes (game nodes and relays), drives
// players and linearizable readers against them while it kills, pauses,
// partitions, wipes, corrupts, starves and moves the processes, and then
// checks the recorded history.
//
// Why a separate harness: the unit and integration tests of raftnode and
// relay run everything in one process, where a "crash" is a clean Close and
// a "partition" cannot cut serf's UDP gossip. Only separate processes in
// separate network namespaces show what kill -9, SIGSTOP, a lost disk and a
// real network split do to the guarantees of DESIGN.md.
//
// What runs (see Lab):
//
//   - every game node in its own network namespace, joined to a bridge the
//     harness creates, so each node has its own IP and binds the same ports
//     as in production; partitions are iptables DROP rules inside the
//     namespaces (TCP and UDP alike), NATS route loss is a TCP reset on the
//     route port, crashes are SIGKILL followed by a restart on the same data
//     directory, pauses are SIGSTOP/SIGCONT, new addresses are new IPs on
//     the namespaces' links; with disk-full enabled each data directory is
//     a tmpfs of its own;
//   - the relays in the harness's own namespace on loopback, reaching the
//     nodes over the bridge, without a per-address websocket cap (every
//     observer's websocket comes from loopback);
//   - clients (goroutines, see Workload): players who join (a latecomer only
//     once a crowd fills the room, or once it is full), guess and start new
//     rounds, so that refusals are common (guessing before joining, after
//     the round is lost, a new round while one plays, joining a full room);
//     a crowd that fills each room; readers with CONSISTENCY_LINEARIZABLE. Every write has its
//     own request id; a write whose outcome is unknown is retried with the
//     same id on the next node (Workload.write, the one retry rule), and its
//     first definite answer is its outcome. Refused requests are sent again
//     later, to another node, with the same id: the answer must be the same
//     refusal. Observers subscribe to every node's NATS server (rooms and
//     hangman.cluster.leader) and watch every room through every relay's
//     websocket.
//
// The faults (FaultKind; the summary prints what each does and expects):
// kill-leader, kill-follower, partition-leader, partition-minority,
// partition-split, nats-route-loss, kill-relay, pause-leader,
// pause-follower, and for issues 14 and 15 wipe-disk (a node loses its
// disk and must rejoin as a new member), wipe-majority (no election, no
// write, not ready; then the operator's `hangman node --recover PEERS.json`,
// whose file format is recoveryPeer), corrupt-entry (bytes flipped in a
// committed entry of raft.db: the node must refuse to start, naming the
// file and index), disk-full (Unavailable, never Internal or a path; not
// ready; recovery without a restart), readdress-all (a leader within
// seconds on new IPs, every room intact), readdress-rolling (the nodes
// move to new IPs one at a time while the relays, started with the old
// ones, keep running: each must follow them and be ready), cpu-hog (no leader change) and
// pause-leader-long (every node ready within 5 s of SIGCONT).
//
// What is checked (see Run and Report):
//
//   - the history of writes, refusals and reads is linearizable
//     (porcupine, with the model documented on roomModel: a refusal is
//     legal only where its rule holds and changes nothing);
//   - refused-then-applied is 0: no refused request id shows as applied on
//     a recheck, in an observed event only it explains, or in a seat only
//     its join could give; a recheck gets the same refusal;
//   - every acknowledged write is in the final state (nothing lost);
//   - no request was applied twice (every observed event is attributed to
//     exactly one request);
//   - after the heal every node holds the same state of every room (read
//     locally on each) and the same whole game state (Status's digest,
//     which covers the answers each room remembers), and every node's
//     /readyz answers 200 within a bound after each heal;
//   - the replicas never diverged: every node digests its whole state at
//     the same log indexes (--audit-every, see auditEvery) and the
//     digests of each index agree across every node's log, wiped and
//     restarted incarnations included;
//   - no leader change outside injected faults and none under cpu-hog
//     (the window rule is on leaderMonitor);
//   - no error is Internal or names a server path;
//   - every relay's last seq per room equals the leader's within 2 s;
//   - seq is strictly increasing per room on every subscriber and websocket,
//     and no two messages carry the same seq with different contents.
//
// The short run (TestChaosShort, about three minutes) runs in CI and
// injects every kind once, in a fixed order; the soak is
// `task chaos DURATION=10m`, i.e.
//
//	go test ./chaos -run '^TestChaos$' -v -timeout 0 -chaos.duration=10m
//
// with random cycles, -chaos.nodes=5 for five nodes, -chaos.faults=kill-leader,...
// to inject only some kinds, -chaos.seed=N to replay a fault schedule, and
// -chaos.binary=PATH (or $HANGMAN_E2E_BINARY, as for e2e) to test a
// prebuilt binary. Both tests need root
// (network namespaces, iptables, tmpfs) and skip with a message without
// it, and under -short.
//
// Every run prints its summary (faults by kind with their expectations and
// verdicts, operations, acknowledged, refused, refused-then-applied, lost,
// duplicates, divergent replicas, diverged digests and audits, nodes
// unready after heal, leader changes outside faults, ordering,
// convergence, the checker's verdict) and saves it as
// chaos-<time>-summary.txt in $HANGMAN_ARTIFACTS (default: artifacts/ at
// the module root). A failing run also saves the history as JSON,
// porcupine's visualization as HTML, every process's log and, when
// replicas diverged, the states the nodes audited there, and names them
// in the failure message. Docker networks and a
// fault-injecting TCP proxy were the alternatives; namespaces cut UDP too
// and need no port rewriting, so they are the one mechanism implemented.
package chaos
