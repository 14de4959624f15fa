// Package testenv holds what fleetca's tests share about their
// environment: the external programs a test drives, and loopback
// listeners.
//
// # Basics
//
// Need(t, "openssl") returns the path of a program an integration test runs
// (openssl, curl, nginx, haproxy, mosquitto, ...), looking in /usr/sbin
// and /sbin too, where Debian puts servers. Listen(t) returns a TCP
// listener on 127.0.0.1 on a port the kernel chose, closed when the test
// ends. NeedStep(t) returns the step CLI (smallstep/cli StepCLIVersion, a
// Go program neither Debian nor go.mod carries): $FLEETCA_STEP_BIN, else
// step in ToolsDir(), where .ci/run installs it. InCI reports whether the tests run in CI (CI=true).
//
// # Invariants
//
//   - In CI a missing program fails the test, never skips it; elsewhere
//     the test is skipped with the command that installs the program.
//   - A listener from Listen is handed to the server under test as it is:
//     no test closes a listener to reuse its port, which another process
//     could take in between.
//
// # What it must not do
//
// It is imported only from _test.go files, and it imports nothing of
// fleetca's. It starts no program itself, and it neither sleeps nor
// waits: synchronisation is the test's, with an injected clock or
// testing/synctest.
package testenv
