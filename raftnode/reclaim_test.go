package raftnode

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

// TestReclaimExhaustWaitRecover is issue 17's exhaustion on a real
// cluster, with small caps: idle rooms fill the room cap and creation is
// refused; an hour later (the leader's clock, injected into its sweep) the
// leader reclaims them with replicated commands, which every node applies
// and NATS announces, and creation works again. Idle seats that fill a room
// go the same way once the game went on without them. A follower's sweep
// proposes nothing.
func TestReclaimExhaustWaitRecover(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.MaxRooms, cfg.MaxPlayers = 3, 2
		cfg.ReclaimInterval = time.Hour // the test sweeps at the times it wants
	})
	li := c.leader()
	fi := (li + 1) % 3
	rec := record(t, c.nodes[fi].NATSURL())
	rec.waitInterest(c)
	ctx := ctxT(t)
	cl := c.client(fi) // through a follower: the leader's caps and the follower's are the same
	for i := range 3 {
		if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: fmt.Sprint("idle", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "late"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("creation past the cap: %v, want FailedPrecondition", err)
	}
	m := c.metricsOf(li)
	if harness.Series(t, m, "hangman_rooms") != 3 || harness.Series(t, m, "hangman_rooms_limit") != 3 || harness.Series(t, m, `hangman_reclaim_idle_seconds{what="room_over"}`) != 3600 {
		t.Fatalf("room metrics: %v", m)
	}

	// Not yet idle, and a follower never sweeps.
	if r, s := c.sweepAt(time.Now().Add(50 * time.Minute)); r+s != 0 {
		t.Fatalf("reclaimed %d rooms and %d seats before the hour", r, s)
	}
	if r, s, led := c.nodes[fi].sweeper.sweep(ctx, time.Now().Add(2*time.Hour)); r+s != 0 || led {
		t.Fatalf("a follower reclaimed %d rooms and %d seats (led: %v)", r, s, led)
	}
	if r, s := c.sweepAt(time.Now().Add(time.Hour + time.Minute)); r != 3 || s != 0 {
		t.Fatalf("reclaimed %d rooms and %d seats, want 3 rooms", r, s)
	}
	c.converged()
	if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "late"}); err != nil {
		t.Fatalf("creation after the reclamation: %v", err)
	}
	harness.Eventually(t, 10*time.Second, "the deletions on NATS", func() error {
		st, ok := rec.latestState("idle0")
		evs := rec.events("idle0")
		if !ok || st.Status != game.StatusDeleted || len(evs) == 0 || evs[len(evs)-1].Kind != game.EventRoomDeleted {
			return fmt.Errorf("idle0's last state %+v, events %+v", st, evs)
		}
		return nil
	})

	// Seats: two players fill "late"; one keeps playing, the other stops.
	for _, p := range []string{"ann", "idler"} {
		if _, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "late", PlayerId: p, Name: p, Token: harness.TokenOf(p)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "late", PlayerId: "newcomer", Name: "Newcomer", Token: harness.TokenOf("newcomer")})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("join of a full room: %v, want FailedPrecondition", err)
	}
	// An hour on, with nobody acting, the table is paused: nothing goes.
	now := time.Now()
	if r, s := c.sweepAt(now.Add(time.Hour + time.Minute)); r+s != 0 {
		t.Fatalf("reclaimed %d rooms and %d seats of a paused table", r, s)
	}
	// But if ann played on for that hour, idler's seat is free.
	c.actAt(t, "late", "ann", now.Add(time.Hour))
	if r, s := c.sweepAt(now.Add(time.Hour + time.Minute)); r != 0 || s != 1 {
		t.Fatalf("reclaimed %d rooms and %d seats, want idler's seat", r, s)
	}
	j, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "late", PlayerId: "newcomer", Name: "Newcomer", Token: harness.TokenOf("newcomer")})
	if err != nil {
		t.Fatalf("join after the reclamation: %v", err)
	}
	if ids := playerIDs(j.GetState()); ids != "ann newcomer" {
		t.Fatalf("players %s, want ann newcomer", ids)
	}
	c.converged()
	m = c.metricsOf(c.leader())
	if harness.Series(t, m, `hangman_reclaimed_total{what="room"}`) != 3 || harness.Series(t, m, `hangman_reclaimed_total{what="seat"}`) != 1 || harness.Series(t, m, "hangman_seats") != 2 {
		t.Fatalf("reclamation metrics: %v", m)
	}
}

// sweepAt has the leader sweep as if its clock read now, and returns what
// it reclaimed. Should leadership move meanwhile, the new leader sweeps.
func (c *testCluster) sweepAt(now time.Time) (rooms, seats int) {
	c.t.Helper()
	for {
		r, s, led := c.nodes[c.leader()].sweeper.sweep(ctxT(c.t), now)
		if rooms, seats = rooms+r, seats+s; led {
			return rooms, seats
		}
	}
}

// actAt has player act in room at time at: a guess proposed on the leader
// with that time, as a node whose clock read at would propose it.
func (c *testCluster) actAt(t *testing.T, room, player string, at time.Time) {
	t.Helper()
	cmd := game.Command{Kind: game.KindGuess, Room: room, Player: player, Letter: "t", At: at.UnixMilli(), TokenHash: game.HashToken(harness.TokenOf(player))}
	res, _, err := c.nodes[c.leader()].Propose(ctxT(t), room, cmd.Encode())
	if err != nil || res.Err != nil {
		t.Fatalf("guess at %v: %v, %v", at, err, res.Err)
	}
}

func playerIDs(st *hangmanv1.RoomState) string {
	var ids []string
	for _, p := range st.GetPlayers() {
		ids = append(ids, p.GetId())
	}
	return strings.Join(ids, " ")
}

// TestTokenNeverLeavesTheNode plays with node-drawn tokens, and forged
// ones, through a follower with every node logging JSON at debug level,
// and finds no token (nor its hash) in any log line, NATS message or
// metric.
func TestTokenNeverLeavesTheNode(t *testing.T) {
	c, logs := newLoggedCluster(t, 3)
	li := c.leader()
	fi := (li + 1) % 3
	rec := record(t, c.nodes[fi].NATSURL())
	rec.waitInterest(c)
	ctx := ctxT(t)
	cl := c.client(fi)
	if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "vault"}); err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for _, p := range []string{"ann", "bob"} {
		j, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "vault", PlayerId: p, Name: p})
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, j.GetToken())
	}
	for i, l := range "etaoin" {
		if _, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "vault", PlayerId: "ann", Letter: string(l), Token: tokens[0], RequestId: fmt.Sprint("g", i)}); err != nil {
			t.Fatal(err)
		}
		// bob tries ann's seat with his own token, ann's ids and all.
		if _, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "vault", PlayerId: "ann", Letter: string(l), Token: tokens[1], RequestId: fmt.Sprint("g", i+1)}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("bob as ann: %v", err)
		}
	}
	c.converged()
	var metrics bytes.Buffer
	for _, cfg := range c.cfgs {
		resp, err := http.Get("http://" + cfg.HTTPAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(&metrics, resp.Body)
		resp.Body.Close()
	}
	var nats bytes.Buffer
	for _, m := range rec.snapshot() {
		b, _ := json.Marshal(m.Header)
		fmt.Fprintf(&nats, "%s %s %s\n", m.Subject, b, m.Data)
	}
	if nats.Len() == 0 || !strings.Contains(nats.String(), `"player":"ann"`) {
		t.Fatalf("recorded nothing of the game on NATS: %.300s", nats.String())
	}
	for _, tok := range tokens {
		h := game.HashToken(tok)
		for _, secret := range []string{tok, h, hex.EncodeToString([]byte(h))} {
			for what, out := range map[string]string{"the logs": logs.String(), "NATS": nats.String(), "the metrics": metrics.String()} {
				if strings.Contains(out, secret) {
					t.Errorf("a token (or its hash) is in %s", what)
				}
			}
		}
	}
	t.Logf("checked %d bytes of logs, %d of NATS messages, %d of metrics", len(logs.String()), nats.Len(), metrics.Len())
}
