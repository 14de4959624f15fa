// Package export renders the configuration that puts a third-party mTLS
// verifier (nginx, HAProxy, Mosquitto, Envoy) in front of a service, for
// `fleetca export`.
//
// # Basics
//
// Render turns Params into Files: a configuration snippet with comments a
// person can read and paste, and a README.txt with the next steps, among
// them the `fleetca crl sync` command line that keeps the CRL fresh for
// that verifier (Steps returns those steps alone). The templates are
// embedded (templates/*.tmpl).
//
// Each configuration requires a client certificate that chains to the
// fleet's root, checks revocation, and passes the device's identity on:
//
//   - nginx: ssl_verify_client on, ssl_verify_depth 2, ssl_crl with a CRL
//     for every CA in the chain (nginx checks them all), or ssl_ocsp
//     against fleetca's responder (nginx >= 1.19); X-Device-ID from the
//     CN of $ssl_client_s_dn and X-Client-Cert-Serial.
//   - HAProxy: verify required with ca-file and crl-file; X-Device-ID from
//     ssl_c_s_dn(CN). A new CRL is loaded by a reload: HAProxy's runtime
//     API (set ssl crl-file) takes it only if it fits in tune.bufsize.
//   - Mosquitto: require_certificate, crlfile, use_identity_as_username
//     (the CN becomes the MQTT username); SIGHUP rereads the files.
//   - Envoy: a bootstrap whose DownstreamTlsContext takes its certificate
//     and validation context (trust bundle, CRL with
//     only_verify_leaf_cert_crl, a URI SAN matcher on the fleet's SPIFFE
//     prefix) from file-based SDS, so that a renamed crl.pem is reloaded
//     without a restart; x-forwarded-client-cert carries the identity.
//     Envoy cannot check client certificates with OCSP.
//
// # Invariants
//
//   - Every path a configuration names is absolute, and free of the
//     characters the four configuration languages would quote differently.
//   - Envoy admits exactly the fleet's devices: its SAN match is
//     api.DeviceSPIFFEIDPrefix of Params.TrustDomain, the form ca signs,
//     so the trust-domain rule and the SPIFFE ID are api's, written once.
//   - A parameter Render cannot use is a Malformed *fault.Error that names
//     it; its hint names the parameter, never the CLI's flag, and its Field
//     ("trust_domain", "listen", "upstream") lets the CLI name the flag.
//
// # What it must not do
//
// This package reads and writes no files and talks to no network: the
// trust bundle (ca.pem) and the CRL file (crl.pem) are fetched and written
// by cmd/fleetca, which also writes the files Render returns. It imports
// nothing of ours but api and internal/fault.
package export
