package omi

import "context"

// Leases decides which node of a region runs a piece of background work
// when several omi processes share one store: a task's export or import,
// the reconciler's transitions, garbage collection. A lease is held by a
// node until it releases it or dies; then another node may take it and
// redo the work, which is therefore written to be redone safely.
//
// A single process needs none: the service treats a nil Leases as holding
// every lease.
type Leases interface {
	// Acquire takes lease name for this node, or confirms it already
	// holds it; it returns false when another live node holds it.
	Acquire(ctx context.Context, name string) (bool, error)
	// Release gives the lease up; releasing a lease not held is not an
	// error.
	Release(ctx context.Context, name string) error
	// Node names this node, as recorded in the tasks it runs.
	Node() string
}
