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

type clientAddrKey struct{}

// WithClientAddr records the network address a request came from (the IP
// without the port), so that the service can limit password guessing per
// client address.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

// ClientAddr returns the address recorded by WithClientAddr, or "".
func ClientAddr(ctx context.Context) string {
	v, _ := ctx.Value(clientAddrKey{}).(string)
	return v
}
