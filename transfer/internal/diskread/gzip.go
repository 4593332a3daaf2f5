package diskread

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"

	"github.com/omiproject/omi/diskimage"
)

// Layout of the members written by diskimage.GzipWriter: a 10-byte header
// with FEXTRA, XLEN 12, subfield "OM" of 8 bytes holding the member's total
// size and its uncompressed size (uint32 little endian each).
const (
	omHeadLen   = 24
	trailerLen  = 8
	maxOMMember = 16 << 20 // diskimage's largest block size
)

// gzipReader inflates a gzip stream. Members carrying the "OM" extra field
// (our exports) are read whole and inflated by several goroutines, output
// kept in order; at the first other member it falls back to a sequential
// multistream reader for the rest. Trailing bytes that are not a gzip member
// are an error: a disk must not silently lose or gain data.
type gzipReader struct {
	ctx    context.Context
	cancel context.CancelFunc
	br     *bufio.Reader
	order  chan *gzMember
	cur    *gzMember
	curOff int
	seq    io.Reader // sequential fallback, once started
	err    error
	wg     sync.WaitGroup

	// hashed, when not nil, receives every buffer of inflated bytes once
	// Read has consumed it, in order, for the hasher goroutine, which
	// writes it to the image observer and recycles it. Hashing the image
	// there rather than in the caller's goroutine takes it off the
	// decode's serial path.
	hashed   chan []byte
	hashDone chan struct{}
}

type gzMember struct {
	in   []byte
	out  []byte
	err  error
	done chan struct{}
	// tail, set on the last job when the stream continues with foreign
	// members: the already-read bytes of the first foreign member.
	tail []byte
	last bool
}

// newGzipReader starts inflating br with workers goroutines. image, if not
// nil, sees every inflated byte in order (written from a goroutine of its
// own, finished when Close returns).
func newGzipReader(ctx context.Context, br *bufio.Reader, workers int, image io.Writer) *gzipReader {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	z := &gzipReader{ctx: ctx, cancel: cancel, br: br, order: make(chan *gzMember, 2*workers+2)}
	if image != nil {
		z.hashed = make(chan []byte, 4)
		z.hashDone = make(chan struct{})
		go func() {
			defer close(z.hashDone)
			for b := range z.hashed {
				image.Write(b)
				putBuf(b)
			}
		}()
	}
	jobs := make(chan *gzMember, workers)
	for range workers {
		z.wg.Add(1)
		go func() {
			defer z.wg.Done()
			var fr io.ReadCloser
			var mi memberInflater
			for j := range jobs {
				j.err = inflateMember(&mi, &fr, j)
				close(j.done)
			}
		}()
	}
	z.wg.Add(1)
	go func() {
		defer z.wg.Done()
		defer close(jobs)
		defer close(z.order)
		z.split(jobs)
	}()
	return z
}

// split reads our members off the stream and queues them; it ends the
// queue with a job carrying either an error, or (last with tail set) the
// hand-over to the sequential reader.
func (z *gzipReader) split(jobs chan<- *gzMember) {
	send := func(j *gzMember, work bool) bool {
		select {
		case z.order <- j:
		case <-z.ctx.Done():
			return false
		}
		if work {
			select {
			case jobs <- j:
			case <-z.ctx.Done():
				return false
			}
		}
		return true
	}
	first := true
	for {
		hdr, err := z.br.Peek(omHeadLen)
		if len(hdr) == 0 && errors.Is(err, io.EOF) && !first {
			send(&gzMember{last: true, done: closed()}, false)
			return
		}
		first = false
		if len(hdr) < omHeadLen || !isOMHeader(hdr) {
			// A foreign member (or garbage, or a truncated one): hand the
			// rest to the sequential reader, which reports what is wrong.
			send(&gzMember{last: true, tail: []byte{}, done: closed()}, false)
			return
		}
		total := int(binary.LittleEndian.Uint32(hdr[16:]))
		usize := binary.LittleEndian.Uint32(hdr[20:])
		if total < omHeadLen+trailerLen || total > maxOMMember+maxOMMember/8+1024 || usize > maxOMMember {
			send(&gzMember{last: true, done: closed(), err: fmt.Errorf("%w: bad member size field", diskimage.ErrCorruptGzip)}, false)
			return
		}
		in := getBuf(total)
		n, err := io.ReadFull(z.br, in)
		if err != nil {
			if n < total && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				err = fmt.Errorf("%w: gzip member cut after %d of %d bytes", diskimage.ErrTruncated, n, total)
			}
			send(&gzMember{last: true, done: closed(), err: err}, false)
			return
		}
		j := &gzMember{in: in, done: make(chan struct{})}
		if !send(j, true) {
			return
		}
	}
}

func closed() chan struct{} { c := make(chan struct{}); close(c); return c }

// isOMHeader reports whether hdr starts a deflate gzip member with our "OM"
// extra field and no other optional fields.
func isOMHeader(h []byte) bool {
	return h[0] == 0x1f && h[1] == 0x8b && h[2] == 8 && h[3] == 0x04 &&
		binary.LittleEndian.Uint16(h[10:]) == 12 && h[12] == 'O' && h[13] == 'M' &&
		binary.LittleEndian.Uint16(h[14:]) == 8
}

// inflateMember inflates one of our members and checks its trailer: with
// inflateInto, or when that declines, with the streaming decoder fr, whose
// verdict stands.
func inflateMember(mi *memberInflater, fr *io.ReadCloser, j *gzMember) error {
	usize := int(binary.LittleEndian.Uint32(j.in[20:]))
	body := j.in[omHeadLen : len(j.in)-trailerLen]
	tr := j.in[len(j.in)-trailerLen:]
	wantCRC := binary.LittleEndian.Uint32(tr[0:])
	if int(binary.LittleEndian.Uint32(tr[4:])) != usize {
		return fmt.Errorf("%w: member size fields disagree", diskimage.ErrCorruptGzip)
	}
	out := getBuf(usize + 1)
	if n, err := inflateInto(mi, out[:usize], body); err != nil || n != usize {
		br := bytes.NewReader(body)
		if *fr == nil {
			*fr = flate.NewReader(br)
		} else if err := (*fr).(flate.Resetter).Reset(br, nil); err != nil {
			return err
		}
		n, err := io.ReadFull(*fr, out)
		if n != usize || err != io.ErrUnexpectedEOF && err != io.EOF {
			putBuf(j.in)
			j.in = nil
			putBuf(out)
			if err == nil {
				err = errors.New("member inflates to more than its size")
			}
			return fmt.Errorf("%w: %v", diskimage.ErrCorruptGzip, err)
		}
	}
	putBuf(j.in)
	j.in = nil
	out = out[:usize]
	if crc32.ChecksumIEEE(out) != wantCRC {
		return fmt.Errorf("%w: CRC mismatch", diskimage.ErrCorruptGzip)
	}
	j.out = out
	return nil
}

// Read returns inflated bytes in stream order.
func (z *gzipReader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if z.seq != nil {
		n, err := z.seq.Read(p)
		if err != nil {
			z.err = err
		}
		return n, err
	}
	for z.cur == nil || z.curOff == len(z.cur.out) {
		if z.cur != nil {
			z.release(z.cur.out)
			z.cur = nil
		}
		j, ok := <-z.order
		if !ok {
			z.err = z.ctx.Err()
			if z.err == nil {
				z.err = errors.New("diskread: gzip reader stopped")
			}
			return 0, z.err
		}
		<-j.done
		if j.err != nil {
			z.err = j.err
			return 0, z.err
		}
		if j.last {
			if j.tail == nil {
				z.err = io.EOF
				return 0, io.EOF
			}
			gr, err := gzip.NewReader(z.br)
			if err != nil {
				z.err = gzipErr(err)
				return 0, z.err
			}
			z.seq = z.readAhead(gr)
			return z.Read(p)
		}
		z.cur, z.curOff = j, 0
	}
	n := copy(p, z.cur.out[z.curOff:])
	z.curOff += n
	return n, nil
}

// gzipErr maps decoder errors to the diskimage error values.
func gzipErr(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: gzip stream ends early", diskimage.ErrTruncated)
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return fmt.Errorf("%w: %v", diskimage.ErrCorruptGzip, err)
	}
	var ce flate.CorruptInputError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %v", diskimage.ErrCorruptGzip, err)
	}
	return err
}

// release hands a consumed buffer to the hasher, or recycles it.
func (z *gzipReader) release(b []byte) {
	if z.hashed != nil {
		z.hashed <- b
		return
	}
	putBuf(b)
}

// Close stops the goroutines; once it returns, the image observer has seen
// every byte Read returned.
func (z *gzipReader) Close() error {
	z.cancel()
	go func() {
		for range z.order {
		}
	}()
	z.wg.Wait()
	if z.hashed != nil {
		close(z.hashed)
		<-z.hashDone
	}
	return nil
}

// bufPool recycles member buffers (about 1 MiB each): allocating and
// zeroing two per member showed in import profiles.
var bufPool sync.Pool

func getBuf(n int) []byte {
	if bp, ok := bufPool.Get().(*[]byte); ok && cap(*bp) >= n {
		return (*bp)[:n]
	}
	return make([]byte, n, max(n, 1<<20+1024))
}

func putBuf(b []byte) {
	if cap(b) >= 1<<20 && cap(b) <= 2*maxOMMember {
		b = b[:0]
		bufPool.Put(&b)
	}
}

// readAhead inflates a foreign gzip stream in its own goroutine, so that
// inflating (single-threaded by nature) overlaps hashing and decoding the
// image in the caller's goroutine.
func (z *gzipReader) readAhead(gr io.Reader) io.Reader {
	type chunk struct {
		b   []byte
		err error
	}
	// 32 chunks of read-ahead: inflating (one core at most, for a
	// foreign stream) goes on while the importer stores a full write-back
	// buffer (32 MiB) of blocks.
	ch := make(chan chunk, 32)
	z.wg.Add(1)
	go func() {
		defer z.wg.Done()
		defer close(ch)
		for {
			b := getBuf(1 << 20)
			n, err := readFull(gr, b)
			if err != nil && err != io.EOF {
				err = gzipErr(err)
			}
			select {
			case ch <- chunk{b[:n], err}:
			case <-z.ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return &chunkReader{release: z.release, next: func() ([]byte, error) {
		c, ok := <-ch
		if !ok {
			return nil, io.EOF
		}
		return c.b, c.err
	}}
}

// chunkReader reads a sequence of chunks, recycling each once consumed.
type chunkReader struct {
	next    func() ([]byte, error)
	release func([]byte) // of a consumed chunk
	cur     []byte
	off     int
	err     error
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for c.off == len(c.cur) {
		if c.cur != nil {
			c.release(c.cur)
			c.cur = nil
		}
		if c.err != nil {
			return 0, c.err
		}
		b, err := c.next()
		c.cur, c.off, c.err = b, 0, err
		if b == nil && err == nil {
			c.err = io.EOF
		}
	}
	n := copy(p, c.cur[c.off:])
	c.off += n
	return n, nil
}

// readFull is io.ReadFull that returns the reader's own error unchanged: a
// clean io.EOF after a short chunk is the end of the stream, while a gzip
// stream cut short reports io.ErrUnexpectedEOF itself.
func readFull(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
