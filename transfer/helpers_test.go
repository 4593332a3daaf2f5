package transfer_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/local"
	"github.com/omiproject/omi/gc"
)

type env struct {
	dir    string
	blocks *local.Store
	maps   *blockmap.DirStore
	m      *blockmap.Manager
}

// newEnv opens a Manager over a real local block store and map directory.
func newEnv(tb testing.TB) *env {
	tb.Helper()
	dir := tb.TempDir()
	blocks, err := local.Open(filepath.Join(dir, "blocks"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { blocks.Close() })
	maps, err := blockmap.NewDirStore(filepath.Join(dir, "maps"))
	if err != nil {
		tb.Fatal(err)
	}
	return &env{dir: dir, blocks: blocks, maps: maps, m: blockmap.NewManager(blocks, maps)}
}

// put creates map id holding content (all-zero blocks stay holes).
func (e *env) put(tb testing.TB, id string, content []byte) {
	tb.Helper()
	ctx := context.Background()
	if err := e.m.Create(ctx, id, int64(len(content))); err != nil {
		tb.Fatal(err)
	}
	d, err := e.m.Open(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.WriteAt(ctx, content, 0); err != nil {
		tb.Fatal(err)
	}
	if err := d.Close(); err != nil {
		tb.Fatal(err)
	}
}

// read returns the content of map id, read back through a View.
func (e *env) read(tb testing.TB, id string) []byte {
	tb.Helper()
	v, err := e.m.View(context.Background(), id)
	if err != nil {
		tb.Fatalf("view %s: %v", id, err)
	}
	defer v.Close()
	var b bytes.Buffer
	if _, err := v.WriteTo(&b); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// mapIDs lists the saved maps.
func (e *env) mapIDs(tb testing.TB) []string {
	tb.Helper()
	var ids []string
	if err := e.maps.Walk(context.Background(), func(id string, _ *blockmap.Map) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return ids
}

// blockCount runs a garbage collection and returns the blocks left.
func (e *env) collectAndCount(tb testing.TB) int {
	tb.Helper()
	time.Sleep(2 * time.Millisecond) // written times strictly before the collection
	if _, err := gc.Collect(context.Background(), e.blocks, e.m.LiveHashes); err != nil {
		tb.Fatal(err)
	}
	n := 0
	if err := e.blocks.Walk(context.Background(), func(blockstore.Hash, time.Time) error { n++; return nil }); err != nil {
		tb.Fatal(err)
	}
	return n
}

// needTool skips without the command, but fails under CI=true.
func needTool(tb testing.TB, names ...string) {
	tb.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("CI") == "true" {
				tb.Fatalf("%s not installed (apt-get install -y qemu-utils gzip)", name)
			}
			tb.Skipf("%s not installed", name)
		}
	}
}

// run runs a command and fails the test with its output on error.
func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// shell runs a /bin/sh command line.
func shell(tb testing.TB, cmd string) string {
	tb.Helper()
	return run(tb, "sh", "-c", cmd)
}

var words = strings.Fields("the quick brown fox jumps over lazy dog kernel module config init systemd usr lib bin etc var log mount root home share local include python3 package version license copyright")

// realistic returns size bytes like a used disk, deterministic per seed:
// 256 KiB pieces of random data (compressed files, binaries), text, and
// zeros (some whole 512 KiB blocks, which stay holes).
func realistic(size int64, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]byte, size)
	const piece = 256 << 10
	for off := int64(0); off < size; off += piece {
		b := out[off:min(off+piece, size)]
		switch r := rng.IntN(10); {
		case r < 3: // zeros
		case r < 7:
			fillText(rng, b)
		default:
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
		}
	}
	return out
}

func fillText(rng *rand.Rand, b []byte) {
	i := 0
	for i < len(b) {
		w := words[rng.IntN(len(words))]
		i += copy(b[i:], w)
		if i < len(b) {
			if rng.IntN(12) == 0 {
				b[i] = '\n'
			} else {
				b[i] = ' '
			}
			i++
		}
	}
}

// testDisk is a small disk with every kind of content, including a 1 MiB
// hole and a size that is not a multiple of the block size.
func testDisk() []byte {
	d := realistic(6<<20+64<<10+3*512, 42)
	clear(d[2<<20 : 3<<20])
	return d
}

func writeFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func commandOutput(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}
