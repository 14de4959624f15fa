package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The profile: enrollment over HTTPS in process (cmd/fleetca's
// BenchmarkEnrollHTTPS at h1, c=32: serve's real wiring, bbolt with fsync),
// with runtime/pprof, its samples grouped by area. serve has no pprof
// hook, and the benchmark labels its load generator's goroutines
// side=client and its CSR making side=setup, which are dropped here.

// profileBench is the go test -bench pattern the profile runs.
const profileBench = "^BenchmarkEnrollHTTPS$/^h1$/^c=32$"

// area is a part of the server's work, recognised by a function anywhere
// on a sample's stack.
type area struct {
	name string
	re   *regexp.Regexp
}

// profileAreas are matched in order: a sample goes to the first area one
// of whose functions is on its stack (so fsync inside a bbolt commit is
// fsync, and JSON encoding inside the store is the store's).
var profileAreas = []area{
	{"fsync (CPU in fdatasync; its wait is off-CPU)", regexp.MustCompile(`(?m)fdatasync|Fdatasync|Fsync`)},
	{"store: audit tree hashing", regexp.MustCompile(`(?m)AppendLeaves|putHashes|appendAudit|indexAudit|backend\.AppendAudit|/audit\.`)},
	{"store: record encoding (binary; JSON for the rest)", regexp.MustCompile(`(?m)boltstore\.(putRecord|getRecord|encode\w+|decode\w+|certLight|newDec|\(\*enc\)|\(\*dec\))|^encoding/json\.(.|\n)*fleetca/store/`)},
	{"store: bbolt (pages, write) and other store work", regexp.MustCompile(`(?m)go\.etcd\.io/bbolt|fleetca/store/`)},
	{"CSR parse + signature check", regexp.MustCompile(`(?m)enroll\.checkCSR|enroll\.parseCSR|ParseCertificateRequest|web\.DecodeCSRBody|web\.decodeCSRPEM`)},
	{"signing: CreateCertificate's check of its signature", regexp.MustCompile(`(?m)^crypto/x509\.checkSignature`)},
	{"signing: ECDSA signature", regexp.MustCompile(`(?m)^crypto/x509\.signTBS|^crypto/ecdsa\.SignASN1`)},
	{"x509 encoding (template, ASN.1, serial)", regexp.MustCompile(`(?m)^crypto/x509\.|x509util|^encoding/asn1\.|fleetca/ca\.`)},
	{"enroll: policy and the rest of the service", regexp.MustCompile(`(?m)fleetca/enroll\.`)},
	{"TLS", regexp.MustCompile(`(?m)^crypto/tls\.`)},
	{"HTTP/JSON, echo, request log", regexp.MustCompile(`(?m)^net/http\.|labstack/echo|^encoding/json\.|^log/slog\.|fleetca/web\.`)},
	{"GC (mark workers, assists, sweep)", regexp.MustCompile(`(?m)^runtime\.(gcBgMarkWorker|gcAssist|bgsweep|gcDrain|markroot|scanobject)`)},
	{"scheduler, netpoll, other syscalls", regexp.MustCompile(`(?m)^runtime\.(schedule|findRunnable|netpoll|mcall|park_m|goexit0)|^internal/poll\.|^syscall\.`)},
}

// areaShare is one area's share of the server's CPU samples.
type areaShare struct {
	name  string
	share float64
}

// profileResult is the grouped profile.
type profileResult struct {
	areas   []areaShare // largest first; "other" for the unmatched
	samples int         // server samples behind the shares
	bench   string      // the benchmark's result line
}

// profileEnroll runs the in-process enrollment benchmark of the product
// in root for n enrollments with a CPU profile, reads it back with `go
// tool pprof -raw`, and groups the server's samples by area.
func profileEnroll(ctx context.Context, root, tmp string, n int) (profileResult, error) {
	cpu := filepath.Join(tmp, "enroll-cpu.pprof")
	testBin := filepath.Join(tmp, "fleetca.test")
	cmd := exec.CommandContext(ctx, "go", "test", "./cmd/fleetca", "-run", "^$", "-bench", profileBench,
		"-benchtime", fmt.Sprintf("%dx", n), "-cpuprofile", cpu, "-o", testBin)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return profileResult{}, fmt.Errorf("profile: go test -bench %s: %w\n%s", profileBench, err, out)
	}
	var line string
	for l := range strings.Lines(string(out)) {
		if strings.HasPrefix(l, "BenchmarkEnrollHTTPS") {
			line = strings.Join(strings.Fields(l), " ")
		}
	}
	raw, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-raw", testBin, cpu).Output()
	if err != nil {
		return profileResult{}, fmt.Errorf("profile: go tool pprof -raw: %w", err)
	}
	r, err := groupProfile(raw)
	r.bench = line
	return r, err
}

// groupProfile reads `go tool pprof -raw` text, drops the samples labelled
// side=client or side=setup, and returns the others' shares by area.
func groupProfile(raw []byte) (profileResult, error) {
	type sample struct {
		count int
		locs  []int
	}
	var samples []sample
	locs := map[int][]string{} // location ID -> its functions, inlined first
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	section, cur := "", 0
	sampleRe := regexp.MustCompile(`^\s+(\d+)\s+\d+: ([\d ]+)$`)
	locRe := regexp.MustCompile(`^\s+(\d+): 0x[0-9a-f]+ M=\d+ (\S+)`)
	inlRe := regexp.MustCompile(`^\s+(\S+) \S+:\d+`)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l == "Samples:" || l == "Locations" || l == "Mappings":
			section = l
			continue
		}
		switch section {
		case "Samples:":
			if m := sampleRe.FindStringSubmatch(l); m != nil {
				c, _ := strconv.Atoi(m[1])
				var ids []int
				for f := range strings.FieldsSeq(m[2]) {
					id, _ := strconv.Atoi(f)
					ids = append(ids, id)
				}
				samples = append(samples, sample{c, ids})
			} else if strings.Contains(l, "side:[client]") || strings.Contains(l, "side:[setup]") {
				if len(samples) > 0 {
					samples[len(samples)-1].count = 0
				}
			}
		case "Locations":
			if m := locRe.FindStringSubmatch(l); m != nil {
				cur, _ = strconv.Atoi(m[1])
				locs[cur] = []string{m[2]}
			} else if m := inlRe.FindStringSubmatch(l); m != nil && cur != 0 {
				locs[cur] = append(locs[cur], m[1])
			}
		}
	}
	if err := sc.Err(); err != nil {
		return profileResult{}, err
	}
	counts := make([]int, len(profileAreas)+1) // the last is "other"
	total := 0
	for _, s := range samples {
		if s.count == 0 {
			continue
		}
		var fns []string
		for _, id := range s.locs {
			fns = append(fns, locs[id]...)
		}
		counts[classify(strings.Join(fns, "\n"))] += s.count
		total += s.count
	}
	if total == 0 {
		return profileResult{}, fmt.Errorf("profile: no server samples in %d", len(samples))
	}
	r := profileResult{samples: total}
	for i, c := range counts {
		name := "other"
		if i < len(profileAreas) {
			name = profileAreas[i].name
		}
		r.areas = append(r.areas, areaShare{name, float64(c) / float64(total)})
	}
	slices.SortStableFunc(r.areas, func(a, b areaShare) int {
		switch {
		case a.share > b.share:
			return -1
		case a.share < b.share:
			return 1
		}
		return 0
	})
	return r, nil
}

// classify returns the index in profileAreas of the first area a stack
// (its functions one a line, leaf first) belongs to, len(profileAreas)
// for none.
func classify(stack string) int {
	for i, a := range profileAreas {
		if a.re.MatchString(stack) {
			return i
		}
	}
	return len(profileAreas)
}
