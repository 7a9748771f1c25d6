package relay

import (
	"context"
	"fmt"
	"testing"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// TestPlayerIsWhoHoldsTheToken is issue 17's impersonation through a
// relay: mallory knows alice's player id (every state lists it) and tries
// to join as her, then to guess with a made-up token; she is refused each
// time, alice keeps her seat and name, and alice's own guess with the id
// mallory tried goes through.
func TestPlayerIsWhoHoldsTheToken(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "alpha")
	tr := startRelay(t, cl, nil)
	alice := mustDial(t, tr.url)
	join(alice, "alpha", "alice", "Alice")
	mallory := mustDial(t, tr.url)

	for i, token := range []string{"", "made-up-token-0123456789", "short"} {
		id := fmt.Sprint("j", i)
		mallory.send(map[string]any{"type": "join", "room": "alpha", "playerId": "alice", "name": "Mallory", "id": id, "token": token})
		if f := mallory.expectError(CodePermission); f.ID != id {
			t.Fatalf("refusal does not echo the id: %s", f.raw)
		}
	}
	// As herself, mallory cannot guess without her token or with another.
	join(mallory, "alpha", "mallory", "Mallory")
	for _, token := range []string{"", harness.TokenOf("alice"), "made-up-token-0123456789"} {
		mallory.send(map[string]any{"type": "guess", "letter": "e", "id": "alice-1", "token": token})
		mallory.expectError(CodePermission)
	}
	mallory.send(map[string]any{"type": "newRound", "id": "n"})
	mallory.expectError(CodePermission)

	alice.guess("e", "alice-1")
	if ack, _ := alice.expect("ack", func(f frame) bool { return f.ID == "alice-1" }); ack.Duplicate {
		t.Fatalf("alice's guess is a duplicate: %s", ack.raw)
	}
	st, err := cl.game.GetRoom(context.Background(), &hangmanv1.GetRoomRequest{Room: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	if p := st.GetState().GetPlayers()[0]; p.GetId() != "alice" || p.GetName() != "Alice" || len(st.GetState().GetGuessed()) != 1 {
		t.Fatalf("room after the attempts: %v", st.GetState())
	}
}

// TestJoinWithoutTokenGetsOne: a client that brings no token is given the
// seat's in the join's ack, and plays with it.
func TestJoinWithoutTokenGetsOne(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "alpha")
	tr := startRelay(t, cl, nil)
	c := mustDial(t, tr.url)
	c.send(map[string]any{"type": "join", "room": "alpha", "playerId": "ann", "name": "Ann", "id": "j"})
	ack, _ := c.expect("ack", func(f frame) bool { return f.ID == "j" })
	if len(ack.Token) < 22 {
		t.Fatalf("join ack without a token: %s", ack.raw)
	}
	c.token = ack.Token
	c.guess("e", "g")
	c.expect("ack", func(f frame) bool { return f.ID == "g" })
}

// TestCreationAndJoiningAreRateLimited is issue 17's exhaustion through a
// relay: one connection, then many from one address, create rooms and
// take seats as fast as they can. Past each bucket they are refused with
// rate_limited and a retryAfterMs, which the metrics count; once the bucket
// refills they go through again. Rejoining takes no seat and is never
// charged.
func TestCreationAndJoiningAreRateLimited(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "alpha")
	tr := startRelay(t, cl, func(c *Config) {
		c.ConnCreate = Bucket{Rate: 20, Burst: 2}
		c.AddrCreate = Bucket{Rate: 0.001, Burst: 3}
		c.ConnJoin = Bucket{Rate: 0.001, Burst: 2}
		c.AddrJoin = Bucket{Rate: 0.001, Burst: 100}
	})
	attempts := 0
	create := func(c *wsClient, room string) frame {
		attempts++
		id := fmt.Sprint(room, "-", attempts)
		c.send(map[string]any{"type": "create", "room": room, "id": id})
		return c.answer(id)
	}

	// One connection: two rooms at once, then refused until it refills.
	a := mustDial(t, tr.url)
	for _, room := range []string{"r1", "r2"} {
		if f := create(a, room); f.Type != "ack" {
			t.Fatalf("create %s: %s", room, f.raw)
		}
	}
	f := create(a, "r3")
	if f.Code != CodeRateLimited || f.RetryAfterMs <= 0 {
		t.Fatalf("third create at once: %s", f.raw)
	}
	// The connection's bucket refills (20 a second); the address's has
	// one creation left.
	harness.EventuallyTrue(t, waitFor, "the connection's bucket to refill", func() bool { return create(a, "r3").Type == "ack" })
	// Another connection from the same address: the address is spent.
	b := mustDial(t, tr.url)
	if f := create(b, "r4"); f.Code != CodeRateLimited {
		t.Fatalf("create from a second connection of the address: %s", f.raw)
	}
	m := tr.scrape(t)
	if harness.Series(t, m, `hangman_relay_commands_limited_total{by="connection",op="create"}`) < 1 ||
		harness.Series(t, m, `hangman_relay_commands_limited_total{by="address",op="create"}`) != 1 ||
		harness.Series(t, m, `hangman_relay_command_burst_limit{by="address",op="create"}`) != 3 {
		t.Fatalf("metrics after the creations: %v", m)
	}

	// Seats: two new ones per connection; rejoins are free.
	c := mustDial(t, tr.url)
	for _, p := range []string{"p1", "p2"} {
		join(c, "alpha", p, p)
	}
	for range 3 {
		join(c, "alpha", "p2", "again") // rejoin and rename: no seat taken
	}
	c.send(map[string]any{"type": "join", "room": "alpha", "playerId": "p3", "name": "p3", "id": "j3", "token": harness.TokenOf("p3")})
	if f := c.expectError(CodeRateLimited); f.ID != "j3" || f.RetryAfterMs <= 0 {
		t.Fatalf("third seat: %s", f.raw)
	}
	st, err := cl.game.GetRoom(context.Background(), &hangmanv1.GetRoomRequest{Room: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.GetState().GetPlayers()); n != 2 {
		t.Fatalf("%d players, want 2", n)
	}
	if v := harness.Series(t, tr.scrape(t), `hangman_relay_commands_limited_total{by="connection",op="join"}`); v != 1 {
		t.Fatalf("limited joins counted %v, want 1", v)
	}
}

// TestAddressBucketsSurviveReconnects: a client that reconnects gets a
// fresh connection bucket but not a fresh address bucket, and the relay
// keeps the buckets of idle addresses only while they refill.
func TestAddressBucketsSurviveReconnects(t *testing.T) {
	a := newAdmission(Config{ConnCreate: Bucket{Rate: 1, Burst: 1}, AddrCreate: Bucket{Rate: 0.001, Burst: 1}, ConnJoin: Bucket{Rate: 1, Burst: 1}, AddrJoin: Bucket{Rate: 1000, Burst: 1}})
	l, _ := a.acquire("192.0.2.1", true)
	if a.check(l, cmdCreate) != nil {
		t.Fatal("first creation refused")
	}
	l.spend(cmdCreate)
	a.release("192.0.2.1")
	l, _ = a.acquire("192.0.2.1", true)
	if ref := a.check(l, cmdCreate); ref == nil || ref.retry <= 0 {
		t.Fatalf("a reconnect reset the address bucket: %+v", ref)
	}
	a.release("192.0.2.1")
	// Filling the table prunes the addresses whose buckets are full, and
	// keeps the one still refilling.
	for i := range minPrune {
		a.acquire(fmt.Sprint("198.51.100.", i), true)
		a.release(fmt.Sprint("198.51.100.", i))
	}
	a.mu.Lock()
	_, kept := a.addrs["192.0.2.1"]
	n := len(a.addrs)
	a.mu.Unlock()
	if !kept || n > minPrune {
		t.Fatalf("after pruning: refilling address kept %v, %d addresses", kept, n)
	}
}
