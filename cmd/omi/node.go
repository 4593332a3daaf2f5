package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/local"
	"github.com/omiproject/omi/blockstore/s3store"
	"github.com/omiproject/omi/catalog"
	"github.com/omiproject/omi/cluster"
	"github.com/omiproject/omi/dataplane"
	"github.com/omiproject/omi/gc"
	"github.com/omiproject/omi/metrics"
	"github.com/omiproject/omi/oos"
	"github.com/omiproject/omi/postgres"
	"github.com/omiproject/omi/recordcache"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sqlite"
)

// node is one omi process's state over a data directory: the metadata
// store, the block store, block maps, and the service on top.
type node struct {
	store   omi.Store
	backend blockstore.Store // the block store backend, closed last
	blocks  blockstore.Store
	plane   *dataplane.Plane
	svc     *service.Service
	mets    *metrics.Metrics
	lock    *os.File
	oos     *oos.Server
	// member is this process's membership of the cluster of nodes
	// sharing a PostgreSQL store (nil with SQLite).
	member *cluster.Node
}

// nodeConfig names this node among those sharing a PostgreSQL store.
type nodeConfig struct {
	name string
	ttl  time.Duration
	addr string
}

// openNode opens (creating if needed) the data directory. It takes an
// exclusive lock on it: one process at a time owns a data directory, since
// the block map manager keeps state in memory.
func openNode(ctx context.Context, dataDir, storeDSN string, blocksCfg blockConfig, nc nodeConfig, cfg service.Config, log *slog.Logger) (*node, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	n := &node{mets: metrics.New()}
	lock, err := os.OpenFile(filepath.Join(dataDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("data directory %s is in use by another omi process", dataDir)
	}
	n.lock = lock
	raw, err := openStore(ctx, dataDir, storeDSN)
	if err != nil {
		n.Close()
		return nil, err
	}
	cacheMiB, err := strconv.Atoi(envOr("OMI_RECORD_CACHE_MIB", "64"))
	if err != nil || cacheMiB < 0 {
		raw.Close()
		n.Close()
		return nil, fmt.Errorf("OMI_RECORD_CACHE_MIB %q: give a number of MiB (0: no cache)", os.Getenv("OMI_RECORD_CACHE_MIB"))
	}
	// Every writer of this process (service, data plane) goes through the
	// cache, which is what keeps it coherent (package recordcache).
	cacheBytes := cacheMiB << 20
	if cacheMiB == 0 {
		cacheBytes = -1 // recordcache: no cache
	}
	n.store = recordcache.Wrap(raw, cacheBytes)
	backend, err := openBlocks(ctx, dataDir, blocksCfg, cfg.Region)
	if err != nil {
		n.Close()
		return nil, err
	}
	n.backend = backend
	n.blocks = n.mets.Blocks(backend)
	// Writes acknowledged over NBD but not yet flushed are logged here, so
	// that a killed omi loses none of them while QEMU reconnects to the
	// next one (blockmap.WithWriteLog).
	wlog := filepath.Join(dataDir, "wlog")
	if err := os.MkdirAll(wlog, 0o700); err != nil {
		n.Close()
		return nil, err
	}
	var mgr *blockmap.Manager
	if pg, ok := raw.(*postgres.Store); ok {
		if mgr, err = n.join(ctx, pg, blocksCfg, nc, wlog, log); err != nil {
			n.Close()
			return nil, err
		}
	} else {
		maps, err := blockmap.NewDirStore(filepath.Join(dataDir, "maps"))
		if err != nil {
			n.Close()
			return nil, err
		}
		mgr = blockmap.NewManager(n.blocks, maps, blockmap.WithWriteLog(wlog))
	}
	if k, err := mgr.RecoverLogs(ctx); err != nil {
		n.Close()
		return nil, err
	} else if k > 0 {
		log.Warn("volumes written by an omi that died: their acknowledged writes were recovered from the write log", "volumes", k)
	}
	n.plane = dataplane.New(mgr, n.blocks, n.store)
	n.svc = service.New(n.store, cfg, log)
	if n.member != nil {
		n.svc.SetLeases(n.member)
	}
	n.svc.SetDataPlane(n.plane)
	n.svc.SetInspector(n.plane)
	n.svc.SetTaskObserver(n.mets.ObserveTask)
	n.svc.SetAuthObserver(func(ev service.AuthEvent) { n.mets.ObserveAuth(ev.Kind, ev.Outcome, ev.Scope) })
	return n, nil
}

// blockConfig selects the block store backend: the data directory
// (default) or a bucket of an S3 service.
type blockConfig struct {
	kind      string // "local" or "s3"
	endpoint  string
	region    string
	bucket    string
	prefix    string
	accessKey string
	secretKey string
	clockSkew time.Duration
}

func openBlocks(ctx context.Context, dataDir string, c blockConfig, region string) (blockstore.Store, error) {
	switch c.kind {
	case "", "local":
		return local.Open(filepath.Join(dataDir, "blocks"))
	case "s3":
		if c.region == "" {
			c.region = region
		}
		return s3store.Open(ctx, s3store.Options{Endpoint: c.endpoint, Region: c.region, Bucket: c.bucket, Prefix: c.prefix,
			AccessKey: c.accessKey, SecretKey: c.secretKey, ClockSkew: c.clockSkew})
	}
	return nil, fmt.Errorf("--blockstore %q: use local or s3", c.kind)
}

// openStore opens the metadata store: SQLite in the data directory by
// default (empty or "sqlite"), else PostgreSQL with dsn as a postgres://
// URL or a keyword/value connection string.
func openStore(ctx context.Context, dataDir, dsn string) (omi.Store, error) {
	if dsn == "" || dsn == "sqlite" {
		return sqlite.Open(ctx, filepath.Join(dataDir, "omi.db"))
	}
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") && !strings.Contains(dsn, "=") {
		return nil, fmt.Errorf("--store %q: give a PostgreSQL DSN (postgres://... or host=... dbname=...), or nothing for SQLite", dsn)
	}
	return postgres.Open(ctx, dsn)
}

// join makes this process a node of the cluster of the PostgreSQL store:
// block map roots live in the database, fenced by this node's claims, and
// every Put goes through the node's guard (see package cluster).
func (n *node) join(ctx context.Context, pg *postgres.Store, blocksCfg blockConfig, nc nodeConfig, wlog string, log *slog.Logger) (*blockmap.Manager, error) {
	if nc.name == "" {
		host, _ := os.Hostname()
		nc.name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	// The record cache of a shared store serves only while this node is
	// the only live one; Join returns once no other node caches, so from
	// then on a write through any node is read through any other at once
	// (package cluster, "Record caches").
	var exclusive func(time.Time)
	if rc, ok := n.store.(*recordcache.Store); ok {
		exclusive = rc.Exclusive
	}
	member, err := cluster.Join(ctx, pg.Cluster(), cluster.Config{Name: nc.name, Addr: nc.addr, TTL: nc.ttl, Log: log,
		Expired:   func(err error) bool { return errors.Is(err, postgres.ErrNodeExpired) },
		Exclusive: exclusive})
	if err != nil {
		return nil, err
	}
	n.member = member
	if blocksCfg.kind != "s3" {
		log.Warn("blocks are in this node's data directory: run several nodes on one PostgreSQL store only with --blockstore s3")
	}
	n.blocks = member.Guard(n.blocks)
	mgr := blockmap.NewManager(n.blocks, pg.NodeRoots(member.ID()), blockmap.WithOwner(member), blockmap.WithWriteLog(wlog))
	member.SetLowWater(mgr.LowWater)
	log.Info("cluster node", "node", nc.name, "id", member.ID(), "lease_ttl", nc.ttl)
	return mgr, nil
}

// collect runs one garbage collection: alone, or for the whole cluster on
// the node holding the "gc" lease (the others skip it).
func (n *node) collect(ctx context.Context) (gc.Stats, bool, error) {
	if n.member != nil {
		if ok, err := n.member.Acquire(ctx, "gc"); err != nil || !ok {
			return gc.Stats{}, false, err
		}
	}
	if _, err := n.plane.ReapOrphans(ctx); err != nil {
		return gc.Stats{}, true, err
	}
	if n.member == nil {
		st, err := n.plane.Collect(ctx)
		return st, true, err
	}
	st, err := n.member.Collect(ctx, n.plane.Maps(), n.backend, cluster.CollectOptions{})
	return st, true, err
}

// leave unregisters the node, handing its leases to the other nodes.
func (n *node) leave() {
	if n.member == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.member.Leave(ctx)
}

// Close releases everything; the service must be closed first.
func (n *node) Close() {
	n.leave()
	if n.backend != nil {
		n.backend.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
	if n.lock != nil {
		n.lock.Close()
	}
}

// officialCodes are the product codes of the catalogue's OMIs.
func officialCodes(p catalog.Preset) []string {
	if p.Platform == "windows" {
		return []string{"0002"}
	}
	return []string{"0001"}
}

// publishPreset builds a new version of a catalogue preset.
func (n *node) publishPreset(ctx context.Context, p catalog.Preset) (string, error) {
	img, err := n.svc.PublishOfficial(ctx, service.OfficialSpec{Family: p.Name, Description: p.Description,
		ProductCodes: officialCodes(p), SizeBytes: presetSize(p), Fill: n.fillWith(p.Spec)})
	if err != nil {
		return "", err
	}
	return img.ImageId, nil
}

func presetSize(p catalog.Preset) int64 {
	if p.Spec.SizeBytes > 0 {
		return p.Spec.SizeBytes
	}
	return catalog.DefaultSize
}

// fillWith returns a Fill function writing a generated disk.
func (n *node) fillWith(spec catalog.DiskSpec) func(ctx context.Context, volumeID string) error {
	return func(ctx context.Context, volumeID string) error {
		dev, err := n.plane.Maps().Open(ctx, volumeID)
		if err != nil {
			return err
		}
		if err := catalog.BuildDisk(ctx, catalog.WriterAt(ctx, dev), spec); err != nil {
			dev.Close()
			return err
		}
		if err := dev.Flush(ctx); err != nil {
			dev.Close()
			return err
		}
		return dev.Close()
	}
}

// seedCatalog publishes the bootable images built into imagesDir (a new
// version when the file changed), then the presets the provider does not
// have yet, except the families a built image covers. It runs in the
// background at start; a fresh server answers at once.
func (n *node) seedCatalog(ctx context.Context, log *slog.Logger, imagesDir string) {
	if n.member != nil {
		// One node of a cluster publishes; the lease stays with it until
		// it leaves, so nodes started together never publish twice.
		if ok, err := n.member.Acquire(ctx, "catalog"); err != nil || !ok {
			return
		}
	}
	built := n.publishBuilt(ctx, imagesDir, log)
	for _, p := range catalog.Presets() {
		if built[p.Name] {
			continue
		}
		have, err := n.svc.HasOfficial(ctx, p.Name)
		if err != nil {
			log.Error("official catalogue", "family", p.Name, "err", err)
			return
		}
		if have {
			continue
		}
		id, err := n.publishPreset(ctx, p)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("official catalogue", "family", p.Name, "err", err)
			}
			return
		}
		log.Info("official OMI published", "family", p.Name, "image", id)
	}
}
