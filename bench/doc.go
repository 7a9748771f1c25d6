// Package bench is the load generator behind `hangman bench`: it makes the
// system's speed a measured property instead of a guess.
//
// It starts a real system from the hangman binary, as separate processes
// (game nodes with fsync'd raft logs, and relays) so that what it measures
// per process is that process's own cost, or attaches to one already
// running (hangman dev, a deployment) and measures it from outside; then it
// drives the system in one of two modes:
//
//   - "ws": N websocket clients spread over the relays and R rooms; one
//     player per room guesses at the rate asked for, every other client
//     watches. It reports committed guesses/s, guess→browser latency at
//     every watching client, messages delivered/s, and the relays' CPU and
//     memory per connection, then repeats the load with raw NATS
//     subscribers in place of the websockets for comparison.
//   - "grpc": raw commit throughput: many concurrent gRPC callers guessing
//     as fast as the cluster commits.
//
// On a system it started, either mode can kill the leader mid-run and
// report the failover gap: from the kill to the first acknowledgement of a
// guess sent after it.
package bench
