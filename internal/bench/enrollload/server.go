package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// buildFleetca runs `go build -o out pkg` in the module root.
func buildFleetca(ctx context.Context, pkg, out string, stderr io.Writer) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return errors.New("not inside the fleetca module: run from its root, or pass -fleetca BINARY")
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Dir(mod)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build -o %s %s: %w", out, pkg, err)
	}
	return nil
}

// server is a running `fleetca serve`.
type server struct {
	cmd      *exec.Cmd
	pid      int
	httpsURL string
	logPath  string
	exited   chan struct{} // closed when the process has ended
	waitErr  error         // valid once exited is closed
	peakRSS  int64         // bytes, read at the end of the run
}

// startupTimeout bounds init and the wait for serve's "listening" line.
const startupTimeout = 60 * time.Second

// startServer runs `fleetca init` on a new data directory, then `fleetca
// serve` (with extraEnv added to its environment) with its stderr (JSON log lines, then a banner) going to logPath,
// and waits for the "listening" line to learn the HTTPS URL.
func startServer(ctx context.Context, bin, dir, logPath string, extraEnv []string, logf func(string, ...any)) (*server, error) {
	ictx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	out, err := exec.CommandContext(ictx, bin, "init", "--dir", dir, "--name", "Bench", "--no-password",
		"--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("fleetca init: %w\n%s", err, out)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(bin, "serve", "--dir", dir)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stderr = logFile // a file, not a pipe: no reader of ours spends CPU on it
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start fleetca serve: %w", err)
	}
	s := &server{cmd: cmd, pid: cmd.Process.Pid, logPath: logPath, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("fleetca serve exited before listening (%v):\n%s", s.waitErr, tail(logPath, 20))
		case <-ictx.Done():
			s.stop(logf)
			return nil, fmt.Errorf("fleetca serve did not log \"listening\" within %v:\n%s", startupTimeout, tail(logPath, 20))
		case <-tick.C:
		}
		if u := listeningURL(logPath); u != "" {
			s.httpsURL = u
			return s, nil
		}
	}
}

// listeningURL returns the "https" value of serve's "listening" log line in
// the file, or "".
func listeningURL(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return parseListening(b)
}

// parseListening finds the JSON log line {"msg":"listening","https":URL,...}
// among serve's stderr lines.
func parseListening(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		var rec struct {
			Msg   string `json:"msg"`
			HTTPS string `json:"https"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" && strings.HasPrefix(rec.HTTPS, "https://") {
			return rec.HTTPS
		}
	}
	return ""
}

// alive returns an error if the server has exited.
func (s *server) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("fleetca serve exited during the run (%v):\n%s", s.waitErr, tail(s.logPath, 20))
	default:
		return nil
	}
}

// stop asks the server to drain and stop (SIGTERM), and kills it if it has
// not stopped after 15 seconds.
func (s *server) stop(logf func(string, ...any)) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(terminateSignal)
	select {
	case <-s.exited:
		if s.waitErr != nil {
			logf("fleetca serve ended with %v; see %s", s.waitErr, s.logPath)
		}
	case <-time.After(15 * time.Second):
		logf("fleetca serve did not stop within 15s of SIGTERM; killing it")
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tokenMinter creates pattern tokens with `fleetca token create`, through
// the admin API of the running server.
type tokenMinter struct {
	bin, dir, url string

	mu   sync.Mutex
	cur  string
	left int
}

// Token parameters: b-* matches the CSRs' CNs; 100,000 uses is
// enroll.max_token_uses' default ceiling.
const (
	tokenPattern = "b-*"
	tokenUses    = 100_000
	tokenTTL     = "1h"
)

// take returns n tokens, one per enrollment, minting a new token whenever
// the current one's uses are all handed out. Requests that fail spend no
// use, so a token is never overspent.
func (m *tokenMinter) take(ctx context.Context, n int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, n)
	for i := range out {
		if m.left == 0 {
			t, err := m.mint(ctx)
			if err != nil {
				return nil, err
			}
			m.cur, m.left = t, tokenUses
		}
		out[i] = m.cur
		m.left--
	}
	return out, nil
}

func (m *tokenMinter) mint(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, m.bin, "token", "create", "--dir", m.dir,
		"--device-pattern", tokenPattern, "--uses", fmt.Sprint(tokenUses), "--ttl", tokenTTL)
	cmd.Env = append(os.Environ(), "FLEETCA_URL="+m.url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("fleetca token create: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	t := strings.TrimSpace(string(out))
	if t == "" || strings.ContainsAny(t, " \n") {
		return "", fmt.Errorf("fleetca token create printed %q, want one token", t)
	}
	return t, nil
}

// readRoots loads the CA's root certificate as the client's only trust anchor.
func readRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
