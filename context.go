package omi

import "context"

type dryRunKey struct{}

// WithDryRun marks ctx as a dry run: the operation checks permissions and
// parameters, then discards every change.
func WithDryRun(ctx context.Context) context.Context {
	return context.WithValue(ctx, dryRunKey{}, true)
}

// IsDryRun reports whether ctx is a dry run.
func IsDryRun(ctx context.Context) bool {
	v, _ := ctx.Value(dryRunKey{}).(bool)
	return v
}
