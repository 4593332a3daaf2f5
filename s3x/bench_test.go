package s3x_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// benchSize is the object size of the throughput benchmarks.
const benchSize = 256 << 20

var benchData []byte

func benchBytes() []byte {
	if benchData == nil {
		benchData = make([]byte, benchSize)
		rng := rand.New(rand.NewPCG(42, 42))
		for i := 0; i < len(benchData); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8; j++ {
				benchData[i+j] = byte(v >> (8 * j))
			}
		}
	}
	return benchData
}

// cpuTime is the CPU time (user+system) of this process so far: client and
// server both run here, so per-operation CPU cost is independent of what
// else shares the machine, unlike wall-clock throughput.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds CPU milliseconds per operation and MB per CPU-second.
func reportCPU(b *testing.B, start time.Duration) {
	used := cpuTime() - start
	if used <= 0 || b.N == 0 {
		return
	}
	b.ReportMetric(float64(used.Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(benchSize)*float64(b.N)/1e6/used.Seconds(), "MB/cpu-s")
}

// onlyReader hides bytes.Reader's Seek and WriterTo: Upload sees what it
// sees in an export, a stream of unknown length.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// BenchmarkUpload256MiB: s3x.Upload of a 256 MiB non-seekable stream to the
// built-in endpoint (default 16 MiB parts, 3 buffers in flight).
func BenchmarkUpload256MiB(b *testing.B) {
	data := benchBytes()
	c := clientA()
	bucket(b, c, "bench")
	b.SetBytes(benchSize)
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := c.Upload(context.Background(), "bench", "up", onlyReader{bytes.NewReader(data)}, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkDownload256MiB: one GET of a 256 MiB object from the built-in
// endpoint, body copied to io.Discard.
func BenchmarkDownload256MiB(b *testing.B) {
	data := benchBytes()
	c := clientA()
	bucket(b, c, "bench")
	if _, err := c.Upload(context.Background(), "bench", "down", onlyReader{bytes.NewReader(data)}, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	cpu := cpuTime()
	defer reportCPU(b, cpu)
	for i := 0; i < b.N; i++ {
		body, size, err := c.Open(context.Background(), "bench", "down")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, body)
		body.Close()
		if err != nil || n != size || n != benchSize {
			b.Fatalf("read %d of %d: %v", n, size, err)
		}
	}
}

// BenchmarkLocalFile256MiB is the baseline: the same bytes written to a file
// in the temporary directory (the filesystem the endpoint stores on), in
// 16 MiB writes, without and with fsync.
func BenchmarkLocalFile256MiB(b *testing.B) {
	for _, sync := range []bool{false, true} {
		name := "nosync"
		if sync {
			name = "fsync"
		}
		b.Run(name, func(b *testing.B) {
			data := benchBytes()
			path := filepath.Join(b.TempDir(), "f")
			b.SetBytes(benchSize)
			b.ResetTimer()
			cpu := cpuTime()
			defer reportCPU(b, cpu)
			for i := 0; i < b.N; i++ {
				f, err := os.Create(path)
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < len(data); off += 16 << 20 {
					if _, err := f.Write(data[off : off+16<<20]); err != nil {
						b.Fatal(err)
					}
				}
				if sync {
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
