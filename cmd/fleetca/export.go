package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/client"
	"github.com/fleetca/fleetca/export"
	"github.com/fleetca/fleetca/internal/atomicfile"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/verify"
)

// exportOptions are the inputs of `fleetca export`.
type exportOptions struct {
	kind                               export.Kind
	out, caURL, fingerprint, root, dir string
	trustDomain, listen, upstream      string
	serverCert, serverKey              string
	force                              bool
}

func newExportCmd(e env) *cobra.Command {
	var o exportOptions
	kinds := make([]string, len(export.Kinds))
	for i, k := range export.Kinds {
		kinds[i] = string(k)
	}
	cmd := &cobra.Command{
		Use:   "export nginx|haproxy|mosquitto|envoy --out DIR [--ca URL] (--fingerprint SHA256 | --root FILE | --dir DATADIR)",
		Short: "Write the trust bundle, the CRL file and a configuration for nginx, HAProxy, Mosquitto or Envoy",
		Long: `export writes what a verifier needs to admit only the fleet's devices, into
DIR (created if needed; the files name each other by absolute path):

  ca.pem      the trust bundle: the intermediate, then the root
  crl.pem     the device CRL (or every partition's) and the root's CRL, PEM, as
              'fleetca crl sync' keeps it
  README.txt  the files, and the next steps (also printed)

and for each verifier a configuration to include, with comments:

  nginx      nginx.conf (revocation by CRL) or nginx-ocsp.conf (by OCSP, nginx
             1.19 or newer): a map and a server for http { }; the service gets
             X-Device-ID (the certificate's CN) and X-Client-Cert-Serial
  haproxy    haproxy.cfg: a frontend and a backend; X-Device-ID and
             X-Client-Cert-Serial
  mosquitto  mosquitto.conf: a TLS listener; the device ID is the MQTT username
  envoy      envoy.yaml with envoy-sds-server.yaml and envoy-sds-validation.yaml:
             file-based SDS, so a new crl.pem needs no restart; a SAN match on
             spiffe://<trust domain>/device/; x-forwarded-client-cert

The CA is trusted only through its root: the one whose SHA-256 is
--fingerprint (what 'fleetca serve' prints), the --root file, or the data
directory's root.pem (--dir, which also gives the defaults of --ca and
--trust-domain). export fetches /roots.pem, /chain.pem and the CRLs from the
CA's HTTP listener (--ca) and checks every one against that root.

The server certificate (--server-cert, --server-key) is the verifier's own,
from 'fleetca cert server'; README.txt says how to issue it. HAProxy reads
the key from the certificate file or from <certificate>.key: given another
key file, export writes DIR/server.pem with both (mode 0600).

export refuses to overwrite its files unless --force.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("export needs the verifier: fleetca export %s --out DIR ...", strings.Join(kinds, "|"))
			}
			if !slices.Contains(kinds, args[0]) {
				return usagef("export does not know the verifier %q: use one of %s", args[0], strings.Join(kinds, ", "))
			}
			return nil
		},
		ValidArgs: kinds,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.kind = export.Kind(args[0])
			return runExport(cmd.Context(), e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "directory to write the files into")
	f.StringVar(&o.caURL, "ca", "", "the CA's HTTP listener, e.g. http://ca.example.com:8080 (default from --dir: server.public_url)")
	f.StringVar(&o.fingerprint, "fingerprint", "", "SHA-256 fingerprint of the CA's root (hex)")
	f.StringVar(&o.root, "root", "", "root certificate file to trust instead of --fingerprint")
	f.StringVar(&o.dir, "dir", "", "the CA's data directory: its root.pem, URL and trust domain (default $FLEETCA_DIR, or ./fleetca-data, without --fingerprint and --root)")
	f.StringVar(&o.trustDomain, "trust-domain", "", "the CA's SPIFFE trust domain, for Envoy's SAN match (default from --dir)")
	f.StringVar(&o.listen, "listen", "", "address the verifier listens on, [IP]:port (default :9443; :8883 for mosquitto)")
	f.StringVar(&o.upstream, "upstream", "", "the service behind the verifier, http(s)://HOST:PORT (default "+export.DefaultUpstream+"; not for mosquitto)")
	f.StringVar(&o.serverCert, "server-cert", "", "the verifier's TLS certificate and chain (default DIR/server.crt; DIR/server.pem for haproxy)")
	f.StringVar(&o.serverKey, "server-key", "", "the verifier's TLS key (default DIR/server.key; DIR/server.pem.key for haproxy)")
	f.BoolVar(&o.force, "force", false, "overwrite the files export writes")
	return cmd
}

// exportHint is the hint for a missing or unusable root pin.
const exportHint = "pass --fingerprint SHA256 (fleetca serve prints it), --root FILE, or --dir with the CA's data directory"

func runExport(ctx context.Context, e env, o exportOptions) error {
	switch {
	case o.out == "":
		return usagef("export needs --out DIR, the directory to write the files into")
	case o.fingerprint != "" && o.root != "":
		return usagef("give one of --fingerprint and --root, not both")
	case (o.serverCert == "") != (o.serverKey == ""):
		return usagef("give both --server-cert and --server-key, or neither")
	}
	var trustDomain api.TrustDomain
	if o.trustDomain != "" {
		td, err := api.ParseTrustDomain(o.trustDomain)
		if err != nil {
			return usage(fault.WithField(err, "trust_domain"))
		}
		trustDomain = td
	}
	var pinned [][]byte // SHA-256 of the trusted root(s)
	if o.fingerprint != "" {
		fp, err := parseFingerprint(o.fingerprint)
		if err != nil {
			return err
		}
		pinned = append(pinned, fp)
	}
	rootFile := o.root
	if o.dir != "" || (o.fingerprint == "" && o.root == "") {
		dir, err := dataDir(o.dir, e.getenv)
		if err != nil {
			return err
		}
		cfg, err := loadConfig(dir)
		if err != nil {
			if o.dir == "" && e.getenv("FLEETCA_DIR") == "" {
				return usagef("export needs the CA's root to trust (%s)", exportHint)
			}
			return err
		}
		if o.caURL == "" {
			o.caURL = cfg.Server.PublicURL
		}
		if trustDomain == "" {
			trustDomain = cfg.TrustDomain // loadConfig checked it
		}
		if rootFile == "" && o.fingerprint == "" {
			rootFile = filepath.Join(dir, cfg.CA.RootCert)
		}
	}
	if o.caURL == "" {
		return usagef("export needs --ca URL, the CA's HTTP listener (e.g. http://ca.example.com:8080)")
	}
	if rootFile != "" {
		roots, err := client.ReadRoots(rootFile)
		if err != nil {
			return err
		}
		for _, r := range roots {
			sum := sha256.Sum256(r.Raw)
			pinned = append(pinned, sum[:])
		}
	}

	out, err := filepath.Abs(o.out)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	p := export.Params{Kind: o.kind, Dir: out, CAURL: o.caURL, TrustDomain: trustDomain, Listen: o.listen, Upstream: o.upstream}
	// combined, if set, is the server.pem export writes for HAProxy from
	// a certificate and a key it cannot read from where they are.
	var combined string
	if o.serverCert != "" {
		if p.ServerCert, err = filepath.Abs(o.serverCert); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if p.ServerKey, err = filepath.Abs(o.serverKey); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if o.kind == export.HAProxy && p.ServerKey != p.ServerCert && p.ServerKey != p.ServerCert+".key" {
			combined = filepath.Join(out, "server.pem")
		}
	}
	files, steps, err := renderExport(p, combined)
	if err != nil {
		return err
	}
	names := []string{export.CAFile, export.CRLFile}
	for _, f := range files {
		names = append(names, f.Name)
	}
	if combined != "" {
		names = append(names, filepath.Base(combined))
	}
	if !o.force {
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(out, n)); err == nil {
				return fault.New(fault.Conflict, filepath.Join(out, n)+" exists",
					"pass --force to overwrite the files export writes, or choose another --out")
			}
		}
	}

	hc := &http.Client{Timeout: 30 * time.Second}
	base := strings.TrimRight(o.caURL, "/")
	root, inters, err := client.FetchTrustBundle(ctx, hc, base, pinned)
	if err != nil {
		return err
	}
	var serverPEM []byte
	if combined != "" {
		if serverPEM, err = combineServerPEM(o.serverCert, o.serverKey); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}

	// The CRL file first: it is what can fail (an unreachable CA, an expired
	// root CRL), and then nothing else is written.
	crlPath := filepath.Join(out, export.CRLFile)
	syncer, err := verify.NewSyncer(verify.SyncConfig{URL: base, Issuers: append(slices.Clone(inters), root), Out: crlPath},
		verify.SyncDeps{Client: hc, Now: time.Now,
			Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	res, err := syncer.Sync(ctx)
	if err != nil {
		return err
	}

	var bundle bytes.Buffer
	for _, c := range append(slices.Clone(inters), root) {
		bundle.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	if err := atomicfile.Write(filepath.Join(out, export.CAFile), bundle.Bytes(), 0o644); err != nil {
		return err
	}
	if combined != "" {
		if err := atomicfile.Write(combined, serverPEM, 0o600); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := atomicfile.Write(filepath.Join(out, f.Name), f.Data, f.Mode); err != nil {
			return err
		}
	}

	rootSum := sha256.Sum256(root.Raw)
	fmt.Fprintf(e.stdout, "wrote %s: %d intermediate(s), then the root %s (SHA-256 %s)\n",
		filepath.Join(out, export.CAFile), len(inters), root.Subject.CommonName, hex.EncodeToString(rootSum[:]))
	var crls []string
	var parts int
	var partsUntil time.Time
	for _, st := range res.CRLs {
		if res.Partitions > 1 && strings.HasPrefix(st.Name, "partition ") {
			// Sixteen lines of numbers say nothing: the count and the
			// first expiry do.
			if parts++; partsUntil.IsZero() || st.NextUpdate.Before(partsUntil) {
				partsUntil = st.NextUpdate
			}
			continue
		}
		crls = append(crls, fmt.Sprintf("%s number %s, valid until %s", st.Name, st.Number, st.NextUpdate.UTC().Format(time.RFC3339)))
	}
	if parts > 0 {
		crls = append([]string{fmt.Sprintf("%d partition CRLs, valid until %s at least", parts, partsUntil.UTC().Format(time.RFC3339))}, crls...)
	}
	fmt.Fprintf(e.stdout, "wrote %s: %s\n", crlPath, strings.Join(crls, "; "))
	if combined != "" {
		fmt.Fprintf(e.stdout, "wrote %s: %s and %s, for HAProxy (rebuild it when you renew the certificate)\n", combined, o.serverCert, o.serverKey)
	}
	for _, f := range files {
		fmt.Fprintf(e.stdout, "wrote %s\n", filepath.Join(out, f.Name))
	}
	fmt.Fprintf(e.stdout, "\n%s", steps)
	return nil
}

// renderExport renders p's files and steps, with the server certificate
// and key in combined if it is set. A parameter export cannot use is a
// command-line mistake.
func renderExport(p export.Params, combined string) ([]export.File, string, error) {
	if combined != "" {
		p.ServerCert, p.ServerKey = combined, combined
	}
	files, err := export.Render(p)
	if err != nil {
		return nil, "", exportUsage(err)
	}
	steps, err := export.Steps(p)
	if err != nil {
		return nil, "", exportUsage(err)
	}
	return files, steps, nil
}

func exportUsage(err error) error {
	if _, ok := errors.AsType[*fault.Error](err); ok {
		return usage(err)
	}
	return err
}

// combineServerPEM reads a certificate (with chain) and its key and returns
// them as one PEM, the key last, after checking that they belong together.
func combineServerPEM(certFile, keyFile string) ([]byte, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fault.Wrap(err, fault.NotFound, "cannot read the server certificate "+certFile, serverCertHint(err))
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fault.Wrap(err, fault.NotFound, "cannot read the server key "+keyFile, serverCertHint(err))
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, fault.Wrap(err, fault.Malformed, fmt.Sprintf("%s and %s are not a certificate and its key", certFile, keyFile),
			"pass the --cert and --key files 'fleetca cert server' wrote")
	}
	return append(append(bytes.TrimRight(certPEM, "\n"), '\n'), keyPEM...), nil
}

func serverCertHint(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "issue one with 'fleetca cert server --dns HOST --key KEY --cert CERT', or leave out --server-cert and --server-key"
	}
	return "check the file's permissions"
}
