package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"sync"
)

// request is one decoded transmission request.
type request struct {
	flags  uint16
	typ    uint16
	cookie uint64
	off    uint64
	length uint32
	buf    *[]byte // WRITE payload
}

// transmit reads requests until the client disconnects, the stream breaks or
// the server stops, serving each in its own goroutine within the connection's
// budget. It then waits for in-flight requests, flushes if anything was
// written since the last flush, and closes the export.
func (c *conn) transmit(exp Export, log *slog.Logger) {
	ctx := c.srv.ctx
	b := newBudget(c.srv.maxInFlight, c.srv.maxInFlightBytes)
	var wg sync.WaitGroup
	var h [requestHeaderLen]byte
loop:
	for {
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			if !c.stopping.Load() && !errors.Is(err, io.EOF) {
				log.Debug("nbd: read request", "err", err)
			}
			break
		}
		if m := binary.BigEndian.Uint32(h[0:]); m != magicRequest {
			log.Debug("nbd: bad request magic, disconnecting", "magic", m)
			break
		}
		r := &request{
			flags:  binary.BigEndian.Uint16(h[4:]),
			typ:    binary.BigEndian.Uint16(h[6:]),
			cookie: binary.BigEndian.Uint64(h[8:]),
			off:    binary.BigEndian.Uint64(h[16:]),
			length: binary.BigEndian.Uint32(h[24:]),
		}
		var cost int64
		switch r.typ {
		case cmdDisc:
			break loop
		case cmdWrite:
			if r.length > MaxRequestSize {
				// The payload cannot be skipped cheaply; proto.md allows a
				// hard disconnect for oversized write payloads.
				log.Debug("nbd: write larger than the maximum, disconnecting", "length", r.length)
				break loop
			}
			cost = int64(r.length)
		case cmdRead:
			if r.length <= MaxRequestSize {
				cost = int64(r.length)
			}
		}
		b.acquire(cost)
		if r.typ == cmdWrite {
			r.buf = getBuf(int(r.length))
			if _, err := io.ReadFull(c.br, *r.buf); err != nil {
				putBuf(r.buf)
				b.release(cost)
				log.Debug("nbd: read write payload", "err", err)
				break loop
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer b.release(cost)
			c.handle(ctx, r)
		}()
	}
	wg.Wait()
	if c.dirty.Load() {
		if err := exp.Flush(ctx); err != nil {
			log.Warn("nbd: flush on disconnect", "export", c.name, "err", err)
		}
	}
	if err := exp.Close(); err != nil {
		log.Warn("nbd: close export", "export", c.name, "err", err)
	}
}

// inRange reports whether [off, off+length) lies within the export.
func (c *conn) inRange(off uint64, length uint32) bool {
	return off <= uint64(c.size) && uint64(length) <= uint64(c.size)-off
}

func (c *conn) handle(ctx context.Context, r *request) {
	switch r.typ {
	case cmdRead:
		c.handleRead(ctx, r)
	case cmdBlockStatus:
		c.handleBlockStatus(ctx, r)
	default:
		errno := c.execute(ctx, r)
		putBuf(r.buf)
		c.replyStatus(r.cookie, errno)
	}
}

// execute runs a command whose reply carries no data and returns its error
// value.
func (c *conn) execute(ctx context.Context, r *request) uint32 {
	off, n := int64(r.off), int64(r.length)
	switch r.typ {
	case cmdWrite:
		if r.flags&^cmdFlagFUA != 0 {
			return errInval
		}
		if c.readOnly {
			return errPerm
		}
		if !c.inRange(r.off, r.length) {
			return errNoSpc
		}
		if n == 0 {
			return 0
		}
		if err := c.exp.WriteAt(ctx, *r.buf, off); err != nil {
			return c.fail("write", off, n, err)
		}
		return c.written(ctx, r)
	case cmdFlush:
		if r.flags&^cmdFlagFUA != 0 {
			return errInval
		}
		return c.flush(ctx)
	case cmdTrim:
		if r.flags&^cmdFlagFUA != 0 {
			return errInval
		}
		if c.readOnly {
			return errPerm
		}
		if !c.inRange(r.off, r.length) {
			return errInval
		}
		if n == 0 {
			return 0
		}
		if err := c.exp.Trim(ctx, off, n); err != nil {
			return c.fail("trim", off, n, err)
		}
		return c.written(ctx, r)
	case cmdWriteZeroes:
		if r.flags&^(cmdFlagFUA|cmdFlagNoHole|cmdFlagFastZero) != 0 {
			return errInval
		}
		if c.readOnly {
			return errPerm
		}
		if !c.inRange(r.off, r.length) {
			return errNoSpc
		}
		if r.flags&cmdFlagNoHole != 0 {
			if r.flags&cmdFlagFastZero != 0 {
				// Provisioning means writing every byte: not fast.
				return errNotSup
			}
			for done := int64(0); done < n; {
				k := min(n-done, int64(len(zeroBuf)))
				if err := c.exp.WriteAt(ctx, zeroBuf[:k], off+done); err != nil {
					return c.fail("write zeroes", off, n, err)
				}
				done += k
			}
		} else if n > 0 {
			if err := c.exp.WriteZeroes(ctx, off, n); err != nil {
				return c.fail("write zeroes", off, n, err)
			}
		}
		return c.written(ctx, r)
	case cmdCache:
		if r.flags&^cmdFlagFUA != 0 || !c.inRange(r.off, r.length) {
			return errInval
		}
		return 0
	}
	return errInval
}

// written records a completed write and honours FUA.
func (c *conn) written(ctx context.Context, r *request) uint32 {
	c.dirty.Store(true)
	if r.flags&cmdFlagFUA != 0 {
		return c.flush(ctx)
	}
	return 0
}

func (c *conn) flush(ctx context.Context) uint32 {
	// Clear first: a write completing during the flush sets it again and is
	// flushed on disconnect if no later flush covers it.
	c.dirty.Store(false)
	if err := c.exp.Flush(ctx); err != nil {
		c.dirty.Store(true)
		return c.fail("flush", 0, 0, err)
	}
	return 0
}

func (c *conn) fail(op string, off, n int64, err error) uint32 {
	errno := errnoOf(err)
	if errno != errShutdown {
		c.srv.log.Warn("nbd: "+op, "export", c.name, "off", off, "length", n, "err", err)
	}
	return errno
}

// replyStatus answers a command without data: a simple reply, or an error
// chunk carrying a message when structured replies are on.
func (c *conn) replyStatus(cookie uint64, errno uint32) {
	if errno != 0 && c.structured {
		c.replyError(cookie, errno)
		return
	}
	var h [16]byte
	binary.BigEndian.PutUint32(h[0:], magicSimple)
	binary.BigEndian.PutUint32(h[4:], errno)
	binary.BigEndian.PutUint64(h[8:], cookie)
	c.send(h[:])
}

// replyError sends a final NBD_REPLY_TYPE_ERROR chunk.
func (c *conn) replyError(cookie uint64, errno uint32) {
	msg := errText(errno)
	b := make([]byte, 20+6+len(msg))
	putChunkHeader(b, replyFlagDone, replyError, cookie, uint32(6+len(msg)))
	binary.BigEndian.PutUint32(b[20:], errno)
	binary.BigEndian.PutUint16(b[24:], uint16(len(msg)))
	copy(b[26:], msg)
	c.send(b)
}

func putChunkHeader(b []byte, flags, typ uint16, cookie uint64, length uint32) {
	binary.BigEndian.PutUint32(b[0:], magicStructured)
	binary.BigEndian.PutUint16(b[4:], flags)
	binary.BigEndian.PutUint16(b[6:], typ)
	binary.BigEndian.PutUint64(b[8:], cookie)
	binary.BigEndian.PutUint32(b[16:], length)
}

// send writes one whole reply made of the given pieces. A write failure
// means the client is gone: the connection is closed so the reader stops.
func (c *conn) send(parts ...[]byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, p := range parts {
		if _, err := c.bw.Write(p); err != nil {
			c.raw.Close()
			return
		}
	}
	if err := c.bw.Flush(); err != nil {
		c.raw.Close()
	}
}

// run is a stretch of an export that is either data or a hole.
type run struct {
	off, length int64
	hole        bool
}

// errStopWalk ends an Extents walk early without being an error.
var errStopWalk = errors.New("stop")

// errBadExtents reports an Export whose Extents broke its contract.
var errBadExtents = errors.New("nbd: Extents returned runs out of order")

// extents walks [off, off+n) and returns at most maxRuns runs, merging
// neighbours of the same kind. The runs cover the range from off without
// gaps; they may stop short when maxRuns is reached or the walk ends early.
func (c *conn) extents(ctx context.Context, off, n int64, maxRuns int) ([]run, error) {
	end := off + n
	pos := off
	var runs []run
	err := c.exp.Extents(ctx, off, n, func(o, l int64, hole bool) error {
		if o != pos || l <= 0 {
			return errBadExtents
		}
		l = min(l, end-o)
		if k := len(runs); k > 0 && runs[k-1].hole == hole {
			runs[k-1].length += l
		} else {
			if k == maxRuns {
				return errStopWalk
			}
			runs = append(runs, run{o, l, hole})
		}
		pos += l
		if pos >= end {
			return errStopWalk
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopWalk) {
		return nil, err
	}
	return runs, nil
}

// minHoleChunk is the smallest hole sent as NBD_REPLY_TYPE_OFFSET_HOLE;
// smaller holes travel as zeros inside data chunks, which costs less than
// the extra chunks.
const minHoleChunk = 4096

// maxReadChunks bounds the chunks of one structured READ reply.
const maxReadChunks = 256

func (c *conn) handleRead(ctx context.Context, r *request) {
	errno := uint32(0)
	switch {
	case r.flags&^(cmdFlagFUA|cmdFlagDF) != 0 || (r.flags&cmdFlagDF != 0 && !c.structured):
		errno = errInval
	case r.length > MaxRequestSize:
		errno = errInval
	case !c.inRange(r.off, r.length):
		errno = errInval
	}
	if errno != 0 {
		c.replyReadError(r.cookie, errno)
		return
	}
	off, n := int64(r.off), int64(r.length)
	if n == 0 {
		if c.structured {
			var h [20]byte
			putChunkHeader(h[:], replyFlagDone, replyNone, r.cookie, 0)
			c.send(h[:])
		} else {
			c.replyStatus(r.cookie, 0)
		}
		return
	}

	// Decide which parts are holes: only worth it when the reply can say so.
	runs := []run{{off, n, false}}
	if c.structured && r.flags&cmdFlagDF == 0 {
		if rs, err := c.extents(ctx, off, n, maxReadChunks); err == nil && len(rs) > 0 {
			runs = coalesceRead(rs, off+n)
		} else if err != nil {
			c.srv.log.Debug("nbd: extents for read", "export", c.name, "err", err)
		}
	}

	buf := getBuf(int(n))
	defer putBuf(buf)
	p := *buf
	for _, rn := range runs {
		if rn.hole {
			continue
		}
		if err := c.exp.ReadAt(ctx, p[rn.off-off:rn.off-off+rn.length], rn.off); err != nil {
			c.replyReadError(r.cookie, c.fail("read", rn.off, rn.length, err))
			return
		}
	}

	if !c.structured {
		var h [16]byte
		binary.BigEndian.PutUint32(h[0:], magicSimple)
		binary.BigEndian.PutUint64(h[8:], r.cookie)
		c.send(h[:], p)
		return
	}
	parts := make([][]byte, 0, 2*len(runs))
	for i, rn := range runs {
		var flags uint16
		if i == len(runs)-1 {
			flags = replyFlagDone
		}
		if rn.hole {
			b := make([]byte, 20+12)
			putChunkHeader(b, flags, replyOffsetHole, r.cookie, 12)
			binary.BigEndian.PutUint64(b[20:], uint64(rn.off))
			binary.BigEndian.PutUint32(b[28:], uint32(rn.length))
			parts = append(parts, b)
			continue
		}
		b := make([]byte, 20+8)
		putChunkHeader(b, flags, replyOffsetData, r.cookie, uint32(8+rn.length))
		binary.BigEndian.PutUint64(b[20:], uint64(rn.off))
		parts = append(parts, b, p[rn.off-off:rn.off-off+rn.length])
	}
	c.send(parts...)
}

// coalesceRead turns small holes into data, merges neighbouring data runs,
// and extends the last run to end when the walk stopped short.
func coalesceRead(rs []run, end int64) []run {
	out := rs[:0:0]
	for _, rn := range rs {
		if rn.hole && rn.length < minHoleChunk {
			rn.hole = false
		}
		if k := len(out); k > 0 && out[k-1].hole == rn.hole {
			out[k-1].length += rn.length
			continue
		}
		out = append(out, rn)
	}
	last := &out[len(out)-1]
	if covered := last.off + last.length; covered < end {
		if last.hole {
			out = append(out, run{covered, end - covered, false})
		} else {
			last.length = end - last.off
		}
	}
	return out
}

// replyReadError answers a READ with an error; with structured replies on,
// proto.md forbids a simple reply to READ.
func (c *conn) replyReadError(cookie uint64, errno uint32) {
	if c.structured {
		c.replyError(cookie, errno)
		return
	}
	c.replyStatus(cookie, errno)
}

// maxStatusDescriptors bounds one BLOCK_STATUS reply; clients ask again from
// where the reply stopped.
const maxStatusDescriptors = 4096

func (c *conn) handleBlockStatus(ctx context.Context, r *request) {
	switch {
	case !c.structured:
		c.replyStatus(r.cookie, errInval)
		return
	case !c.blockStatus, r.flags&^(cmdFlagFUA|cmdFlagReqOne) != 0, r.length == 0, !c.inRange(r.off, r.length):
		c.replyError(r.cookie, errInval)
		return
	}
	maxRuns := maxStatusDescriptors
	if r.flags&cmdFlagReqOne != 0 {
		maxRuns = 1
	}
	runs, err := c.extents(ctx, int64(r.off), int64(r.length), maxRuns)
	if err == nil && len(runs) == 0 {
		err = errBadExtents
	}
	if err != nil {
		c.replyError(r.cookie, c.fail("block status", int64(r.off), int64(r.length), err))
		return
	}
	b := make([]byte, 20+4+8*len(runs))
	putChunkHeader(b, replyFlagDone, replyBlockStatus, r.cookie, uint32(4+8*len(runs)))
	binary.BigEndian.PutUint32(b[20:], metaAllocationID)
	for i, rn := range runs {
		var st uint32
		if rn.hole {
			st = stateHole | stateZero
		}
		binary.BigEndian.PutUint32(b[24+8*i:], uint32(rn.length))
		binary.BigEndian.PutUint32(b[28+8*i:], st)
	}
	c.send(b)
}
