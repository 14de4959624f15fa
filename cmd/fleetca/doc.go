// Command fleetca is a certificate authority and enrollment service for
// device fleets, and the tools around it: one binary, with subcommands.
// See README.md for the commands and a walkthrough.
//
// # Basics
//
// This package is the composition root. It owns the command line (one
// file per subcommand: init.go, serve.go, token.go, enroll.go, renew.go,
// devices.go, revoke.go, crl.go and crlsync.go, cert.go, proxy.go,
// export.go, manufacturer.go, admin.go, db.go, version.go), the flags, the configuration file (config.go:
// DIR/fleetca.yaml, read strictly, so an unknown key stops start-up; its
// store section, bbolt or PostgreSQL, in storeconf.go), the
// environment (FLEETCA_DIR, FLEETCA_URL, FLEETCA_ROOT,
// FLEETCA_ADMIN_TOKEN, FLEETCA_PASSWORD), signals and exit codes. It is
// the only place that builds the clock, the logger, the metrics registry
// and the store, and it wires them into ca, enroll, revocation and web.
// Admin commands talk to a running server through package client
// (client.go resolves its URL, root and admin token: flag, then
// environment, then --dir). Whose token it is decides what the CA lets
// the command do (its admin's role); the CA refuses, the CLI does not
// pre-judge.
//
// # Errors and exit codes
//
// A command that fails prints one line on stderr and exits 1:
// "fleetca: <detail> (<hint>)" for a *fault.Error, whether it was raised
// here, in a library, or by the CA and sent back as problem JSON. A
// domain's hint names a request field or configuration key; when the
// fault says which (its Field or Key) and the command that ran has a flag
// for it, or an environment variable stands in for it, errorLine ends the
// hint with "; use --ttl" or "; use --password-file or FLEETCA_PASSWORD".
// It adds; it never rewrites the domain's words.
//
// A command-line mistake exits 2. It is classified by where it is made,
// not by its text: usagef and usage mark this package's own checks,
// cobra's flag errors come through SetFlagErrorFunc, its positional-
// argument checks are wrapped where they are set (usageArgs), and an
// error that stops at the root command, which runs nothing of ours, is
// cobra's unknown command.
//
// # Invariants
//
//   - Only this package reads flags or the environment (through env.getenv,
//     so tests pass their own), and only here is the wall clock read.
//   - Precedence is flag, then environment, then fleetca.yaml, then the
//     default.
//   - A command that sends a token or a key refuses a URL that is not
//     HTTPS (package client checks before it connects).
//   - Secrets are written mode 0600 and never printed but once, where the
//     user must see them (the admin token's file, a new enrollment token).
//   - A database password is never in fleetca.yaml or on a command line:
//     a DSN that carries one is refused; it comes from store.password_file
//     (--store-password-file, --to-password-file) or pgx's PGPASSWORD and
//     PGPASSFILE, and no output or log line shows it.
//
// # What it must not do
//
// Hold logic a library could own: policy is enroll's and revocation's,
// signing ca's, HTTP handling web's, the CA's API client's, the renewal
// agent's schedule and file swap agent's. Rules about
// device IDs and trust domains are package api's; this package parses
// its inputs with them at the edge (trust_domain when fleetca.yaml is
// loaded, export's --trust-domain).
package main
