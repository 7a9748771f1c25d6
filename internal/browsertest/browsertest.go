// Package browsertest drives a real headless Chromium for the browser
// tests of e2e and deploy: one tab per player, with deadlines on every
// step and a failure message that shows what the page said. It lives once
// here so the two suites cannot drift apart in how they find the browser,
// wait for the page or read it.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// ChromiumPath finds the browser: $HANGMAN_CHROMIUM, else Debian's
// chromium or another usual name on PATH; "" when there is none (the
// tests then skip with a message).
func ChromiumPath() string {
	names := []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"}
	if p := os.Getenv("HANGMAN_CHROMIUM"); p != "" {
		names = []string{p}
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser is one headless Chromium tab, named after the player it plays.
type Browser struct {
	T    *testing.T
	Name string
	Ctx  context.Context
	// Alerts counts the JavaScript dialogs the page opened (and that were
	// dismissed): a name that ran as markup would open one.
	Alerts atomic.Int32
}

// New starts a Chromium of its own with a window of width × height; it is
// stopped when the test ends.
func New(t *testing.T, name string, width, height int) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath()),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &Browser{T: t, Name: name, Ctx: ctx}
	// Start the browser without a deadline (one would bound its life).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("%s: start chromium: %v", name, err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			b.Alerts.Add(1)
			go func() { _ = chromedp.Do(ctx, dismissDialog) }()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

func dismissDialog(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
	_, err := cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
	return chromedp.Void{}, err
}

// Do runs steps with a deadline, failing the test with what if they fail.
func (b *Browser) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.T.Fatalf("%s: %s: %v", b.Name, what, err)
	}
}

// Eval evaluates a JavaScript expression into out.
func (b *Browser) Eval(expr string, out any) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](`JSON.stringify(`+expr+`)`))
	if err != nil {
		b.T.Fatalf("%s: evaluate %s: %v", b.Name, expr, err)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		b.T.Fatalf("%s: evaluate %s: %v", b.Name, expr, err)
	}
	if err := json.Unmarshal([]byte(s), out); err != nil {
		b.T.Fatalf("%s: evaluate %s = %s: %v", b.Name, expr, s, err)
	}
}

// WaitJS waits until a JavaScript expression is truthy; on timeout the
// failure shows the page's badge, its last message and the start of its
// text.
func (b *Browser) WaitJS(what, expr string) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 45*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(40*time.Second))); err != nil {
		var dump string
		b.Eval(`(document.querySelector("#badge-text")||{}).textContent + " | last message: " + ((document.querySelector("#toast")||{}).textContent||"") + " | " + document.querySelector("main").innerText.slice(0, 600)`, &dump)
		b.T.Fatalf("%s: waiting for %s: %v\npage: %s", b.Name, what, err, dump)
	}
}

// Text is the text content of the first element sel matches, "" if none.
func (b *Browser) Text(sel string) string {
	b.T.Helper()
	var s string
	b.Eval(fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel), &s)
	return s
}

// Frames is what the tab received on its websockets since RecordFrames:
// every frame's payload, in order, as the browser's network layer saw it
// (before the page's scripts), so a test can check that something never
// reached a page, not only that the page did not show it.
type Frames struct {
	mu   sync.Mutex
	list []string
}

// RecordFrames starts recording the websocket frames the tab receives,
// until the test ends.
func (b *Browser) RecordFrames() *Frames {
	b.T.Helper()
	f := &Frames{}
	if err := chromedp.Listen(b.Ctx, func(ev any) {
		if e, ok := ev.(*network.EventWebSocketFrameReceived); ok && e.Response != nil {
			f.mu.Lock()
			f.list = append(f.list, string(e.Response.PayloadData))
			f.mu.Unlock()
		}
	}); err != nil {
		b.T.Fatalf("%s: record websocket frames: %v", b.Name, err)
	}
	return f
}

// All returns a copy of the frames received so far.
func (f *Frames) All() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.list...)
}
