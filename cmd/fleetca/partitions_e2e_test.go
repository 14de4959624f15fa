package main

// End-to-end test of partitioned CRLs (revocation.crl_partitions): a real
// serve with 16 partitions, devices enrolled into several, two of them
// revoked in two partitions; openssl verify -crl_check_all on the file
// crl sync writes, nginx as exported with crl sync --revocation-feed, and
// fleetca proxy (its Checker loading each partition, no feed) each refuse
// exactly the revoked devices, and only the two touched partitions got new
// CRL numbers.

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/testenv"
)

// partitionOfCert returns the partition the device certificate NAME.crt
// names in its CRL distribution point (…/crl/<p>), or -1.
func partitionOfCert(t *testing.T, f *fixture, name string) int {
	t.Helper()
	c := readCerts(t, filepath.Join(f.work, name+".crt"))[0]
	for _, u := range c.CRLDistributionPoints {
		if i := strings.LastIndex(u, api.CRLPath+"/"); i >= 0 {
			if p, err := strconv.Atoi(u[i+len(api.CRLPath)+1:]); err == nil {
				return p
			}
		}
	}
	return -1
}

// partitionNumbers reads the CA's discovery document: each partition's
// CRL number.
func partitionNumbers(t *testing.T, f *fixture) (api.CRLPartitions, map[int]string) {
	t.Helper()
	res := f.curl(f.srv.httpURL + api.PartitionsPath)
	if res.status != 200 {
		t.Fatalf("GET %s: status %d, want 200; body %s", api.PartitionsPath, res.status, res.body)
	}
	var d api.CRLPartitions
	if err := json.Unmarshal(res.body, &d); err != nil {
		t.Fatalf("GET %s: %v; body %s", api.PartitionsPath, err, res.body)
	}
	nums := map[int]string{}
	for _, c := range d.CRLs {
		nums[c.Partition] = c.Number
	}
	return d, nums
}

func TestPartitionedCRLsEndToEnd(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "openssl")
	testenv.Need(t, "curl")
	nginx := testenv.Need(t, "nginx")
	f := initFixture(t)
	cfgPath := filepath.Join(f.dataDir, "fleetca.yaml")
	cfg := readFile(t, cfgPath)
	set := regexp.MustCompile(`(?m)^  crl_partitions: \d+$`)
	if len(set.FindAllString(cfg, -1)) != 1 {
		t.Fatalf("fleetca.yaml from init has no one revocation.crl_partitions line:\n%s", cfg)
	}
	writeFile(t, cfgPath, set.ReplaceAllString(cfg, "  crl_partitions: 16"))
	f.start()
	d, before := partitionNumbers(t, f)
	if d.Partitions != 16 || len(d.CRLs) != 16 {
		t.Fatalf("discovery: %d partitions, %d CRLs; want 16, 16", d.Partitions, len(d.CRLs))
	}

	// Devices until two partitions have two each: one of each pair is
	// revoked, the other stays good beside it.
	byPart := map[int][]string{}
	serials := map[string]string{}
	var names []string
	var revoked []string
	for i := 0; len(revoked) < 2; i++ {
		if i == 40 {
			t.Fatalf("40 devices did not fill two partitions with two devices each: %v", byPart)
		}
		name := fmt.Sprintf("dev-%d", i)
		serials[name] = f.fleetcaEnroll(f.plainToken("--device-id", name), name)
		p := partitionOfCert(t, f, name)
		if p < 0 || p >= 16 {
			t.Fatalf("%s's certificate names no partition of 16 in its CRL distribution point", name)
		}
		names = append(names, name)
		byPart[p] = append(byPart[p], name)
		if len(byPart[p]) == 2 {
			revoked = append(revoked, byPart[p][0])
		}
	}
	isRevoked := map[string]bool{revoked[0]: true, revoked[1]: true}
	touched := map[int]bool{partitionOfCert(t, f, revoked[0]): true, partitionOfCert(t, f, revoked[1]): true}
	t.Logf("%d devices in %d partitions; revoking %v in partitions %v", len(names), len(byPart), revoked, touched)

	// nginx as exported, crl sync following the feed.
	v := &verifierFixture{fixture: f, kind: "nginx", up: newUpstream(t), out: filepath.Join(f.work, "nginx"), serials: serials}
	f.mustFleetca("cert", "server", "--dir", f.dataDir, "--dns", "localhost", "--ip", "127.0.0.1", "--key", "server.key", "--cert", "server.crt")
	v.addr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	r := f.mustFleetca("export", "nginx", "--out", v.out, "--dir", f.dataDir, "--ca", f.srv.httpURL, "--listen", v.addr, "--upstream", v.up.URL,
		"--server-cert", filepath.Join(f.work, "server.crt"), "--server-key", filepath.Join(f.work, "server.key"))
	if !strings.Contains(r.stdout, "16 partition CRLs") {
		t.Errorf("fleetca export stdout = %q, want it to say it wrote 16 partition CRLs", r.stdout)
	}
	run := startNginx(t, v, nginx, "nginx-crl", v.file("nginx.conf"), v.addr)
	opts := strings.Join(append([]string{nginx}, run...), " ")
	sync := startDaemon(t, "fleetca crl sync", "", v.bin, "crl", "sync", "--url", f.srv.httpURL, "--issuer", v.file("ca.pem"),
		"--out", v.file("crl.pem"), "--every", "1h", "--revocation-feed", f.srv.httpsURL, "--exec", opts+" -t -q && "+opts+" -s reload")
	waitUntil(t, time.Now(), "crl sync logs that it runs", func() bool { return strings.Contains(sync.log.String(), `"msg":"syncing CRLs"`) })

	// fleetca proxy on the CRLs alone (no feed): SIGHUP refetches them.
	bundle := filepath.Join(f.work, "fleet-ca.pem")
	writeFile(t, bundle, string(f.curl(f.srv.httpURL+"/roots.pem").body)+string(f.curl(f.srv.httpURL+"/chain.pem").body))
	pp := startProxy(t, f, "--listen", "127.0.0.1:0", "--upstream", v.up.URL, "--ca", bundle, "--cert", "server.crt", "--key", "server.key",
		"--crl-url", f.srv.httpURL)
	proxy := &verifierFixture{fixture: f, kind: "fleetca proxy", up: v.up, addr: pp.addr, serials: serials}

	for _, name := range names {
		v.wantThrough(t, name)
		proxy.wantThrough(t, name)
	}

	for _, name := range revoked {
		f.mustFleetca("revoke", "--dir", f.dataDir, "--device-id", name)
	}
	start := time.Now()
	for _, name := range revoked {
		took := v.revokedRefusals(t, start, closeWait, name, filepath.Join(f.work, "nginx-crl-run", "error.log"))
		t.Logf("nginx (crl sync --revocation-feed, 16 partitions): %s refused %s after the revocations", name, took.Round(time.Millisecond))
	}
	pp.signal(t, syscall.SIGHUP)
	for _, name := range revoked {
		waitTwice(t, start, closeWait, "fleetca proxy refuses "+name, func() bool { return proxy.refusedHTTPS(name) })
	}
	for _, name := range names {
		if !isRevoked[name] {
			v.wantThrough(t, name)
			proxy.wantThrough(t, name)
		}
	}

	// openssl verify -crl_check_all with the file crl sync keeps.
	chain := filepath.Join(f.work, "chain-for-verify.pem")
	writeFile(t, chain, readFile(t, v.file("ca.pem")))
	for _, name := range names {
		r := f.tool("openssl", "verify", "-crl_check_all", "-CAfile", chain, "-CRLfile", v.file("crl.pem"), name+".crt")
		switch {
		case isRevoked[name] && (r.code == 0 || !strings.Contains(r.stdout+r.stderr, "certificate revoked")):
			t.Errorf("openssl verify -crl_check_all %s (revoked): exit %d, %s%s; want certificate revoked", name, r.code, r.stdout, r.stderr)
		case !isRevoked[name] && r.code != 0:
			t.Errorf("openssl verify -crl_check_all %s: exit %d, %s%s; want OK", name, r.code, r.stdout, r.stderr)
		}
	}

	// The file: every partition's CRL, the full CRL only if the CA says
	// it is needed, and the root CRL.
	dAfter, after := partitionNumbers(t, f)
	want := 16 + 1
	if dAfter.Full.Needed {
		want++
	}
	if got := strings.Count(readFile(t, v.file("crl.pem")), "-----BEGIN X509 CRL-----"); got != want {
		t.Errorf("crl.pem holds %d CRLs, want %d (16 partitions, the full CRL if needed (%v), the root CRL)", got, want, dAfter.Full.Needed)
	}
	t.Logf("full CRL needed: %v", dAfter.Full.Needed)

	// Only the two touched partitions got new numbers.
	for p := range 16 {
		if changed := after[p] != before[p]; changed != touched[p] {
			t.Errorf("partition %d: CRL number %s -> %s; want a new number only for partitions %v", p, before[p], after[p], touched)
		}
	}
}
