package diskimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Gzip member layout written by GzipWriter: a 10-byte header with FEXTRA, a
// 12-byte extra field holding subfield "OM" (omi) with the member's total
// size and its uncompressed size (both uint32 little endian), the deflate
// data, then CRC-32 and ISIZE. Readers that do not know "OM" ignore it, as
// RFC 1952 requires; ours uses it to find member boundaries without inflating,
// so members can be inflated in parallel.
const (
	gzipHeaderLen  = 10
	gzipOMXLen     = 12
	gzipOMHeadLen  = gzipHeaderLen + 2 + gzipOMXLen
	gzipTrailerLen = 8
	gzipFlagExtra  = 0x04
	gzipOSUnknown  = 0xff

	// maxGzipBlock caps GzipOptions.BlockSize and the member size our reader
	// trusts, so a hostile "OM" field cannot make it allocate much.
	maxGzipBlock = 16 << 20
)

// GzipOptions tunes GzipWriter.
type GzipOptions struct {
	// Level is the flate level; 0 means 1 (BestSpeed), what exports use.
	Level int
	// BlockSize is the uncompressed size of each gzip member; 0 means 1 MiB.
	// Members are compressed independently, so they compress in parallel at
	// the cost of a restarted dictionary (well under 1% for 1 MiB).
	BlockSize int
	// Concurrency is the number of compressing goroutines; 0 means GOMAXPROCS.
	Concurrency int
	// UncompressedHash, if set, receives every byte written, in order.
	UncompressedHash hash.Hash
	// CompressedHash, if set, receives every byte of the gzip stream, in order.
	CompressedHash hash.Hash
}

// GzipWriter compresses to a multi-member gzip stream using several
// goroutines. It exists because single-threaded gzip is the bottleneck of a
// disk export. Close must be called; it does not close the underlying writer.
type GzipWriter struct {
	w    io.Writer
	opts GzipOptions

	cur   []byte
	jobs  chan *gzJob // to compressors
	order chan *gzJob // to the output goroutine, in stream order
	wg    sync.WaitGroup
	outWG sync.WaitGroup
	inBuf sync.Pool
	// outBuf recycles the members' output buffers: grown from empty for
	// every 1 MiB member, they cost more allocation and copying than the
	// output write itself.
	outBuf sync.Pool

	zeroOnce   sync.Once
	zeroMember []byte

	mu        sync.Mutex
	err       error
	in, out   int64
	closed    bool
	submitted bool
}

type gzJob struct {
	in   []byte
	out  *bytes.Buffer
	done chan struct{}
	err  error
}

// NewGzipWriter starts a parallel gzip writer on w.
func NewGzipWriter(w io.Writer, opts GzipOptions) (*GzipWriter, error) {
	if opts.Level == 0 {
		opts.Level = flate.BestSpeed
	}
	if opts.Level < flate.HuffmanOnly || opts.Level > flate.BestCompression {
		return nil, fmt.Errorf("diskimage: gzip level %d", opts.Level)
	}
	if opts.BlockSize == 0 {
		opts.BlockSize = 1 << 20
	}
	if opts.BlockSize < 4096 || opts.BlockSize > maxGzipBlock {
		return nil, fmt.Errorf("diskimage: gzip block size %d outside [4 KiB, 16 MiB]", opts.BlockSize)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = runtime.GOMAXPROCS(0)
	}
	z := &GzipWriter{
		w:     w,
		opts:  opts,
		jobs:  make(chan *gzJob, opts.Concurrency),
		order: make(chan *gzJob, 2*opts.Concurrency+1),
	}
	z.inBuf.New = func() any { b := make([]byte, 0, opts.BlockSize); return &b }
	z.outBuf.New = func() any { return bytes.NewBuffer(make([]byte, 0, opts.BlockSize/2)) }
	for range opts.Concurrency {
		z.wg.Add(1)
		go z.compressLoop()
	}
	z.outWG.Add(1)
	go z.outputLoop()
	return z, nil
}

// Write buffers p and hands full blocks to the compressors.
func (z *GzipWriter) Write(p []byte) (int, error) {
	if err := z.error(); err != nil {
		return 0, err
	}
	if z.closed {
		return 0, errors.New("diskimage: write to closed GzipWriter")
	}
	n := len(p)
	for len(p) > 0 {
		if z.cur == nil {
			z.cur = (*z.inBuf.Get().(*[]byte))[:0]
		}
		k := copy(z.cur[len(z.cur):cap(z.cur)], p)
		z.cur = z.cur[:len(z.cur)+k]
		p = p[k:]
		if len(z.cur) == cap(z.cur) {
			z.submit()
			if err := z.error(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (z *GzipWriter) submit() {
	j := &gzJob{in: z.cur, out: z.outBuf.Get().(*bytes.Buffer), done: make(chan struct{})}
	z.cur = nil
	z.submitted = true
	z.order <- j
	z.jobs <- j
}

// Close compresses what is buffered, waits for all output to be written and
// returns the first error. An empty input still yields a valid (empty) gzip
// member.
func (z *GzipWriter) Close() error {
	if z.closed {
		return z.error()
	}
	z.closed = true
	if len(z.cur) > 0 || !z.submitted {
		if z.cur == nil {
			z.cur = (*z.inBuf.Get().(*[]byte))[:0]
		}
		z.submit()
	}
	close(z.jobs)
	close(z.order)
	z.wg.Wait()
	z.outWG.Wait()
	return z.error()
}

// Written returns the uncompressed bytes accepted and the compressed bytes
// written so far (final after Close).
func (z *GzipWriter) Written() (in, out int64) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.in, z.out
}

func (z *GzipWriter) error() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.err
}

func (z *GzipWriter) setErr(err error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.err == nil {
		z.err = err
	}
}

func (z *GzipWriter) compressLoop() {
	defer z.wg.Done()
	fw, err := flate.NewWriter(io.Discard, z.opts.Level)
	if err != nil {
		// Level was validated in NewGzipWriter.
		z.setErr(err)
	}
	for j := range z.jobs {
		if err != nil {
			j.err = err
		} else {
			j.err = z.compressJob(fw, j)
		}
		close(j.done)
	}
}

// compressJob writes one complete gzip member for j.in into j.out.
func (z *GzipWriter) compressJob(fw *flate.Writer, j *gzJob) error {
	j.out.Reset()
	if len(j.in) == z.opts.BlockSize && isZero(j.in) {
		z.zeroOnce.Do(func() {
			var b bytes.Buffer
			if err := encodeMember(fw, &b, j.in); err == nil {
				z.zeroMember = b.Bytes()
			}
		})
		if z.zeroMember != nil {
			j.out.Write(z.zeroMember)
			return nil
		}
	}
	return encodeMember(fw, j.out, j.in)
}

// encodeMember appends one gzip member holding data to out.
func encodeMember(fw *flate.Writer, out *bytes.Buffer, data []byte) error {
	start := out.Len()
	var hdr [gzipOMHeadLen]byte
	hdr[0], hdr[1], hdr[2], hdr[3] = 0x1f, 0x8b, 8, gzipFlagExtra
	hdr[9] = gzipOSUnknown
	binary.LittleEndian.PutUint16(hdr[10:], gzipOMXLen)
	hdr[12], hdr[13] = 'O', 'M'
	binary.LittleEndian.PutUint16(hdr[14:], 8)
	binary.LittleEndian.PutUint32(hdr[20:], uint32(len(data)))
	out.Write(hdr[:])
	fw.Reset(out)
	if _, err := fw.Write(data); err != nil {
		return err
	}
	if err := fw.Close(); err != nil {
		return err
	}
	var tr [gzipTrailerLen]byte
	binary.LittleEndian.PutUint32(tr[0:], crc32.ChecksumIEEE(data))
	binary.LittleEndian.PutUint32(tr[4:], uint32(len(data)))
	out.Write(tr[:])
	b := out.Bytes()[start:]
	binary.LittleEndian.PutUint32(b[16:], uint32(len(b)))
	return nil
}

func (z *GzipWriter) outputLoop() {
	defer z.outWG.Done()
	for j := range z.order {
		<-j.done
		if z.error() == nil {
			if j.err != nil {
				z.setErr(fmt.Errorf("diskimage: gzip: %w", j.err))
			} else {
				if h := z.opts.UncompressedHash; h != nil {
					h.Write(j.in)
				}
				if h := z.opts.CompressedHash; h != nil {
					h.Write(j.out.Bytes())
				}
				n, err := z.w.Write(j.out.Bytes())
				z.mu.Lock()
				z.in += int64(len(j.in))
				z.out += int64(n)
				z.mu.Unlock()
				if err != nil {
					z.setErr(err)
				}
			}
		}
		in := j.in[:0]
		z.inBuf.Put(&in)
		j.out.Reset()
		z.outBuf.Put(j.out)
		j.out = nil
	}
}

// isZero reports whether b is all zero bytes.
func isZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeroChunk))
		if !bytes.Equal(b[:k], zeroChunk[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}
