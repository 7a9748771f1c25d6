package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"

	"github.com/hangman/hangman/internal/browsertest"
	"github.com/hangman/hangman/internal/harness"
)

// browser is one player's Chromium tab (browsertest.Browser) with the
// compose test's own steps.
type browser struct{ *browsertest.Browser }

func newBrowser(t *testing.T, name string) *browser {
	return &browser{browsertest.New(t, name, 1000, 800)}
}

// The compose test's helpers for the public entry, the healthchecks and a
// real browser.

// entryURL is the public entry as a browser on the host reaches it.
func (p *composeProject) entryURL() string {
	return "http://127.0.0.1:" + p.prefix + "80"
}

// waitEntry waits until the entry answers /readyz (a relay's, through it).
func (p *composeProject) waitEntry(ctx context.Context) {
	p.t.Helper()
	p.poll(ctx, "the entry ready", 2*time.Minute, func(ctx context.Context) error {
		return getOK(ctx, p.entryURL()+"/readyz")
	})
}

func getOK(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// waitHealthy waits until Docker reports every container of the project
// healthy: the images' own healthchecks work.
func (p *composeProject) waitHealthy(ctx context.Context) {
	p.t.Helper()
	p.poll(ctx, "every container healthy in docker ps", 2*time.Minute, func(ctx context.Context) error {
		ids := p.containers(ctx, "")
		if len(ids) < 6 {
			return fmt.Errorf("%d containers running, want 6", len(ids))
		}
		out, err := run(ctx, "", nil, p.docker, append([]string{"inspect", "-f", "{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}"}, ids...)...)
		if err != nil {
			return fmt.Errorf("docker inspect: %v: %s", err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasSuffix(line, " healthy") {
				return fmt.Errorf("not healthy: %s", line)
			}
		}
		return nil
	})
}

// relayContainer is the container of the relay a browser names: a
// relay's name is its container's hostname and port.
func (p *composeProject) relayContainer(ctx context.Context, relayName string) string {
	p.t.Helper()
	host, _, _ := strings.Cut(relayName, ":")
	for _, id := range p.containers(ctx, "relay") {
		out, err := run(ctx, "", nil, p.docker, "inspect", "-f", "{{.Config.Hostname}}", id)
		if err == nil && strings.TrimSpace(out) == host {
			return id
		}
	}
	p.t.Fatalf("no relay container has the hostname of relay %q", relayName)
	return ""
}

// checkPlayer waits until every node's replica of room has exactly one
// player called name (a seat kept across reconnects is not a second one)
// and every letter, and returns the room's seq.
func (p *composeProject) checkPlayer(ctx context.Context, nodes []string, room, name string, letters ...string) uint64 {
	p.t.Helper()
	var seq uint64
	p.checkReplicas(ctx, nodes, room, fmt.Sprintf("with player %s and %v", name, letters), func(st *hangmanv1.RoomState) error {
		seats := 0
		for _, pl := range st.GetPlayers() {
			if pl.GetName() == name {
				seats++
			}
		}
		if seats != 1 {
			return fmt.Errorf("%d players called %s in %v", seats, name, st.GetPlayers())
		}
		if err := missingLetters(st, letters); err != nil {
			return err
		}
		seq = max(seq, st.GetSeq())
		return nil
	})
	return seq
}

// guessUntilAcked guesses through the nodes in turn, with one request id
// and no pause, until one acknowledges: the first answer after a leader
// died is as early as a client can see the cluster back.
func (p *composeProject) guessUntilAcked(ctx context.Context, nodes []string, room, player, letter string) uint64 {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	reqID := fmt.Sprintf("deploy-guess-%s-%d", letter, time.Now().UnixNano())
	var last error
	for i := 0; time.Now().Before(deadline); i++ {
		c, err := p.conn(ctx, nodes[i%len(nodes)])
		if err != nil {
			p.t.Fatal(err)
		}
		actx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		resp, err := hangmanv1.NewGameServiceClient(c).Guess(actx, &hangmanv1.GuessRequest{Room: room, PlayerId: player, Letter: letter, RequestId: reqID, Token: harness.TokenOf(player)})
		cancel()
		if err == nil {
			return resp.GetState().GetSeq()
		}
		if !retryable(err) {
			p.t.Fatalf("guess %s: %v", letter, err)
		}
		last = err
	}
	p.t.Fatalf("guess %s not acknowledged within a minute: %v", letter, last)
	return 0
}

// relayName is the relay the page says it is connected to.
func (b *browser) relayName() string {
	b.T.Helper()
	name, ok := strings.CutPrefix(b.Text("#badge-text"), "Connected to ")
	if !ok {
		b.T.Fatalf("%s: badge %q names no relay", b.Name, b.Text("#badge-text"))
	}
	return name
}

// guess types a letter and waits until the page shows it applied.
func (b *browser) guess(letter string) {
	b.T.Helper()
	b.Do("type "+letter, chromedp.KeyEvent(letter))
	b.WaitJS("guess "+letter+" applied", fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled && !document.querySelector('#keyboard [data-letter="%s"]').classList.contains("pending")`, letter, letter))
}

const (
	connectedJS = `document.querySelector("#badge").dataset.state === "connected"`
	// inGameJS: the game shown to a player (a spectator has no keyboard).
	inGameJS = `!document.querySelector("#game").hidden && document.querySelector("#masked").children.length > 0 && !document.querySelector("#keyboard").hidden`
)

func js(v string) string { b, _ := json.Marshal(v); return string(b) }
