#!/usr/bin/env bash
# gen_csr_openssl.sh writes the CSR fixtures that Go cannot make: a DSA key and
# an ECDSA key on secp256k1 (Go's crypto/x509.CreateCertificateRequest signs
# only with ECDSA P-224/P-256/P-384/P-521, RSA and Ed25519), and a
# challengePassword attribute (Go encodes attributes only as sets of
# AttributeTypeAndValue, not as the DirectoryString PKCS #9 gives it);
# gen_csr.go writes the rest.
#
# Rerun from anywhere (it writes next to itself), with OpenSSL 3 on PATH:
#
#	./testdata/gen_csr_openssl.sh        # from the repo root
#	cd testdata && ./gen_csr_openssl.sh
#
# Keys and parameters are made in a temporary directory that is deleted on
# exit: testdata keeps no private keys. Each run makes new keys, so every
# byte of the fixtures changes; only what they are stays the same.
set -euo pipefail

out="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# csr-dsa2048.pem: DSA 2048 (SHA-256 signature), CN=dev-1. DSA is refused by
# name (fleetca takes ECDSA P-256/P-384, RSA 2048-8192 and Ed25519 only).
openssl genpkey -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 \
	-out "$tmp/dsa-params.pem" 2>/dev/null
openssl req -new -newkey "dsa:$tmp/dsa-params.pem" -keyout "$tmp/dsa.key" -nodes \
	-sha256 -subj /CN=dev-1 -outform PEM -out "$out/csr-dsa2048.pem"

# csr-secp256k1.pem: ECDSA on secp256k1 (SHA-256 signature), CN=dev-1. Refused
# by name: only P-256 and P-384 are accepted. Go's x509.ParseCertificateRequest
# itself fails on this curve ("x509: unsupported elliptic curve").
openssl genpkey -genparam -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1 \
	-pkeyopt ec_param_enc:named_curve -out "$tmp/k1-params.pem"
openssl req -new -newkey "ec:$tmp/k1-params.pem" -keyout "$tmp/k1.key" -nodes \
	-sha256 -subj /CN=dev-1 -outform PEM -out "$out/csr-secp256k1.pem"

# csr-challenge-password.pem: P-256, CN=dev-1, with a PKCS #9
# challengePassword attribute as EST and SCEP clients send it. Accepted: the
# attribute asks nothing of the certificate.
printf '%s\n' '[req]' 'prompt = no' 'distinguished_name = dn' 'attributes = attrs' \
	'[dn]' 'CN = dev-1' '[attrs]' 'challengePassword = not-a-secret' >"$tmp/challenge.cnf"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$tmp/challenge.key" -nodes \
	-sha256 -config "$tmp/challenge.cnf" -outform PEM -out "$out/csr-challenge-password.pem"

for f in csr-dsa2048.pem csr-secp256k1.pem csr-challenge-password.pem; do
	openssl req -in "$out/$f" -noout -verify 2>&1 | sed "s|^|$f: |"
done
