// Package service implements the behaviour of the OUTSCALE API operations
// that omi serves: accounts and access keys, region facts, volumes,
// snapshots, images (OMIs) and tags.
//
// Each operation is a method with the shape
//
//	func (s *Service) Op(ctx context.Context, c *omi.Caller, in *OpRequest) (*OpResponse, error)
//
// whose request and response types carry the API's JSON field names, so the
// transport layer (package oapi) only decodes, dispatches and encodes. Errors
// are *omi.Error values with the OUTSCALE code. Writes run in one store
// transaction; in a dry run that transaction is rolled back, so a dry run
// checks everything a real call would and changes nothing.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/authguard"
)

// Config holds the facts a Service needs about the region it serves.
type Config struct {
	// Region is the region name, e.g. eu-west-2.
	Region string
	// Endpoint is the API host name advertised by ReadRegions.
	Endpoint string
	// RefusePublicWithFindings refuses to make an OMI public unless its
	// hygiene inspection found it clean.
	RefusePublicWithFindings bool
	// Marketplace lists the product types sellers publish OMIs with.
	Marketplace []MarketplaceProduct
	// LoginPolicy limits password guessing (nil: authguard.DefaultPolicy).
	LoginPolicy *authguard.Policy
	// Regions are the deployment's regions for ReadRegions (nil: only
	// Region, at Endpoint). Region is added when the list lacks it.
	Regions []Region
	// Subregions are the letters of Region's subregions (nil: a, b, c).
	Subregions []string
}

// MarketplaceProduct is a product type of a marketplace seller: only the
// seller may put its code on an OMI (a copy keeps it, as licences follow
// the OMI).
type MarketplaceProduct struct {
	ProductTypeId   string
	Description     string
	Vendor          string
	SellerAccountId string
}

// Service implements the API operations over a metadata store.
type Service struct {
	store omi.Store
	// ids reads records by id without a transaction, when the store can
	// (see readPage).
	ids omi.IDReader
	// decoded keeps decoded documents of records read by id (decoded.go).
	decoded decodedCache
	keys    *keyCache
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	region  regionFacts
	data    DataPlane
	xfer    Transfers
	// driver runs the VMs (nil: SimDriver); see vmdriver.go.
	driver VmDriver
	// fwdMu serialises applyForwards (vmdriver.go).
	fwdMu sync.Mutex
	// inspector checks the root disk of every OMI that becomes available.
	inspector Inspector
	// taskObserver is told about finished tasks (metrics).
	taskObserver func(kind, state string, d time.Duration)
	// guard counts failed logins and locks them out (logins.go).
	guard        *authguard.Guard
	authObserver func(AuthEvent)
	jobs         *jobs
	// jobCtx is the context of background jobs, cancelled by Close.
	jobCtx context.Context

	// kick wakes the reconciler after a commit that left work to do.
	kick chan struct{}
	// leases share background work with other nodes (nil: alone).
	leases omi.Leases
	// rescan is how often the reconciler looks for work without a kick:
	// work queued through other nodes is only seen then.
	rescan time.Duration

	closeOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// New returns a Service over store. Call Start to run the background
// reconciler and Close to stop it.
func New(store omi.Store, cfg Config, log *slog.Logger) *Service {
	if cfg.Region == "" {
		cfg.Region = "eu-west-2"
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "api." + cfg.Region + ".outscale.com"
	}
	if log == nil {
		log = slog.Default()
	}
	policy := authguard.DefaultPolicy
	if cfg.LoginPolicy != nil {
		policy = *cfg.LoginPolicy
	}
	keys := &keyCache{}
	ids, _ := store.(omi.IDReader)
	return &Service{store: watchingStore{store, keys}, ids: ids, keys: keys, cfg: cfg, log: log, now: time.Now, guard: authguard.New(policy),
		region: newRegionFacts(cfg.Region, cfg.Subregions, cfg.Marketplace), kick: make(chan struct{}, 1), jobs: newJobs(2), rescan: 5 * time.Second}
}

// Region returns the region the service serves.
func (s *Service) Region() string { return s.cfg.Region }

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now; s.guard.SetClock(now) }

// errDryRun rolls back the transaction of a dry run.
var errDryRun = errors.New("dry run")

// update runs fn in one write transaction. In a dry run everything fn did is
// rolled back once fn has succeeded, and after is not run. after runs once
// the transaction has committed (to wake background work).
func (s *Service) update(ctx context.Context, fn func(omi.Tx) error) error {
	dry := omi.IsDryRun(ctx)
	err := s.store.Update(ctx, func(tx omi.Tx) error {
		if err := fn(queueingTx{tx}); err != nil {
			return err
		}
		if dry {
			return errDryRun
		}
		return nil
	})
	if errors.Is(err, errDryRun) {
		return nil
	}
	if err != nil {
		return wrapStoreErr(err)
	}
	return nil
}

// view runs fn in one read transaction.
func (s *Service) view(ctx context.Context, fn func(omi.Tx) error) error {
	return wrapStoreErr(s.store.View(ctx, fn))
}

// wrapStoreErr keeps *omi.Error values and turns anything else into an
// internal error.
func wrapStoreErr(err error) error {
	if err == nil {
		return nil
	}
	var e *omi.Error
	if errors.As(err, &e) {
		return e
	}
	return omi.Internal(err)
}

// nowString is the current time in the API's date format.
func (s *Service) nowString() string { return omi.FormatTime(s.now()) }

// insertNew inserts r, regenerating its id on the (rare) collision with a
// live or a retired id, so that ids are never reused.
func insertNew(tx omi.Tx, r omi.Resource, regen func()) error {
	for i := 0; i < 8; i++ {
		_, err := tx.Get(omi.KindRetired, r.ResourceID())
		if err == nil {
			regen()
			continue
		}
		if !isNotFound(err) {
			return err
		}
		err = omi.Insert(tx, r)
		if !errors.Is(err, omi.ErrExists) {
			return err
		}
		regen()
	}
	return fmt.Errorf("could not allocate a unique %s id", r.Kind())
}

// retire deletes a resource and keeps its id as retired.
func retire(tx omi.Tx, kind omi.Kind, id string) error {
	if err := tx.Delete(kind, id); err != nil {
		return err
	}
	return tx.Put(omi.Record{Kind: omi.KindRetired, ID: id, Doc: []byte(`{"Kind":"` + string(kind) + `"}`)})
}

// notFound is the typed NotFound for a store miss.
func isNotFound(err error) bool { return errors.Is(err, omi.ErrNotFound) }

// Base is embedded in every request: DryRun exists on every call.
type Base struct {
	DryRun bool `json:"DryRun"`
}

// IsDryRun tells the transport whether the request is a dry run.
func (b *Base) IsDryRun() bool { return b.DryRun }
