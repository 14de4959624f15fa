package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/auditlog"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// AuditLog is the audit log as web publishes it; *auditlog.Public is one.
type AuditLog interface {
	Key() string
	Checkpoint(ctx context.Context) (store.Checkpoint, error)
	Consistency(ctx context.Context, from, to int64) (tlog.TreeProof, error)
	AuditTree(ctx context.Context) (int64, tlog.Hash, error)
	AuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	ListCheckpoints(ctx context.Context, afterSize int64, limit int) ([]store.Checkpoint, error)
}

// auditRoutes registers the public audit routes on the HTTP listener.
func (s *Server) auditRoutes() {
	if s.deps.Audit == nil {
		return
	}
	getAndHead(s.http, api.AuditCheckpointPath, s.auditCheckpoint)
	getAndHead(s.http, api.AuditKeyPath, s.auditKey)
	getAndHead(s.http, api.AuditProofPath, s.auditProof)
}

// auditCheckpoint serves the latest checkpoint note, with its size and
// root as the ETag (a witness polling with If-None-Match gets 304).
func (s *Server) auditCheckpoint(c echo.Context) error {
	cp, err := s.deps.Audit.Checkpoint(c.Request().Context())
	if err != nil {
		return err
	}
	etag := fmt.Sprintf(`"%d-%x"`, cp.Size, cp.Root[:8])
	h := c.Response().Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	if c.Request().Header.Get("If-None-Match") == etag {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", cp.Note)
}

func (s *Server) auditKey(c echo.Context) error {
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(s.deps.Audit.Key()+"\n"))
}

// auditProof serves GET /v1/audit/proof?from=M&to=N.
func (s *Server) auditProof(c echo.Context) error {
	from, to, err := auditlog.ParseProofRange(c.QueryParam("from"), c.QueryParam("to"))
	if err != nil {
		return err
	}
	p, err := s.deps.Audit.Consistency(c.Request().Context(), from, to)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.AuditProof{From: from, To: to, Proof: hashStrings(p)})
}

func hashStrings(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

// auditTree serves GET /v1/admin/audit/tree.
func (s *Server) auditTree(c echo.Context) error {
	if s.deps.Audit == nil {
		return fault.New(fault.NotFound, "this CA has no audit tree", "")
	}
	size, root, err := s.deps.Audit.AuditTree(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.AuditTree{Size: size, Root: root.String()})
}

// auditHashes serves GET /v1/admin/audit/hashes?from=I&to=J: the stored
// tree hashes [I, J), at most api.MaxAuditHashes.
func (s *Server) auditHashes(c echo.Context) error {
	if s.deps.Audit == nil {
		return fault.New(fault.NotFound, "this CA has no audit tree", "")
	}
	from, err := strconv.ParseInt(c.QueryParam("from"), 10, 64)
	if err != nil || from < 0 {
		return fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("from=%q is not a stored hash index", c.QueryParam("from")), "pass 0 or more"), "from")
	}
	to, err := strconv.ParseInt(c.QueryParam("to"), 10, 64)
	if err != nil || to <= from || to-from > api.MaxAuditHashes {
		return fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("to=%q is not an index after from=%d", c.QueryParam("to"), from),
			fmt.Sprintf("ask for 1 to %d hashes", api.MaxAuditHashes)), "to")
	}
	idx := make([]int64, 0, to-from)
	for i := from; i < to; i++ {
		idx = append(idx, i)
	}
	hs, err := s.deps.Audit.AuditHashes(c.Request().Context(), idx)
	if err != nil {
		return notFound(err, fmt.Sprintf("the audit tree has no stored hash %d", to-1), "ask for fewer")
	}
	return c.JSON(http.StatusOK, api.AuditHashes{From: from, Hashes: hashStrings(hs)})
}

// auditCheckpoints serves GET /v1/admin/audit/checkpoints?after=SIZE&limit=N.
func (s *Server) auditCheckpoints(c echo.Context) error {
	if s.deps.Audit == nil {
		return fault.New(fault.NotFound, "this CA has no audit tree", "")
	}
	var after int64
	if a := c.QueryParam("after"); a != "" {
		var err error
		if after, err = strconv.ParseInt(a, 10, 64); err != nil || after < 0 {
			return fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("after=%q is not a tree size", a), "pass the size of the last checkpoint you have"), "after")
		}
	}
	p, err := page(c)
	if err != nil {
		return err
	}
	cps, err := s.deps.Audit.ListCheckpoints(c.Request().Context(), after, p.PageLimit())
	if err != nil {
		return err
	}
	out := api.AuditCheckpointPage{Checkpoints: make([]api.AuditCheckpoint, len(cps))}
	for i, cp := range cps {
		out.Checkpoints[i] = api.AuditCheckpoint{Size: cp.Size, Root: cp.Root.String(), Time: cp.Time, Note: string(cp.Note)}
	}
	return c.JSON(http.StatusOK, out)
}
