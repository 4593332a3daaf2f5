package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startServer serves exports on a loopback port and shuts down at cleanup.
func startServer(tb testing.TB, exports Exports, opts ...Option) (string, *Server) {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if testing.Verbose() {
		opts = append([]Option{WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	}
	s := NewServer(exports, opts...)
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			tb.Errorf("Serve returned %v", err)
		}
	})
	return l.Addr().String(), s
}

func randBytes(n int, seed uint64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// expectClosed checks that the server dropped the connection.
func expectClosed(t *testing.T, c *testClient) {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c.br); err != nil {
		t.Fatalf("expected EOF, got %v", err)
	}
}

func TestReadWriteSimpleAndStructured(t *testing.T) {
	ex := newMemExports()
	d := ex.add("vol-1", newMemDisk(4<<20))
	addr, _ := startServer(t, ex)
	for _, structured := range []bool{false, true} {
		c := connect(t, addr, "vol-1", structured, false)
		if c.size != 4<<20 {
			t.Fatalf("size %d", c.size)
		}
		want := uint16(tflagHasFlags | tflagSendFlush | tflagSendFUA | tflagSendTrim | tflagSendWriteZeroes | tflagSendCache | tflagSendFastZero)
		if structured {
			want |= tflagSendDF
		}
		if c.flags != want {
			t.Fatalf("flags %#x, want %#x", c.flags, want)
		}
		data := randBytes(100_000, 1)
		if r := c.do(t, cmdFlagFUA, cmdWrite, 12345, uint32(len(data)), data); r.errno != 0 {
			t.Fatalf("write errno %d", r.errno)
		}
		got, r := c.readAt(t, 12345, uint32(len(data)))
		if r.errno != 0 || !bytes.Equal(got, data) {
			t.Fatalf("read back: errno %d, equal %v", r.errno, bytes.Equal(got, data))
		}
		if !bytes.Equal(d.bytes()[12345:12345+len(data)], data) {
			t.Fatal("disk content differs")
		}
		c.disconnect()
		expectClosed(t, c)
	}
	if d.flushes.Load() < 2 {
		t.Fatalf("FUA did not flush: %d flushes", d.flushes.Load())
	}
	waitFor(t, func() bool { return d.closes.Load() == d.opens.Load() })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}

func TestStructuredReadSendsHoles(t *testing.T) {
	ex := newMemExports()
	d := ex.add("vol-1", newMemDisk(8<<20))
	data := randBytes(memBlock, 2)
	d.fill(data, 2<<20)
	addr, _ := startServer(t, ex)
	c := connect(t, addr, "vol-1", true, false)

	d.bytesRead.Store(0)
	got, r := c.readAt(t, 1<<20, 4<<20)
	if r.errno != 0 {
		t.Fatalf("errno %d", r.errno)
	}
	if !bytes.Equal(got, d.bytes()[1<<20:5<<20]) {
		t.Fatal("content differs")
	}
	if r.holes != 2 || r.chunks != 3 {
		t.Fatalf("holes %d chunks %d, want 2 holes in 3 chunks", r.holes, r.chunks)
	}
	if n := d.bytesRead.Load(); n != memBlock {
		t.Fatalf("export read %d bytes, want only the data block", n)
	}

	// With DF, one data chunk carries everything.
	if err := c.request(cmdFlagDF, cmdRead, 9, 1<<20, 1<<20, nil); err != nil {
		t.Fatal(err)
	}
	r, err := c.readReply()
	if err != nil || r.errno != 0 || r.chunks != 1 || r.holes != 0 || r.covered != 1<<20 {
		t.Fatalf("DF read: %v %+v", err, r)
	}
}

func TestBlockStatus(t *testing.T) {
	ex := newMemExports()
	d := ex.add("vol-1", newMemDisk(1<<20))
	d.fill(randBytes(2*memBlock, 3), 4*memBlock) // data at [256K, 384K)
	addr, _ := startServer(t, ex)
	c := connect(t, addr, "vol-1", true, true)

	r := c.do(t, 0, cmdBlockStatus, 0, 1<<20, nil)
	want := [][2]uint32{{4 * memBlock, stateHole | stateZero}, {2 * memBlock, 0}, {10 * memBlock, stateHole | stateZero}}
	if r.errno != 0 || len(r.extents) != 3 {
		t.Fatalf("errno %d extents %v", r.errno, r.extents)
	}
	for i := range want {
		if r.extents[i] != want[i] {
			t.Fatalf("extents %v, want %v", r.extents, want)
		}
	}
	r = c.do(t, cmdFlagReqOne, cmdBlockStatus, 100, 1<<20-100, nil)
	if r.errno != 0 || len(r.extents) != 1 || r.extents[0] != [2]uint32{4*memBlock - 100, stateHole | stateZero} {
		t.Fatalf("REQ_ONE: errno %d extents %v", r.errno, r.extents)
	}
	// Unaligned range inside a data block.
	r = c.do(t, 0, cmdBlockStatus, 4*memBlock+10, 20, nil)
	if r.errno != 0 || len(r.extents) != 1 || r.extents[0] != [2]uint32{20, 0} {
		t.Fatalf("small: errno %d extents %v", r.errno, r.extents)
	}
	for _, tc := range []struct {
		off uint64
		n   uint32
	}{{0, 0}, {1 << 20, 1}, {0, 1<<20 + 1}, {1 << 62, 1}} {
		if r := c.do(t, 0, cmdBlockStatus, tc.off, tc.n, nil); r.errno != errInval {
			t.Fatalf("block status %d+%d: errno %d, want EINVAL", tc.off, tc.n, r.errno)
		}
	}

	// Without SET_META_CONTEXT block status is refused.
	c2 := connect(t, addr, "vol-1", true, false)
	if r := c2.do(t, 0, cmdBlockStatus, 0, 4096, nil); r.errno != errInval {
		t.Fatalf("block status without context: errno %d", r.errno)
	}
	// A context set for another export does not carry over.
	ex.add("vol-2", newMemDisk(4096))
	c3 := dialHandshake(t, addr, clientFixedNewstyle)
	c3.option(t, optStructuredReply, nil)
	c3.option(t, optSetMetaContext, metaData("vol-2", metaAllocation))
	c3.structured = true
	if rs := c3.option(t, optGo, infoData("vol-1")); rs[len(rs)-1].typ != repAck {
		t.Fatal("GO failed")
	}
	if r := c3.do(t, 0, cmdBlockStatus, 0, 4096, nil); r.errno != errInval {
		t.Fatalf("block status with context of another export: errno %d", r.errno)
	}
}

func TestErrorsAndRanges(t *testing.T) {
	ex := newMemExports()
	ex.add("vol-1", newMemDisk(1<<20))
	ro := ex.add("snap-1", newMemDisk(1<<20))
	ro.ro = true
	addr, _ := startServer(t, ex)
	for _, structured := range []bool{false, true} {
		c := connect(t, addr, "vol-1", structured, false)
		cases := []struct {
			name       string
			flags, typ uint16
			off        uint64
			n          uint32
			payload    []byte
			errno      uint32
		}{
			{"read past end", 0, cmdRead, 1 << 20, 1, nil, errInval},
			{"read overflow", 0, cmdRead, 1<<64 - 1, 2, nil, errInval},
			{"read too large", 0, cmdRead, 0, MaxRequestSize + 1, nil, errInval},
			{"read unknown flag", 1 << 9, cmdRead, 0, 1, nil, errInval},
			{"write past end", 0, cmdWrite, 1<<20 - 1, 2, []byte{1, 2}, errNoSpc},
			{"write with NO_HOLE", cmdFlagNoHole, cmdWrite, 0, 1, []byte{1}, errInval},
			{"trim past end", 0, cmdTrim, 1 << 20, 4096, nil, errInval},
			{"zeroes past end", 0, cmdWriteZeroes, 1 << 20, 4096, nil, errNoSpc},
			{"fast zero no hole", cmdFlagFastZero | cmdFlagNoHole, cmdWriteZeroes, 0, 4096, nil, errNotSup},
			{"unknown command", 0, 99, 0, 0, nil, errInval},
			{"cache ok", 0, cmdCache, 0, 4096, nil, 0},
			{"empty read", 0, cmdRead, 0, 0, nil, 0},
			{"empty write", 0, cmdWrite, 0, 0, nil, 0},
			{"flush", cmdFlagFUA, cmdFlush, 0, 0, nil, 0},
		}
		if !structured {
			cases = append(cases, struct {
				name       string
				flags, typ uint16
				off        uint64
				n          uint32
				payload    []byte
				errno      uint32
			}{"DF without structured", cmdFlagDF, cmdRead, 0, 1, nil, errInval})
		}
		for _, tc := range cases {
			if r := c.do(t, tc.flags, tc.typ, tc.off, tc.n, tc.payload); r.errno != tc.errno {
				t.Errorf("structured=%v %s: errno %d, want %d", structured, tc.name, r.errno, tc.errno)
			}
		}
		// The stream is still in sync.
		if r := c.do(t, 0, cmdWrite, 0, 3, []byte{7, 8, 9}); r.errno != 0 {
			t.Fatalf("write after errors: %d", r.errno)
		}

		rc := connect(t, addr, "snap-1", structured, false)
		if rc.flags&tflagReadOnly == 0 || rc.flags&tflagSendTrim != 0 {
			t.Fatalf("read-only flags %#x", rc.flags)
		}
		for _, typ := range []uint16{cmdWrite, cmdTrim, cmdWriteZeroes} {
			var p []byte
			if typ == cmdWrite {
				p = []byte{1}
			}
			if r := rc.do(t, 0, typ, 0, 1, p); r.errno != errPerm {
				t.Errorf("read-only command %d: errno %d, want EPERM", typ, r.errno)
			}
		}
		if _, r := rc.readAt(t, 0, 4096); r.errno != 0 {
			t.Fatalf("read on read-only: %d", r.errno)
		}
	}
	if ro.allocatedBytes() != 0 {
		t.Fatal("read-only export was written")
	}
}

func TestTrimAndWriteZeroes(t *testing.T) {
	ex := newMemExports()
	d := ex.add("vol-1", newMemDisk(1<<20))
	d.fill(bytes.Repeat([]byte{0xcd}, 1<<20), 0)
	addr, _ := startServer(t, ex)
	c := connect(t, addr, "vol-1", true, true)
	if r := c.do(t, 0, cmdTrim, 0, 2*memBlock, nil); r.errno != 0 {
		t.Fatal(r.errno)
	}
	if r := c.do(t, 0, cmdWriteZeroes, 2*memBlock, 2*memBlock, nil); r.errno != 0 {
		t.Fatal(r.errno)
	}
	if r := c.do(t, cmdFlagNoHole|cmdFlagFUA, cmdWriteZeroes, 4*memBlock, 2*memBlock, nil); r.errno != 0 {
		t.Fatal(r.errno)
	}
	if r := c.do(t, cmdFlagFastZero, cmdWriteZeroes, 6*memBlock, memBlock, nil); r.errno != 0 {
		t.Fatal(r.errno)
	}
	all := d.bytes()
	if !bytes.Equal(all[:7*memBlock], make([]byte, 7*memBlock)) || all[7*memBlock] != 0xcd {
		t.Fatal("zeroed range does not read as zeros")
	}
	for i, want := range []bool{false, false, false, false, true, true, false, true} {
		if got := d.allocated(int64(i) * memBlock); got != want {
			t.Errorf("block %d allocated=%v, want %v", i, got, want)
		}
	}
}

func TestNoZeroesAndExportName(t *testing.T) {
	ex := newMemExports()
	ex.add("vol-1", newMemDisk(8192))
	addr, _ := startServer(t, ex)
	for _, noZeroes := range []bool{false, true} {
		flags := clientFixedNewstyle
		if noZeroes {
			flags |= clientNoZeroes
		}
		c := dialHandshake(t, addr, flags)
		c.sendOpt(optExportName, []byte("vol-1"))
		n := 10 + 124
		if noZeroes {
			n = 10
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(c.br, b); err != nil {
			t.Fatal(err)
		}
		if binary.BigEndian.Uint64(b) != 8192 || !bytes.Equal(b[10:], make([]byte, n-10)) {
			t.Fatalf("export name reply %x", b)
		}
		if _, r := c.readAt(t, 0, 512); r.errno != 0 || len(r.data) != 512 {
			t.Fatalf("read after EXPORT_NAME: %+v", r)
		}
	}
	// Unknown export with EXPORT_NAME: the server can only hang up.
	c := dialHandshake(t, addr, clientFixedNewstyle)
	c.sendOpt(optExportName, []byte("vol-none"))
	expectClosed(t, c)
	// Non-fixed newstyle client: EXPORT_NAME works, other options hang up.
	c = dialHandshake(t, addr, 0)
	c.sendOpt(optList, nil)
	expectClosed(t, c)
}

func TestOptions(t *testing.T) {
	ex := newMemExports()
	ex.add("vol-a", newMemDisk(4096))
	ex.add("vol-b", newMemDisk(8192))
	addr, _ := startServer(t, ex)
	c := dialHandshake(t, addr, clientFixedNewstyle|clientNoZeroes)

	rs := c.option(t, optList, nil)
	var names []string
	for _, r := range rs[:len(rs)-1] {
		if r.typ != repServer {
			t.Fatalf("list reply %#x", r.typ)
		}
		names = append(names, string(r.data[4:4+binary.BigEndian.Uint32(r.data)]))
	}
	if len(names) != 2 || names[0] != "vol-a" || names[1] != "vol-b" || rs[len(rs)-1].typ != repAck {
		t.Fatalf("list: %v", names)
	}
	expect := func(opt uint32, data []byte, typ uint32) []optReply {
		t.Helper()
		rs := c.option(t, opt, data)
		if got := rs[len(rs)-1].typ; got != typ {
			t.Fatalf("option %d: final reply %#x, want %#x", opt, got, typ)
		}
		return rs
	}
	expect(optList, []byte{1}, repErrInvalid)
	expect(optStartTLS, nil, repErrUnsup)
	expect(4, nil, repErrUnsup)  // PEEK_EXPORT
	expect(11, nil, repErrUnsup) // EXTENDED_HEADERS
	expect(0xdeadbeef, []byte("x"), repErrUnsup)
	expect(optInfo, infoData("vol-none"), repErrUnknown)
	expect(optInfo, []byte{0, 0, 0, 9, 'a'}, repErrInvalid)
	expect(optInfo, append(infoData("vol-a"), 0), repErrInvalid)
	expect(optGo, []byte{0xff, 0xff, 0xff, 0xff, 0, 0}, repErrInvalid)
	expect(optSetMetaContext, metaData("vol-a", metaAllocation), repErrInvalid) // before STRUCTURED_REPLY
	expect(optStructuredReply, []byte{0}, repErrInvalid)

	// Oversized option data is skipped and refused, and the stream survives.
	big := make([]byte, maxOptionLen+1)
	expect(optInfo, big, repErrTooBig)

	rs = expect(optInfo, infoData("vol-b", infoBlockSize, infoName), repAck)
	var gotExport, gotBlock, gotName bool
	for _, r := range rs[:len(rs)-1] {
		switch binary.BigEndian.Uint16(r.data) {
		case infoExport:
			gotExport = binary.BigEndian.Uint64(r.data[2:]) == 8192
		case infoBlockSize:
			gotBlock = binary.BigEndian.Uint32(r.data[2:]) == 1 && binary.BigEndian.Uint32(r.data[6:]) == 4096 && binary.BigEndian.Uint32(r.data[10:]) == MaxRequestSize
		case infoName:
			gotName = string(r.data[2:]) == "vol-b"
		}
	}
	if !gotExport || !gotBlock || !gotName {
		t.Fatalf("info replies: export %v block %v name %v", gotExport, gotBlock, gotName)
	}

	expect(optStructuredReply, nil, repAck)
	rs = expect(optListMetaContext, metaData("vol-a"), repAck)
	if len(rs) != 2 || string(rs[0].data[4:]) != metaAllocation {
		t.Fatalf("list meta context: %+v", rs)
	}
	rs = expect(optListMetaContext, metaData("vol-a", "base:", "qemu:dirty-bitmap:x"), repAck)
	if len(rs) != 2 || string(rs[0].data[4:]) != metaAllocation {
		t.Fatalf("list meta context base: %+v", rs)
	}
	expect(optListMetaContext, metaData("vol-a", "nocolon"), repErrInvalid)
	expect(optListMetaContext, metaData("vol-none"), repErrUnknown)
	expect(optListMetaContext, metaData("vol-a")[:6], repErrInvalid)
	rs = expect(optSetMetaContext, metaData("vol-a", "base:", "x-other:thing"), repAck)
	if len(rs) != 1 {
		t.Fatalf("set with no match selected something: %+v", rs)
	}
	rs = expect(optSetMetaContext, metaData("vol-a", metaAllocation, metaAllocation), repAck)
	if len(rs) != 2 || binary.BigEndian.Uint32(rs[0].data) != metaAllocationID {
		t.Fatalf("set meta context: %+v", rs)
	}

	expect(optAbort, nil, repAck)
	expectClosed(t, c)
}

func TestMalformedHandshake(t *testing.T) {
	ex := newMemExports()
	ex.add("vol-1", newMemDisk(4096))
	addr, _ := startServer(t, ex)

	c := dialHandshake(t, addr, 1<<5) // unknown client flag
	expectClosed(t, c)

	c = dialHandshake(t, addr, clientFixedNewstyle)
	c.writeRaw([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	expectClosed(t, c)

	c = dialHandshake(t, addr, clientFixedNewstyle)
	c.writeRaw(binary.BigEndian.AppendUint64(nil, magicOpt)[:5])
	c.nc.(*net.TCPConn).CloseWrite()
	expectClosed(t, c)
}

func TestMalformedTransmission(t *testing.T) {
	ex := newMemExports()
	ex.add("vol-1", newMemDisk(1<<20))
	addr, _ := startServer(t, ex)

	c := connect(t, addr, "vol-1", true, false)
	c.writeRaw(bytes.Repeat([]byte{0x42}, 28))
	expectClosed(t, c)

	// A write larger than the maximum request cannot be skipped: hang up.
	c = connect(t, addr, "vol-1", false, false)
	c.request(0, cmdWrite, 1, 0, MaxRequestSize+1, nil)
	expectClosed(t, c)

	// Truncated payload then EOF.
	c = connect(t, addr, "vol-1", false, false)
	c.request(0, cmdWrite, 1, 0, 4096, make([]byte, 100))
	c.nc.(*net.TCPConn).CloseWrite()
	expectClosed(t, c)
}

// gateExport blocks every ReadAt until `need` reads are in progress at once,
// proving that the server serves pipelined requests concurrently.
type gateExport struct {
	*memExport
	need    int32
	cur     atomic.Int32
	maxSeen atomic.Int32
	once    sync.Once
	open    chan struct{}
	hold    time.Duration
}

func (g *gateExport) ReadAt(ctx context.Context, p []byte, off int64) error {
	n := g.cur.Add(1)
	defer g.cur.Add(-1)
	for {
		m := g.maxSeen.Load()
		if n <= m || g.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if n >= g.need {
		g.once.Do(func() { close(g.open) })
	}
	select {
	case <-g.open:
	case <-time.After(g.hold):
	}
	return g.memExport.ReadAt(ctx, p, off)
}

type gateExports struct {
	*memExports
	gate *gateExport
}

func (g gateExports) Open(ctx context.Context, name string) (Export, error) {
	e, err := g.memExports.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	g.gate.memExport = e.(*memExport)
	return g.gate, nil
}

func TestPipelinedRequestsRunConcurrently(t *testing.T) {
	ex := newMemExports()
	d := ex.add("vol-1", newMemDisk(1<<20))
	content := randBytes(1<<20, 4)
	d.fill(content, 0)
	gate := &gateExport{need: 8, open: make(chan struct{}), hold: 10 * time.Second}
	addr, _ := startServer(t, gateExports{ex, gate})
	c := connect(t, addr, "vol-1", true, false)

	const n = 64
	go func() {
		for i := range n {
			c.request(0, cmdRead, uint64(i), uint64(i)*4096, 4096, nil)
		}
	}()
	seen := map[uint64]bool{}
	start := time.Now()
	for range n {
		r, err := c.readReply()
		if err != nil {
			t.Fatal(err)
		}
		if r.errno != 0 || !bytes.Equal(r.data, content[r.cookie*4096:r.cookie*4096+4096]) {
			t.Fatalf("reply %d: errno %d, wrong data", r.cookie, r.errno)
		}
		seen[r.cookie] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct replies", len(seen))
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("reads were not served concurrently (gate timed out)")
	}
}

func TestInFlightBound(t *testing.T) {
	ex := newMemExports()
	ex.add("vol-1", newMemDisk(1<<20))
	gate := &gateExport{need: 1 << 30, open: make(chan struct{}), hold: 20 * time.Millisecond}
	addr, _ := startServer(t, gateExports{ex, gate}, WithMaxInFlight(3, 1<<20))
	c := connect(t, addr, "vol-1", false, false)
	const n = 20
	go func() {
		for i := range n {
			c.request(0, cmdRead, uint64(i), 0, 4096, nil)
		}
	}()
	for range n {
		if r, err := c.readReply(); err != nil || r.errno != 0 {
			t.Fatalf("%v %+v", err, r)
		}
	}
	if m := gate.maxSeen.Load(); m != 3 {
		t.Fatalf("max concurrent reads %d, want 3", m)
	}
}

// slowExport delays writes so that Shutdown finds a request in flight.
type slowExports struct {
	*memExports
	started chan struct{}
}

type slowExport struct {
	*memExport
	started chan struct{}
}

func (s slowExports) Open(ctx context.Context, name string) (Export, error) {
	e, err := s.memExports.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return slowExport{e.(*memExport), s.started}, nil
}

func (s slowExport) WriteAt(ctx context.Context, p []byte, off int64) error {
	close(s.started)
	time.Sleep(200 * time.Millisecond)
	return s.memExport.WriteAt(ctx, p, off)
}

func TestShutdownFinishesInFlight(t *testing.T) {
	ex := newMemExports()
	d := ex.add("vol-1", newMemDisk(1<<20))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	s := NewServer(slowExports{ex, started})
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	idle := dialHandshake(t, l.Addr().String(), clientFixedNewstyle) // still negotiating
	c := connect(t, l.Addr().String(), "vol-1", false, false)
	if err := c.request(0, cmdWrite, 1, 0, 4, []byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := c.readReply()
	if err != nil || r.errno != 0 {
		t.Fatalf("in-flight write not answered: %v %+v", err, r)
	}
	expectClosed(t, c)
	expectClosed(t, idle)
	if !bytes.Equal(d.bytes()[:4], []byte{1, 2, 3, 4}) {
		t.Fatal("write lost")
	}
	if d.flushes.Load() != 1 || d.closes.Load() != 1 {
		t.Fatalf("flushes %d closes %d, want 1 and 1", d.flushes.Load(), d.closes.Load())
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

func TestCheckListenAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		tls  bool
		ok   bool
	}{
		{"127.0.0.1:10809", false, true},
		{"127.1.2.3:10809", false, true},
		{"[::1]:10809", false, true},
		{"localhost:10809", false, true},
		{":10809", false, false},
		{"0.0.0.0:10809", false, false},
		{"[::]:10809", false, false},
		{"192.168.1.5:10809", false, false},
		{"example.com:10809", false, false},
		{"192.168.1.5:10809", true, true},
		{":10809", true, true},
		{"nonsense", false, false},
		{"nonsense", true, false},
	} {
		err := CheckListenAddr(tc.addr, tc.tls)
		if (err == nil) != tc.ok {
			t.Errorf("CheckListenAddr(%q, %v) = %v", tc.addr, tc.tls, err)
		}
	}
}
