package blockmap_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/gc"
)

// diskLike fills p with data that compresses about like an OS image (a
// quarter random, the rest repetitive text), made unique by seq so that
// blocks do not deduplicate.
func diskLike(p []byte, seq uint64) {
	r := rand.New(rand.NewPCG(seq, 1))
	const text = "usr/lib/x86_64-linux-gnu/libc.so.6 ELF 64-bit LSB shared object "
	for k := 0; k < len(p); k += 4096 {
		chunk := p[k:min(k+4096, len(p))]
		for i := range chunk {
			chunk[i] = text[i%len(text)]
		}
		q := chunk[:len(chunk)/4]
		for i := 0; i+8 <= len(q); i += 8 {
			binary.LittleEndian.PutUint64(q[i:], r.Uint64())
		}
	}
}

const benchVolume = 64 << 20

// BenchmarkDeviceWrite measures sequential 1 MiB writes through a Device,
// including hashing, compression and durable Puts, and the final Flush.
func BenchmarkDeviceWrite(b *testing.B) {
	for _, w := range []int{2, 8} {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) { benchmarkDeviceWrite(b, blockmap.WithWorkers(w)) })
	}
}

func benchmarkDeviceWrite(b *testing.B, opts ...blockmap.Option) {
	ctx := context.Background()
	e := mustEnv(b, "", opts...)
	mustCreate(b, e, "vol-1", benchVolume)
	d := mustOpen(b, e, "vol-1")
	defer d.Close()
	const chunk = 1 << 20
	bufs := make([][]byte, 16)
	for i := range bufs {
		bufs[i] = make([]byte, chunk)
	}
	b.SetBytes(chunk)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p := bufs[i%len(bufs)]
		diskLike(p, uint64(i))
		b.StartTimer()
		if err := d.WriteAt(ctx, p, int64(i)*chunk%benchVolume); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDeviceRead measures sequential reads through a Device of a
// volume written with disk-like data, in NBD-sized requests.
func BenchmarkDeviceRead(b *testing.B) {
	for _, req := range []int{64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", req>>10), func(b *testing.B) {
			ctx := context.Background()
			e := mustEnv(b, "")
			mustCreate(b, e, "vol-1", benchVolume)
			d := mustOpen(b, e, "vol-1")
			p := make([]byte, 1<<20)
			for off := int64(0); off < benchVolume; off += int64(len(p)) {
				diskLike(p, uint64(off))
				if err := d.WriteAt(ctx, p, off); err != nil {
					b.Fatal(err)
				}
			}
			d.Close()
			d = mustOpen(b, e, "vol-1")
			defer d.Close()
			buf := make([]byte, req)
			b.SetBytes(int64(req))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := d.ReadAt(ctx, buf, int64(i)*int64(req)%benchVolume); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClone10GiB clones a saved 10 GiB volume map with a quarter of
// its blocks allocated (5120 entries), as CreateSnapshot does.
func BenchmarkClone10GiB(b *testing.B) {
	ctx := context.Background()
	e := mustEnv(b, "")
	mp, err := blockmap.New(10 << 30)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for i := int64(0); i < mp.Blocks(); i++ {
		if r.IntN(4) == 0 {
			var h blockstore.Hash
			binary.LittleEndian.PutUint64(h[:], uint64(i)+1)
			mp.SetEntry(i, h)
		}
	}
	if err := e.maps.Save(ctx, "vol-1", mp); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.m.Clone(ctx, "vol-1", fmt.Sprintf("snap-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCloneFull clones saved maps with every block allocated: with
// chunked maps the cost (a root save: two fsyncs) should not depend on the
// size.
func BenchmarkCloneFull(b *testing.B) {
	for _, size := range []int64{64 << 20, 8 << 30} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			ctx := context.Background()
			e := mustEnv(b, "")
			mp, _ := blockmap.New(size)
			for i := int64(0); i < mp.Blocks(); i++ {
				var h blockstore.Hash
				binary.LittleEndian.PutUint64(h[:], uint64(i)+1)
				mp.SetEntry(i, h)
			}
			if err := e.maps.Save(ctx, "vol-1", mp); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e.m.Clone(ctx, "vol-1", fmt.Sprintf("snap-%d", i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCollect measures a collection over n stored blocks referenced
// by maps, none of them garbage (the steady state): marking from the
// Manager and walking the store.
func BenchmarkCollect(b *testing.B) {
	const n = 4096
	ctx := context.Background()
	e := mustEnv(b, "")
	mp, _ := blockmap.New(n * bs)
	for i := int64(0); i < n; i++ {
		h, err := e.blocks.Put(ctx, []byte(fmt.Sprint("block ", i)))
		if err != nil {
			b.Fatal(err)
		}
		mp.SetEntry(i, h)
	}
	if err := e.maps.Save(ctx, "vol-1", mp); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st, err := gc.Collect(ctx, e.blocks, e.m.LiveHashes)
		if err != nil || st.Scanned != n+n/256 || st.Freed != 0 { // data and chunk blocks
			b.Fatalf("%+v, %v", st, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/block")
}

// BenchmarkFlushSmallWrite measures a 4 KiB write and Flush on a volume
// whose every block is allocated, as a guest fsync does: with chunked maps
// it stores one data block, one chunk block and the root, whatever the
// volume size.
func BenchmarkFlushSmallWrite(b *testing.B) {
	for _, size := range []int64{64 << 20, 8 << 30} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			ctx := context.Background()
			e := mustEnv(b, "")
			mp, _ := blockmap.New(size)
			for i := int64(0); i < mp.Blocks(); i++ {
				var h blockstore.Hash
				binary.LittleEndian.PutUint64(h[:], uint64(i)+1)
				mp.SetEntry(i, h)
			}
			if err := e.maps.Save(ctx, "vol-1", mp); err != nil {
				b.Fatal(err)
			}
			d := mustOpen(b, e, "vol-1")
			defer d.Close()
			p := make([]byte, 4096)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// A full-block write: the fake hashes cannot be read back.
				binary.LittleEndian.PutUint64(p, uint64(i)+1)
				blk := make([]byte, bs)
				copy(blk, p)
				if err := d.WriteAt(ctx, blk, int64(i%int(mp.Blocks()))*bs); err != nil {
					b.Fatal(err)
				}
				if err := d.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriteLog compares 64 KiB writes (the size QEMU sends for a
// guest's writeback), with a Flush every 4 MiB, without and with the write
// log (WithWriteLog): the log costs one append of each write to a file.
func BenchmarkWriteLog(b *testing.B) {
	for _, logged := range []bool{false, true} {
		b.Run(fmt.Sprintf("log=%v", logged), func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			var opts []blockmap.Option
			if logged {
				wl := filepath.Join(dir, "wlog")
				if err := os.MkdirAll(wl, 0o700); err != nil {
					b.Fatal(err)
				}
				opts = append(opts, blockmap.WithWriteLog(wl))
			}
			e := mustEnv(b, dir, opts...)
			mustCreate(b, e, "vol-1", benchVolume)
			d := mustOpen(b, e, "vol-1")
			defer d.Close()
			const n = 64 << 10
			bufs := make([][]byte, 64)
			for i := range bufs {
				bufs[i] = make([]byte, n)
				diskLike(bufs[i], uint64(i))
			}
			b.SetBytes(n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := d.WriteAt(ctx, bufs[i%len(bufs)], int64(i)*n%benchVolume); err != nil {
					b.Fatal(err)
				}
				if i%64 == 63 {
					if err := d.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
