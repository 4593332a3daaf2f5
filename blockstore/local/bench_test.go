package local

import (
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/omiproject/omi/blockstore"
)

// diskLikeBlocks returns n distinct 512 KiB blocks of disk-like content:
// half random bytes, half text-like bytes (about 2:1 compressible).
func diskLikeBlocks(n int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []byte("the quick brown fox jumps over the lazy dog /usr/lib/x86_64-linux-gnu libc.so.6 ")
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, blockstore.BlockSize)
		for j := 0; j < len(b)/2; j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8; k++ {
				b[j+k] = byte(v >> (8 * k))
			}
		}
		for j := len(b) / 2; j < len(b); j++ {
			b[j] = words[(j*7+i)%len(words)]
		}
		out[i] = b
	}
	return out
}

// BenchmarkPut measures storing new blocks durably from one goroutine:
// SHA-256, S2, a pending file per block, and the batched syncs and renames
// of the Syncs the Puts start, plus a final Sync. Compare with
// BenchmarkSHA256 and BenchmarkS2, the CPU work a Put cannot avoid, on the
// same data.
func BenchmarkPut(b *testing.B) { benchPut(b, syncSyncfs, 1, 0) }

// BenchmarkPutFsync is BenchmarkPut with one fsync per file and per shard
// directory instead of syncfs(2).
func BenchmarkPutFsync(b *testing.B) { benchPut(b, syncFsync, 1, 0) }

// BenchmarkPutParallel is BenchmarkPut from 8 goroutines, like the write
// back of a block map device on this machine.
func BenchmarkPutParallel(b *testing.B) { benchPut(b, syncSyncfs, 8, 0) }

// BenchmarkPutParallelFsync is BenchmarkPutParallel with fsyncs.
func BenchmarkPutParallelFsync(b *testing.B) { benchPut(b, syncFsync, 8, 0) }

// BenchmarkPutSyncEach syncs after every Put: the cost of durability per
// block without batching (about what Put paid before Sync existed).
func BenchmarkPutSyncEach(b *testing.B) { benchPut(b, syncSyncfs, 1, 1) }

// benchPut stores b.N new blocks from workers goroutines, syncing every
// syncEvery Puts of a goroutine (never if 0) and once at the end.
func benchPut(b *testing.B, mode syncMode, workers, syncEvery int) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.mode = mode
	ctx := context.Background()
	blocks := make([][][]byte, workers)
	for w := range blocks {
		blocks[w] = diskLikeBlocks(64 / workers)
	}
	var next atomic.Int64
	b.SetBytes(blockstore.BlockSize)
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			own := blocks[w]
			for k := 0; ; k++ {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				blk := own[k%len(own)]
				// a new block every time
				blk[0], blk[1], blk[2], blk[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
				if _, err := s.Put(ctx, blk); err != nil {
					errs <- err
					return
				}
				if syncEvery > 0 && (k+1)%syncEvery == 0 {
					if err := s.Sync(ctx); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := s.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkGet measures reading and verifying stored blocks.
func BenchmarkGet(b *testing.B) {
	blocks := diskLikeBlocks(64)
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	hashes := make([]blockstore.Hash, len(blocks))
	for i, blk := range blocks {
		if hashes[i], err = s.Put(ctx, blk); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Sync(ctx); err != nil { // read final files, not pending ones
		b.Fatal(err)
	}
	buf := make([]byte, 0, blockstore.BlockSize)
	b.SetBytes(blockstore.BlockSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if buf, err = s.Get(ctx, hashes[i%len(hashes)], buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSHA256 is the hashing floor of a Put or a verified Get.
func BenchmarkSHA256(b *testing.B) {
	blocks := diskLikeBlocks(64)
	b.SetBytes(blockstore.BlockSize)
	for i := 0; i < b.N; i++ {
		sha256.Sum256(blocks[i%len(blocks)])
	}
}

// BenchmarkS2 is the compression floor of a Put.
func BenchmarkS2(b *testing.B) {
	blocks := diskLikeBlocks(64)
	dst := make([]byte, s2.MaxEncodedLen(blockstore.BlockSize))
	b.SetBytes(blockstore.BlockSize)
	for i := 0; i < b.N; i++ {
		s2.Encode(dst, blocks[i%len(blocks)])
	}
}

// BenchmarkZstdFastest is what compression cost a Put when the store wrote
// zstd (blocks written then still read).
func BenchmarkZstdFastest(b *testing.B) {
	blocks := diskLikeBlocks(64)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, blockstore.BlockSize)
	b.SetBytes(blockstore.BlockSize)
	for i := 0; i < b.N; i++ {
		dst = enc.EncodeAll(blocks[i%len(blocks)], dst[:0])
	}
}
