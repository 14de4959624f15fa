// Package archtest holds no code: its test checks the import rules of
// docs/ARCHITECTURE.md ("Packages") against the import graph the linker
// sees (`go list -deps`), so that a verifier, a device's client or the
// wire types never pull in the CA's internals (ca, store, enroll,
// revocation, the KMS code) by accident.
//
// # Invariants
//
// Each rule names a package and every package of ours it may depend on,
// directly or not; anything else of ours in its dependencies fails the
// test, and so does any go.step.sm/crypto/kms package (but in web/ui, the
// console, which is of the CA's side). A rule that
// changes changes in docs/ARCHITECTURE.md too.
package archtest
