package httpapi

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// chromiumPath returns the Chromium binary the browser tests drive. Without
// one they fail in CI (CI=true: .ci/run installs Debian's chromium) and are
// skipped elsewhere, saying how to get it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no Chromium for the dashboard's browser tests: apt-get install -y chromium"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser is one headless Chromium with one tab, and everything the page
// wrote to its console.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex // guards console
	console []chromedp.ConsoleMessage
}

// newBrowser starts Chromium with a width×height viewport and the given
// time zone (an IANA name; "" keeps the machine's). It ends with the test.
func newBrowser(t *testing.T, width, height int, zone string) *browser {
	t.Helper()
	path := chromiumPath(t)
	// The flags known to work on a closed network: without the
	// background-networking ones Chromium keeps trying Google's hosts.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // as root in CI
		chromedp.DisableGPU,
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("font-render-hinting", "none"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx}
	// The first Run starts the browser; it must not have a timeout, which
	// would stop the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start %s: %v", path, err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return // the context ended
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		<-done
	})
	b.do(chromedp.EmulateViewport(int64(width), int64(height)))
	if zone != "" {
		if _, err := chromedp.Call(b.ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: zone}); err != nil {
			t.Fatalf("time zone %s: %v", zone, err)
		}
	}
	return b
}

// do runs steps, failing the test on an error.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v\n%s", err, b.pageState())
	}
}

// eval evaluates a JavaScript expression in the page and decodes its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v\n%s", expr, err, b.pageState())
	}
	return v
}

// waitFor waits until the JavaScript expression is truthy: the page's
// asynchronous work (fetches, the stream) has landed in the DOM.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 40*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		b.t.Fatalf("waiting for %s (%s): %v\n%s", what, expr, err, b.pageState())
	}
}

// pageState is what a planner would read on the page: the header and the
// banners, and every panel's state, for a failure message.
func (b *browser) pageState() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[
		"status: " + document.getElementById("status").textContent,
		"latest: " + document.getElementById("latest").textContent,
		"board: " + document.getElementById("board-panel").dataset.minute,
		"curves: " + JSON.stringify({...document.getElementById("curves-panel").dataset}),
		...[...document.querySelectorAll(".banner:not([hidden])")].map((e) => "banner: " + e.textContent),
		...[...document.querySelectorAll("p[data-state]:not(.banner)")].filter((e) => e.offsetParent !== null && e.id !== "status")
			.map((e) => (e.id || e.tagName) + " [" + e.dataset.state + "]: " + e.textContent.slice(0, 200)),
	].join("\n")`))
	if err != nil {
		return fmt.Sprintf("(page state unreadable: %v)", err)
	}
	return "page:\n" + s + "\nconsole:\n" + strings.Join(b.consoleLines(false), "\n")
}

// consoleLines returns the page's console errors: calls of console.error,
// uncaught exceptions and rejections, and browser-log errors. With
// allowNetwork, failed loads that the page handles (the 401 that asks for a
// token, a 404 "no data yet", a 503 of a closing stream) are left out.
func (b *browser) consoleLines(allowNetwork bool) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.console {
		if m.Type != chromedp.ConsoleError && !m.IsException() {
			continue
		}
		if allowNetwork && m.Source == "network" {
			continue
		}
		out = append(out, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
	}
	return out
}

// noConsoleErrors fails the test if the page wrote an error to its console.
func (b *browser) noConsoleErrors(allowNetwork bool) {
	b.t.Helper()
	if lines := b.consoleLines(allowNetwork); len(lines) > 0 {
		b.t.Errorf("console errors:\n%s", strings.Join(lines, "\n"))
	}
}
