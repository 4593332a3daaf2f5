package local

import (
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"testing"

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

// BenchmarkPut measures storing new blocks (SHA-256, zstd fastest, write,
// fsync, rename, directory fsync); compare with BenchmarkSHA256 and
// BenchmarkZstdFastest, the CPU work a Put cannot avoid, on the same data.
func BenchmarkPut(b *testing.B) {
	blocks := diskLikeBlocks(64)
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	b.SetBytes(blockstore.BlockSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		blk := blocks[i%len(blocks)]
		blk[0], blk[1], blk[2] = byte(i), byte(i>>8), byte(i>>16) // a new block every time
		if _, err := s.Put(ctx, blk); err != nil {
			b.Fatal(err)
		}
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

// BenchmarkZstdFastest is the compression floor of a Put.
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
