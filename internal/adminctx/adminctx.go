// Package adminctx carries the authenticated admin in a request's context,
// from the admin API's authentication (package web) to the services that
// write audit rows (enroll, revocation), so that every row names the admin.
package adminctx

import (
	"context"

	"github.com/fleetca/fleetca/store"
)

type key struct{}

// With returns ctx carrying a.
func With(ctx context.Context, a store.Admin) context.Context {
	return context.WithValue(ctx, key{}, a)
}

// From returns the admin ctx carries, if any.
func From(ctx context.Context) (store.Admin, bool) {
	a, ok := ctx.Value(key{}).(store.Admin)
	return a, ok
}

// Actor is the audit Actor of what ctx's admin does: "admin:<name>", or
// "admin" when ctx carries none (a command run on the CA's own machine,
// such as init).
func Actor(ctx context.Context) string {
	if a, ok := From(ctx); ok {
		return "admin:" + a.Name
	}
	return "admin"
}
