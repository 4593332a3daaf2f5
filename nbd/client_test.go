package nbd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// testClient is a minimal NBD client for tests and benchmarks: enough of
// the handshake to reach transmission, and a reply reader that reassembles
// simple and structured replies of pipelined requests.
type testClient struct {
	nc   net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex
	bw   *bufio.Writer
	size int64

	flags      uint16
	structured bool
	scratch    []byte // when set, READ replies land here (benchmarks: no per-reply allocation)

	mu      sync.Mutex
	reads   map[uint64][2]uint64 // READ offset and length by cookie
	pending map[uint64]*testReply
}

type testReply struct {
	cookie  uint64
	errno   uint32
	data    []byte
	extents [][2]uint32 // BLOCK_STATUS descriptors (length, flags)
	holes   int
	chunks  int
	base    uint64 // READ offset
	covered int    // bytes covered by content chunks
	outside bool   // a content chunk fell outside the request
}

type optReply struct {
	opt, typ uint32
	data     []byte
}

// dialHandshake connects and completes the initial exchange.
func dialHandshake(tb testing.TB, addr string, clientFlags uint32) *testClient {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	c := &testClient{
		nc:      nc,
		br:      bufio.NewReaderSize(nc, 1<<20),
		bw:      bufio.NewWriterSize(nc, 1<<20),
		reads:   make(map[uint64][2]uint64),
		pending: make(map[uint64]*testReply),
	}
	var hello [18]byte
	if _, err := io.ReadFull(c.br, hello[:]); err != nil {
		tb.Fatal(err)
	}
	if binary.BigEndian.Uint64(hello[0:]) != magicInit || binary.BigEndian.Uint64(hello[8:]) != magicOpt {
		tb.Fatalf("bad greeting %x", hello)
	}
	if hf := binary.BigEndian.Uint16(hello[16:]); hf != flagFixedNewstyle|flagNoZeroes {
		tb.Fatalf("handshake flags %#x", hf)
	}
	c.writeRaw(binary.BigEndian.AppendUint32(nil, clientFlags))
	return c
}

func (c *testClient) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.bw.Write(b); err != nil {
		return err
	}
	return c.bw.Flush()
}

func (c *testClient) sendOpt(opt uint32, data []byte) error {
	b := binary.BigEndian.AppendUint64(nil, magicOpt)
	b = binary.BigEndian.AppendUint32(b, opt)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return c.writeRaw(append(b, data...))
}

func (c *testClient) readOpt() (optReply, error) {
	var h [20]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return optReply{}, err
	}
	if m := binary.BigEndian.Uint64(h[0:]); m != magicOptReply {
		return optReply{}, fmt.Errorf("bad option reply magic %#x", m)
	}
	r := optReply{opt: binary.BigEndian.Uint32(h[8:]), typ: binary.BigEndian.Uint32(h[12:])}
	r.data = make([]byte, binary.BigEndian.Uint32(h[16:]))
	_, err := io.ReadFull(c.br, r.data)
	return r, err
}

// option sends an option and collects replies up to the final one.
func (c *testClient) option(tb testing.TB, opt uint32, data []byte) []optReply {
	tb.Helper()
	if err := c.sendOpt(opt, data); err != nil {
		tb.Fatal(err)
	}
	var out []optReply
	for {
		r, err := c.readOpt()
		if err != nil {
			tb.Fatalf("option %d: %v", opt, err)
		}
		if r.opt != opt {
			tb.Fatalf("reply for option %d, want %d", r.opt, opt)
		}
		out = append(out, r)
		if r.typ == repAck || r.typ&(1<<31) != 0 {
			return out
		}
	}
}

func infoData(name string, reqs ...uint16) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(reqs)))
	for _, r := range reqs {
		b = binary.BigEndian.AppendUint16(b, r)
	}
	return b
}

func metaData(name string, queries ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(queries)))
	for _, q := range queries {
		b = binary.BigEndian.AppendUint32(b, uint32(len(q)))
		b = append(b, q...)
	}
	return b
}

// connect dials, negotiates and enters transmission with NBD_OPT_GO.
func connect(tb testing.TB, addr, name string, structured, meta bool) *testClient {
	tb.Helper()
	c := dialHandshake(tb, addr, clientFixedNewstyle|clientNoZeroes)
	if structured {
		if rs := c.option(tb, optStructuredReply, nil); rs[0].typ != repAck {
			tb.Fatalf("structured reply: %#x", rs[0].typ)
		}
		c.structured = true
	}
	if meta {
		rs := c.option(tb, optSetMetaContext, metaData(name, metaAllocation))
		if len(rs) != 2 || rs[0].typ != repMetaContext || rs[1].typ != repAck {
			tb.Fatalf("set meta context: %+v", rs)
		}
	}
	rs := c.option(tb, optGo, infoData(name, infoBlockSize))
	last := rs[len(rs)-1]
	if last.typ != repAck {
		tb.Fatalf("GO %q: reply %#x %q", name, last.typ, last.data)
	}
	for _, r := range rs[:len(rs)-1] {
		if r.typ == repInfo && binary.BigEndian.Uint16(r.data) == infoExport {
			c.size = int64(binary.BigEndian.Uint64(r.data[2:]))
			c.flags = binary.BigEndian.Uint16(r.data[10:])
		}
	}
	return c
}

// request sends one request (with payload for WRITE).
func (c *testClient) request(flags, typ uint16, cookie, off uint64, length uint32, payload []byte) error {
	if typ == cmdRead {
		c.mu.Lock()
		c.reads[cookie] = [2]uint64{off, uint64(length)}
		c.mu.Unlock()
	}
	var h [requestHeaderLen]byte
	binary.BigEndian.PutUint32(h[0:], magicRequest)
	binary.BigEndian.PutUint16(h[4:], flags)
	binary.BigEndian.PutUint16(h[6:], typ)
	binary.BigEndian.PutUint64(h[8:], cookie)
	binary.BigEndian.PutUint64(h[16:], off)
	binary.BigEndian.PutUint32(h[24:], length)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.bw.Write(h[:]); err != nil {
		return err
	}
	if _, err := c.bw.Write(payload); err != nil {
		return err
	}
	return c.bw.Flush()
}

// readReply returns the next completed reply.
func (c *testClient) readReply() (*testReply, error) {
	for {
		var m [4]byte
		if _, err := io.ReadFull(c.br, m[:]); err != nil {
			return nil, err
		}
		switch binary.BigEndian.Uint32(m[:]) {
		case magicSimple:
			var h [12]byte
			if _, err := io.ReadFull(c.br, h[:]); err != nil {
				return nil, err
			}
			r := &testReply{errno: binary.BigEndian.Uint32(h[0:]), cookie: binary.BigEndian.Uint64(h[4:])}
			c.mu.Lock()
			rd, isRead := c.reads[r.cookie]
			delete(c.reads, r.cookie)
			c.mu.Unlock()
			if isRead && r.errno == 0 {
				r.data = make([]byte, rd[1])
				if _, err := io.ReadFull(c.br, r.data); err != nil {
					return nil, err
				}
			}
			return r, nil
		case magicStructured:
			var h [16]byte
			if _, err := io.ReadFull(c.br, h[:]); err != nil {
				return nil, err
			}
			flags := binary.BigEndian.Uint16(h[0:])
			typ := binary.BigEndian.Uint16(h[2:])
			cookie := binary.BigEndian.Uint64(h[4:])
			length := binary.BigEndian.Uint32(h[12:])
			c.mu.Lock()
			r := c.pending[cookie]
			if r == nil {
				r = &testReply{cookie: cookie}
				if rd, ok := c.reads[cookie]; ok {
					r.base = rd[0]
					if uint64(len(c.scratch)) >= rd[1] {
						r.data = c.scratch[:rd[1]]
					} else {
						r.data = make([]byte, rd[1])
					}
				}
				c.pending[cookie] = r
			}
			c.mu.Unlock()
			r.chunks++
			if typ == replyOffsetData && length >= 8 {
				// Read data straight into place: the benchmarks use this path.
				var ob [8]byte
				if _, err := io.ReadFull(c.br, ob[:]); err != nil {
					return nil, err
				}
				off, n := binary.BigEndian.Uint64(ob[:]), uint64(length-8)
				if off < r.base || off-r.base+n > uint64(len(r.data)) {
					return nil, fmt.Errorf("data chunk %d+%d outside the request", off, n)
				}
				if _, err := io.ReadFull(c.br, r.data[off-r.base:off-r.base+n]); err != nil {
					return nil, err
				}
				r.covered += int(n)
				typ = replyNone
				length = 0
			}
			payload := make([]byte, length)
			if _, err := io.ReadFull(c.br, payload); err != nil {
				return nil, err
			}
			switch typ {
			case replyNone:
			case replyOffsetHole:
				off := binary.BigEndian.Uint64(payload)
				r.place(off, make([]byte, binary.BigEndian.Uint32(payload[8:])))
				r.holes++
			case replyBlockStatus:
				for p := payload[4:]; len(p) >= 8; p = p[8:] {
					r.extents = append(r.extents, [2]uint32{binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])})
				}
			case replyError:
				r.errno = binary.BigEndian.Uint32(payload)
			default:
				return nil, fmt.Errorf("unexpected chunk type %d", typ)
			}
			if flags&replyFlagDone != 0 {
				c.mu.Lock()
				delete(c.pending, cookie)
				delete(c.reads, cookie)
				c.mu.Unlock()
				return r, nil
			}
		default:
			return nil, errors.New("bad reply magic")
		}
	}
}

// place stores a content chunk; it fails the reply (EIO-like marker) if the
// chunk falls outside the request.
func (r *testReply) place(off uint64, p []byte) {
	if off < r.base || off-r.base+uint64(len(p)) > uint64(len(r.data)) {
		r.outside = true
		return
	}
	copy(r.data[off-r.base:], p)
	r.covered += len(p)
}

// do sends one request and waits for its reply (no pipelining).
func (c *testClient) do(tb testing.TB, flags, typ uint16, off uint64, length uint32, payload []byte) *testReply {
	tb.Helper()
	if err := c.request(flags, typ, 7, off, length, payload); err != nil {
		tb.Fatal(err)
	}
	r, err := c.readReply()
	if err != nil {
		tb.Fatalf("reply to command %d: %v", typ, err)
	}
	if r.cookie != 7 {
		tb.Fatalf("cookie %d", r.cookie)
	}
	return r
}

// readAt reads through the client and checks that structured chunks cover
// exactly the request.
func (c *testClient) readAt(tb testing.TB, off uint64, n uint32) ([]byte, *testReply) {
	tb.Helper()
	r := c.do(tb, 0, cmdRead, off, n, nil)
	if r.errno != 0 {
		return nil, r
	}
	if c.structured && (r.outside || r.covered != int(n)) {
		tb.Fatalf("read %d+%d: chunks covered %d bytes (outside=%v)", off, n, r.covered, r.outside)
	}
	return r.data, r
}

func (c *testClient) disconnect() {
	c.request(0, cmdDisc, 0, 0, 0, nil)
}
