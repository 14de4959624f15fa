package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// child is a process the benchmark started (fleetca proxy, the upstream,
// nginx's master), with its stdout and stderr going to a file.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has ended
	waitErr error         // valid once exited is closed
}

// startChild runs bin with args and env added to this process's
// environment, its output appended to logPath. The kernel kills it if this
// process dies first.
func startChild(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile // a file, not a pipe: no reader of ours spends CPU on it
	benchutil.SetDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// alive returns an error if the process has exited.
func (c *child) alive() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s exited during the run (%v):\n%s", c.name, c.waitErr, benchutil.Tail(c.logPath, 20))
	default:
		return nil
	}
}

// signal sends sig to the process, unless it has exited.
func (c *child) signal(sig os.Signal) error {
	if err := c.alive(); err != nil {
		return err
	}
	return c.cmd.Process.Signal(sig)
}

// stop sends SIGTERM and kills the process if it has not ended after
// grace. A process killed by the SIGTERM is not an error.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.exited:
		return c.exitError()
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return c.exitError()
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s did not stop within %v of SIGTERM; killed it", c.name, grace)
	}
}

func (c *child) exitError() error {
	if ee, ok := errors.AsType[*exec.ExitError](c.waitErr); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return c.waitErr
}

// waitForLog polls the child's log until parse finds what it waits for
// in it, and returns that; it fails if the child exits first or timeout
// passes.
func (c *child) waitForLog(ctx context.Context, timeout time.Duration, what string, parse func([]byte) string) (string, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		if b, err := os.ReadFile(c.logPath); err == nil {
			if v := parse(b); v != "" {
				return v, nil
			}
		}
		select {
		case <-c.exited:
			return "", fmt.Errorf("%s exited before %s (%v):\n%s", c.name, what, c.waitErr, benchutil.Tail(c.logPath, 20))
		case <-deadline:
			return "", fmt.Errorf("%s did not log %s within %v:\n%s", c.name, what, timeout, benchutil.Tail(c.logPath, 20))
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
	}
}
