package benchutil

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetca/fleetca/client"
)

// Roots reads the CA's root certificates from the server's data directory
// (root.pem, as `fleetca init` writes it), with client.ReadRoots.
func (s *Server) Roots() ([]*x509.Certificate, error) {
	return client.ReadRoots(filepath.Join(s.Dir, "root.pem"))
}

// AdminToken reads the admin token from the server's data directory
// (admin-token), for a load loop that sends admin requests itself.
func (s *Server) AdminToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, "admin-token"))
	if err != nil {
		return "", fmt.Errorf("read the admin token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Client returns a client of the server's HTTPS API (package client) that
// trusts its roots (Roots) and carries its admin token (AdminToken): what
// the benchmarks use for every call that sets up or triggers a
// measurement, as opposed to the load they time.
func (s *Server) Client() (*client.Client, error) {
	roots, err := s.Roots()
	if err != nil {
		return nil, err
	}
	tok, err := s.AdminToken()
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{URL: s.HTTPSURL, Roots: roots, AdminToken: tok})
}
