// Package web is fleetca's HTTP layer, built on echo v4. It decodes
// requests, calls enroll and ca, and encodes the answers; it holds no
// business rules.
//
// # Basics
//
// A Server has two handlers. The HTTPS handler carries enrollment
// (POST /v1/enroll) and the admin API under /v1/admin/ (bearer admin token).
// The admin API also issues TLS server certificates for verifiers such as
// fleetca proxy (POST /v1/admin/certificates/server). The HTTPS handler
// serves the revocation feed (GET /v1/revocations, a long-poll that Drain
// ends when shutdown begins). The plain-HTTP handler carries what a
// verifier must fetch before it can trust anything: /roots.pem, /chain.pem,
// /intermediate.crt (the caIssuers target of device certificates), the
// CRLs, OCSP and /metrics. Both serve /healthz.
//
// Every error leaves through one function, problem.go's handleError, set as
// echo's HTTPErrorHandler: a *fault.Error becomes RFC 9457 problem JSON with
// a hint member; echo's own errors (404, 405, 413) and the store's
// ErrNotFound/ErrConflict are mapped too; anything else is a 500 carrying
// only a request_id, its text logged, never sent.
//
// # Caveats
//
// Request bodies are read through a limit (Config.MaxBodyBytes) and never
// buffered past it. Tokens and keys are never logged: the request log
// records route patterns, not raw URIs.
package web
