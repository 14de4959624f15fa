package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// child is a server the benchmark runs as its own process beside fleetca
// (step-ca, the bare server), its output in a log file.
type child struct {
	name    string
	pid     int
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has exited and been waited for
	err     error         // Wait's answer, once exited is closed
}

// startChild starts bin with args and env added to this program's, its
// output to logPath, killed if this program dies.
func startChild(ctx context.Context, name, logPath, bin string, env []string, args ...string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	benchutil.SetDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, pid: cmd.Process.Pid, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// stop kills the process and waits for it.
func (c *child) stop() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// alive reports an error, with the end of the log, once the process has
// exited.
func (c *child) alive() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s exited (%v)\n%s", c.name, c.err, benchutil.Tail(c.logPath, 20))
	default:
		return nil
	}
}
