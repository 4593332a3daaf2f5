package s3store

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/blocktest"
	"github.com/omiproject/omi/blockstore/local"
)

// Benchmarks of 512 KiB blocks of blocktest.KindMixed data (text, zero runs
// and random runs: about what an OS disk looks like), against the built-in
// endpoint on loopback and, for comparison, against blockstore/local in the
// same temporary directory filesystem. "seq" is one caller; "par8" is eight
// concurrent callers. Besides MB/s (of uncompressed block data) each reports
// the process CPU time per block, since the machine is shared and the
// endpoint runs in this process:
//
//	go test -run '^$' -bench . -benchtime 400x ./blockstore/s3store/

func stores(b *testing.B) map[string]blockstore.Store {
	l, err := local.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return map[string]blockstore.Store{"s3": openT(b, Options{}), "local": l}
}

var backends = []string{"s3", "local"}

// benchBlock returns a 512 KiB mixed block made unique by its first 8 bytes.
func benchBlock(base []byte, n uint64) []byte {
	d := append([]byte(nil), base...)
	binary.LittleEndian.PutUint64(d, n)
	return d
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// run calls op b.N times from par goroutines and reports throughput and CPU.
func run(b *testing.B, par int, op func(i uint64) error) {
	b.SetBytes(blockstore.BlockSize)
	var next atomic.Uint64
	errs := make(chan error, par)
	b.ResetTimer()
	cpu := cpuTime()
	for range par {
		go func() {
			for {
				i := next.Add(1) - 1
				if i >= uint64(b.N) {
					errs <- nil
					return
				}
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range par {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

func forEach(b *testing.B, fn func(b *testing.B, s blockstore.Store, par int)) {
	for _, name := range backends {
		for _, par := range []int{1, 8} {
			label := "seq"
			if par > 1 {
				label = "par8"
			}
			b.Run(name+"/"+label, func(b *testing.B) { fn(b, stores(b)[name], par) })
		}
	}
}

// BenchmarkPut stores new blocks.
func BenchmarkPut(b *testing.B) {
	base := blocktest.Data(blocktest.KindMixed, 1, blockstore.BlockSize)
	forEach(b, func(b *testing.B, s blockstore.Store, par int) {
		ctx := context.Background()
		run(b, par, func(i uint64) error {
			_, err := s.Put(ctx, benchBlock(base, i))
			return err
		})
	})
}

// BenchmarkRePut stores blocks that are already stored: the cost of the
// written-time refresh (a rewrite for s3, a chtimes for local).
func BenchmarkRePut(b *testing.B) {
	base := blocktest.Data(blocktest.KindMixed, 2, blockstore.BlockSize)
	const distinct = 64
	blocks := make([][]byte, distinct)
	for i := range blocks {
		blocks[i] = benchBlock(base, uint64(i))
	}
	forEach(b, func(b *testing.B, s blockstore.Store, par int) {
		ctx := context.Background()
		for _, d := range blocks {
			if _, err := s.Put(ctx, d); err != nil {
				b.Fatal(err)
			}
		}
		run(b, par, func(i uint64) error {
			_, err := s.Put(ctx, blocks[i%distinct])
			return err
		})
	})
}

// BenchmarkGet reads and verifies stored blocks.
func BenchmarkGet(b *testing.B) {
	base := blocktest.Data(blocktest.KindMixed, 3, blockstore.BlockSize)
	const distinct = 64
	forEach(b, func(b *testing.B, s blockstore.Store, par int) {
		ctx := context.Background()
		hashes := make([]blockstore.Hash, distinct)
		for i := range hashes {
			h, err := s.Put(ctx, benchBlock(base, uint64(i)))
			if err != nil {
				b.Fatal(err)
			}
			hashes[i] = h
		}
		bufs := make(chan []byte, par)
		for range par {
			bufs <- make([]byte, 0, blockstore.BlockSize)
		}
		run(b, par, func(i uint64) error {
			buf := <-bufs
			buf, err := s.Get(ctx, hashes[i%distinct], buf)
			bufs <- buf
			return err
		})
	})
}
