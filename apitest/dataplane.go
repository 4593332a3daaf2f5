package apitest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore/local"
	"github.com/omiproject/omi/dataplane"
	"github.com/omiproject/omi/nbd"
)

// openDataPlane wires the local block store, block maps and data plane
// under dir the way cmd/omi does, and returns the plane and a function that
// closes the block store.
func openDataPlane(dir string, store omi.Store) (*dataplane.Plane, func(), error) {
	blocks, err := local.Open(filepath.Join(dir, "blocks"))
	if err != nil {
		return nil, nil, fmt.Errorf("open block store: %w", err)
	}
	maps, err := blockmap.NewDirStore(filepath.Join(dir, "maps"))
	if err != nil {
		blocks.Close()
		return nil, nil, fmt.Errorf("open block maps: %w", err)
	}
	wlog := filepath.Join(dir, "wlog")
	if err := os.MkdirAll(wlog, 0o700); err != nil {
		blocks.Close()
		return nil, nil, err
	}
	plane := dataplane.New(blockmap.NewManager(blocks, maps, blockmap.WithWriteLog(wlog)), blocks, store)
	return plane, func() { blocks.Close() }, nil
}

// serveNBD serves the plane's volumes over NBD on a loopback port.
func serveNBD(plane *dataplane.Plane, log *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("nbd listen: %w", err)
	}
	srv := nbd.NewServer(plane, nbd.WithLogger(log))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil && !errors.Is(err, nbd.ErrServerClosed) {
			log.Error("nbd server", "err", err)
		}
	}
	return ln.Addr().String(), stop, nil
}
