package benchutil

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// productModule is the module path of the product the benchmarks measure.
const productModule = "github.com/fleetca/fleetca"

// ProductRoot returns the directory of the fleetca module that this
// benchmark module builds against: the checkout that bench/go.mod's
// replace directive names. It asks the go command, so it works when the
// current directory is inside the bench module.
func ProductRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", productModule).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return "", fmt.Errorf("go list -m %s: %w: %s", productModule, err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("go list -m %s: %w", productModule, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("the fleetca module has no directory: run from bench/ of a fleetca checkout, or pass -fleetca BINARY")
	}
	return dir, nil
}

// Build runs `go build -o out pkg` in the product's module root
// (ProductRoot), with the product's own go.mod, so that the binary
// measured is the one `make build` makes.
func Build(ctx context.Context, pkg, out string, stderr io.Writer) error {
	root, err := ProductRoot(ctx)
	if err != nil {
		return fmt.Errorf("find the fleetca module (run from bench/, or pass -fleetca BINARY): %w", err)
	}
	// The build runs in another directory than ours: a relative out
	// (from a relative -tmp) must still name the file we will run.
	if out, err = filepath.Abs(out); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build -o %s %s (in %s): %w", out, pkg, root, err)
	}
	return nil
}

// Server is a running `fleetca serve`.
type Server struct {
	PID      int
	Dir      string // the data directory
	HTTPSURL string // https://127.0.0.1:port
	HTTPURL  string // http://127.0.0.1:port
	// MetricsURL is http://127.0.0.1:port/metrics, the metrics listener's
	// (Init asks for one on a kernel-chosen port); "" if it has none.
	MetricsURL string
	LogPath    string // its stderr: JSON log lines, then a banner

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has ended
	waitErr error         // valid once exited is closed
}

// StartupTimeout bounds init, and the wait for serve's "listening" line.
const StartupTimeout = 60 * time.Second

// StartServer is Init then Serve: a new CA in dir, served.
func StartServer(ctx context.Context, bin, dir, logPath string, extraEnv []string) (*Server, error) {
	if err := Init(ctx, bin, dir); err != nil {
		return nil, err
	}
	return Serve(ctx, bin, dir, logPath, extraEnv)
}

// Init runs `fleetca init --no-password` on a new data directory dir, with
// both listeners on 127.0.0.1 and a port the kernel picks, and extra init
// flags if any (--store DSN). A benchmark that needs other settings
// changes fleetca.yaml (SetConfig) before Serve.
func Init(ctx context.Context, bin, dir string, extra ...string) error {
	ictx, cancel := context.WithTimeout(ctx, StartupTimeout)
	defer cancel()
	args := append([]string{"init", "--dir", dir, "--name", "Bench", "--no-password",
		"--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, extra...)
	out, err := exec.CommandContext(ictx, bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fleetca init: %w\n%s", err, out)
	}
	return nil
}

// Serve runs `fleetca serve` on the data directory dir that Init made
// (with extraEnv added to its environment), with its stderr going to
// logPath, and waits for the "listening" log line to learn the URLs.
func Serve(ctx context.Context, bin, dir, logPath string, extraEnv []string) (*Server, error) {
	ictx, cancel := context.WithTimeout(ctx, StartupTimeout)
	defer cancel()
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(bin, "serve", "--dir", dir)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stderr = logFile // a file, not a pipe: no reader of ours spends CPU on it
	SetDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start fleetca serve: %w", err)
	}
	s := &Server{cmd: cmd, PID: cmd.Process.Pid, Dir: dir, LogPath: logPath, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("fleetca serve exited before listening (%v):\n%s", s.waitErr, Tail(logPath, 20))
		case <-ictx.Done():
			s.Stop()
			return nil, fmt.Errorf("fleetca serve did not log \"listening\" within %v:\n%s", StartupTimeout, Tail(logPath, 20))
		case <-tick.C:
		}
		b, err := os.ReadFile(logPath)
		if err != nil {
			continue
		}
		if https, http, metrics := ParseListening(b); https != "" {
			s.HTTPSURL, s.HTTPURL, s.MetricsURL = https, http, metrics
			return s, nil
		}
	}
}

// ParseListening finds the JSON log line
// {"msg":"listening","https":URL,"http":URL,...} among serve's stderr
// lines and returns its URLs (metrics: "" if serve has no metrics
// listener), or "" for each.
func ParseListening(b []byte) (httpsURL, httpURL, metricsURL string) {
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
			HTTP  string `json:"http"`
			// Metrics is the metrics listener's /metrics URL, if any.
			Metrics string `json:"metrics"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" &&
			strings.HasPrefix(rec.HTTPS, "https://") && strings.HasPrefix(rec.HTTP, "http://") {
			return rec.HTTPS, rec.HTTP, rec.Metrics
		}
	}
	return "", "", ""
}

// Alive returns an error if the server has exited.
func (s *Server) Alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("fleetca serve exited during the run (%v):\n%s", s.waitErr, Tail(s.LogPath, 20))
	default:
		return nil
	}
}

// Stop asks the server to drain and stop (SIGTERM), and kills it if it has
// not stopped after 15 seconds. It returns serve's exit error, if any.
func (s *Server) Stop() error {
	select {
	case <-s.exited:
		return s.waitErr
	default:
	}
	_ = s.cmd.Process.Signal(TerminateSignal)
	select {
	case <-s.exited:
		return s.waitErr
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("fleetca serve did not stop within 15s of SIGTERM; killed it")
	}
}

// Tail returns the last n lines of a file, for error messages.
func Tail(path string, n int) string {
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

// StartLogged starts a load tool's server in its temporary directory
// tmp: Init on tmp/ca, configure (if not nil) to change its fleetca.yaml
// (SetConfig), then Serve with env added to its environment and its log
// in tmp/serve.log; it logs where the server runs. stop stops the server,
// and logs why if it did not stop cleanly.
func StartLogged(ctx context.Context, bin, tmp string, env []string, configure func(dir string) error, logf func(string, ...any)) (srv *Server, stop func(), err error) {
	dir := filepath.Join(tmp, "ca")
	if err := Init(ctx, bin, dir); err != nil {
		return nil, nil, err
	}
	if configure != nil {
		if err := configure(dir); err != nil {
			return nil, nil, err
		}
	}
	if srv, err = Serve(ctx, bin, dir, filepath.Join(tmp, "serve.log"), env); err != nil {
		return nil, nil, err
	}
	stop = func() {
		if err := srv.Stop(); err != nil {
			logf("fleetca serve: %v; see %s", err, srv.LogPath)
		}
	}
	logf("fleetca serve is pid %d at %s; data directory %s on %s", srv.PID, srv.HTTPSURL, dir, FSType(dir))
	return srv, stop, nil
}
