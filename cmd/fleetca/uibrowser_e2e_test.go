package main

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// uiBrowser is a headless chromium, driven by chromedp, pointed at a
// fixture's serve, shared by the console's browser tests. It collects the
// browser console from the start; with FLEETCA_UI_SHOTS set to a
// directory, shot saves a full-page screenshot of each page there.
type uiBrowser struct {
	t     *testing.T
	f     *fixture
	ctx   context.Context
	shots string

	mu          sync.Mutex
	console     []string
	stopConsole context.CancelFunc
	done        chan struct{}
}

// newUIBrowser starts chromium with a window height pixels high, gives the
// whole test timeout, and closes the browser when the test ends.
func newUIBrowser(t *testing.T, f *fixture, chromium string, height int, timeout time.Duration) *uiBrowser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.WindowSize(1366, height),
		// The HTTPS listener's certificate chains to this CA's root, which
		// the browser's profile does not hold.
		chromedp.Flag("ignore-certificate-errors", true))
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(ctx); err != nil { // start the browser
		t.Fatalf("start chromium: %v", err)
	}

	b := &uiBrowser{t: t, f: f, ctx: ctx, shots: os.Getenv("FLEETCA_UI_SHOTS"), done: make(chan struct{})}
	var consoleCtx context.Context
	consoleCtx, b.stopConsole = context.WithCancel(ctx)
	go func() {
		defer close(b.done)
		for m, err := range chromedp.Console(consoleCtx) {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m.String())
			b.mu.Unlock()
		}
	}()
	t.Cleanup(b.stopConsoleAndWait)
	return b
}

func (b *uiBrowser) stopConsoleAndWait() {
	b.stopConsole()
	<-b.done
}

// consoleMessages stops collecting and returns what the browser console
// logged so far.
func (b *uiBrowser) consoleMessages() []string {
	b.stopConsoleAndWait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.console
}

// shot saves a full-page screenshot as name.png when FLEETCA_UI_SHOTS is set.
func (b *uiBrowser) shot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	// Quality 100 is PNG; less would be JPEG.
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// step runs actions, and on failure stops the test with the page's HTML
// and the server's log.
func (b *uiBrowser) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		html, _ := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		b.t.Fatalf("%s: %v\npage:\n%s\nserver log:\n%s", what, err, html, b.f.srv.log.String())
	}
}

// text returns the text of the element sel selects.
func (b *uiBrowser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}
