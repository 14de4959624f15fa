package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/revocation"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
	"github.com/fleetca/fleetca/web/ui"
)

// storeFormat names the way build writes the fleet; change it when build
// changes, so that a cached file of the old fleet is not reused.
const storeFormat = "v1"

// target is issue 15's bound on a page's median server time.
const target = 100 * time.Millisecond

type options struct {
	devices int
	cache   string
	reps    int
}

func main() {
	benchutil.Main("consoleload", parse, run)
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("consoleload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.devices, "devices", 1_000_000, "devices in the store (three certificates each)")
	fs.StringVar(&o.cache, "cache", "", "directory the built store is kept in (default: the user cache directory's fleetca-bench)")
	fs.IntVar(&o.reps, "reps", 30, "requests per page")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.devices < 100 || o.reps < 1 {
		return o, errors.New("-devices must be at least 100 and -reps at least 1")
	}
	if o.cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		o.cache = filepath.Join(dir, "fleetca-bench")
	}
	return o, nil
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) int {
	logf := benchutil.Logger("consoleload", stderr)
	if err := measure(ctx, o, stdout, logf); err != nil {
		logf("%v", err)
		return 1
	}
	return 0
}

// buildNow is the fleet's "now": the pages are served at this time, so
// that the counts mean the same at every run of a cached file.
var buildNow = time.Date(2026, time.December, 1, 12, 0, 0, 0, time.UTC)

func measure(ctx context.Context, o options, stdout io.Writer, logf func(string, ...any)) error {
	if err := os.MkdirAll(o.cache, 0o700); err != nil {
		return err
	}
	path := filepath.Join(o.cache, fmt.Sprintf("console-%s-%d.db", storeFormat, o.devices))
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		logf("building %s: %d devices, %d certificates (once; later runs reuse it)", path, o.devices, 3*o.devices)
		start := time.Now()
		if err := build(ctx, path+".tmp", o.devices, logf); err != nil {
			return fmt.Errorf("build the store: %w", err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return err
		}
		logf("built in %v", time.Since(start).Round(time.Second))
	} else if err != nil {
		return err
	}
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		return err
	}
	defer st.Close()

	tmp, err := os.MkdirTemp("", "consoleload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	now := func() time.Time { return buildNow }
	initRes, err := ca.Init(ctx, ca.InitOptions{Dir: tmp, Name: "consoleload", Now: buildNow.Add(-365 * 24 * time.Hour)})
	if err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	td := api.TrustDomain("bench.invalid")
	auth, err := ca.New(ctx, initRes.Config, ca.Deps{Dir: tmp, PublicURL: "http://127.0.0.1:1", TrustDomain: td})
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	enr, err := enroll.New(enroll.Config{TrustDomain: td}, enroll.Deps{Store: st, CA: auth, Now: now})
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	token, err := enr.MintAdminToken(ctx)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	rev, err := revocation.New(ctx, revocation.Config{}, revocation.Deps{Store: st, CA: auth, RootCRLPath: filepath.Join(tmp, "root.crl"), Now: now, Holder: "consoleload"})
	if err != nil {
		return fmt.Errorf("revocation: %w", err)
	}
	h, err := ui.New(ui.Deps{
		Admins: enr, Enroll: enr, Records: st, Revocation: rev, Guard: noGuard{},
		Root: func() *x509.Certificate { return initRes.Root }, Now: now,
	})
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}

	var mu sync.Mutex
	var last time.Duration
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		d := time.Since(start)
		mu.Lock()
		last = d
		mu.Unlock()
	}))
	defer srv.Close()
	client := srv.Client()
	client.Jar, _ = cookiejar.New(nil)
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if err := login(ctx, client, srv.URL, string(token)); err != nil {
		return err
	}
	get := func(p string) (string, time.Duration, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+p, nil)
		resp, err := client.Do(req)
		if err != nil {
			return "", 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return "", 0, fmt.Errorf("GET %s: %s", p, resp.Status)
		}
		mu.Lock()
		defer mu.Unlock()
		return string(body), last, nil
	}

	// A page twenty "next" links into the list.
	deep := "/ui/devices"
	for range 20 {
		body, _, err := get(deep)
		if err != nil {
			return err
		}
		m := nextLink.FindStringSubmatch(body)
		if m == nil {
			logf("the devices page at %s has no next link; measuring it as the deep page", deep)
			break
		}
		deep = html.UnescapeString(m[1])
	}
	mid := deviceID(o.devices / 2)
	pages := []struct{ name, path string }{
		{"overview", "/ui/"},
		{"devices, first page", "/ui/devices"},
		{"devices, 20 pages deep", deep},
		{"devices, search by prefix", "/ui/devices?q=" + url.QueryEscape(mid[:len(mid)-3])},
		{"device", "/ui/devices/" + url.PathEscape(mid)},
	}
	fmt.Fprintf(stdout, "admin console on bbolt: %d devices, %d certificates; median server time of %d requests\n",
		o.devices, 3*o.devices, o.reps)
	fmt.Fprintf(stdout, "%-28s %10s %10s %8s %8s\n", "page", "median", "p90", "target", "ratio")
	for _, p := range pages {
		if _, _, err := get(p.path); err != nil { // warm
			return err
		}
		var ds []int64
		for range o.reps {
			_, d, err := get(p.path)
			if err != nil {
				return err
			}
			ds = append(ds, int64(d))
		}
		med := time.Duration(benchutil.Median(ds))
		p90 := time.Duration(benchutil.Percentile(ds, 90))
		fmt.Fprintf(stdout, "%-28s %10v %10v %8v %7.2fx\n", p.name, med.Round(10*time.Microsecond), p90.Round(10*time.Microsecond),
			target, float64(med)/float64(target))
	}
	// The store's console reads alone, which the pages build on.
	stats, err := st.Stats(ctx, buildNow)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Stats at %s: %+v\n", buildNow.Format(time.RFC3339), stats)
	fmt.Fprintf(stdout, "store calls (median of %d):\n", o.reps)
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"Stats", func() error { _, err := st.Stats(ctx, buildNow); return err }},
		{"QueryDevices renew_by, 50", func() error {
			_, _, err := st.QueryDevices(ctx, store.DeviceQuery{Sort: store.SortRenewBy, Limit: 50})
			return err
		}},
		{"QueryDevices revoked, 50", func() error {
			_, _, err := st.QueryDevices(ctx, store.DeviceQuery{Status: store.DeviceRevoked, Limit: 50})
			return err
		}},
		{"QueryAudit by device", func() error {
			_, _, err := st.QueryAudit(ctx, store.AuditQuery{DeviceID: mid})
			return err
		}},
	} {
		var ds []int64
		for range o.reps {
			start := time.Now()
			if err := c.fn(); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			ds = append(ds, int64(time.Since(start)))
		}
		fmt.Fprintf(stdout, "  %-26s %10v\n", c.name, time.Duration(benchutil.Median(ds)).Round(time.Microsecond))
	}
	return nil
}

var (
	csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	nextLink  = regexp.MustCompile(`href="(/ui/devices\?[^"]*after=[^"]*)"`)
)

// login logs client in with the admin token, as a browser does.
func login(ctx context.Context, client *http.Client, base, token string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ui/login", nil)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(body)
	if m == nil {
		return errors.New("the login page has no CSRF field")
	}
	form := url.Values{"csrf": {html.UnescapeString(string(m[1]))}, "token": {token}}
	resp, err = client.PostForm(base+"/ui/login", form)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("login: %s", resp.Status)
	}
	return nil
}

// noGuard lets every login through: the benchmark logs in once.
type noGuard struct{}

func (noGuard) Refuse(*http.Request) (time.Duration, error) { return 0, nil }
func (noGuard) Fail(*http.Request, string) error            { return nil }

func deviceID(i int) string { return fmt.Sprintf("dev-%08d", i) }

// derSize is about the size of a real device certificate's DER.
const derSize = 600

// build writes the fleet into a new store at path through boltstore's
// own writes: per device an Issue and two Renews, and for one in a
// hundred a Revoke of the device, from many goroutines so that batches
// fill.
func build(ctx context.Context, path string, devices int, logf func(string, ...any)) error {
	_ = os.Remove(path)
	st, err := boltstore.Open(path, boltstore.Options{NoSync: true, MaxBatchDelay: 10 * time.Millisecond})
	if err != nil {
		return err
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	const workers = 512
	const span = 59 * 24 * time.Hour
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= devices || ctx.Err() != nil {
					return
				}
				if i%100_000 == 0 && i > 0 {
					logf("%d devices", i)
				}
				if err := writeDevice(ctx, st, i, span); err != nil {
					select {
					case errs <- fmt.Errorf("device %d: %w", i, err):
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	err = <-errs
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

func writeDevice(ctx context.Context, st *boltstore.Store, i int, span time.Duration) error {
	id := deviceID(i)
	// Enrolled at a time spread over the span before buildNow (a
	// multiplicative hash spreads neighbouring IDs), renewed at a third
	// and two thirds of the time since.
	frac := float64(uint32(uint64(i)*2654435761)) / (1 << 32)
	enrolled := buildNow.Add(-time.Duration(frac*float64(span)) - time.Hour).Truncate(time.Second)
	since := buildNow.Sub(enrolled)
	cert := func(k int, at time.Time) store.Certificate {
		n := int64(i)*3 + int64(k) + 1
		der := make([]byte, derSize)
		binary.BigEndian.PutUint64(der, uint64(n))
		return store.Certificate{
			Serial: new(big.Int).Lsh(big.NewInt(n), 64), DeviceID: id,
			KeyHash:   sha256.Sum256(binary.BigEndian.AppendUint64([]byte("key"), uint64(n))),
			NotBefore: at.Add(-time.Minute), NotAfter: at.Add(30 * 24 * time.Hour), IssuedAt: at, DER: der,
		}
	}
	c := cert(0, enrolled)
	err := st.Issue(ctx, store.Issuance{Certificate: c, Now: enrolled,
		Audit: store.AuditEvent{Time: enrolled, Action: "certificate.issue", Actor: "token:bench", DeviceID: id, Serial: c.Serial.Text(16)}})
	if err != nil {
		return err
	}
	parent := c.Serial
	for k := 1; k <= 2; k++ {
		at := enrolled.Add(since * time.Duration(k) / 3).Truncate(time.Second)
		c := cert(k, at)
		_, err := st.Renew(ctx, store.Renewal{Parent: parent, Certificate: c, Now: at,
			Audit: store.AuditEvent{Time: at, Action: "certificate.renew", Actor: "device:" + id, DeviceID: id, Serial: c.Serial.Text(16)}})
		if err != nil {
			return err
		}
		parent = c.Serial
	}
	if i%100 == 7 {
		at := buildNow.Add(-time.Duration(i%48) * time.Hour)
		_, err := st.Revoke(ctx, store.RevokeRequest{DeviceID: id, At: at, Reason: 1,
			Audit: store.AuditEvent{Time: at, Action: "device.revoke", Actor: "admin:admin", DeviceID: id}})
		if err != nil {
			return err
		}
	}
	return nil
}
