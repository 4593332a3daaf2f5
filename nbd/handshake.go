package nbd

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxOptions bounds the options one client may send before choosing an
// export; a client that keeps negotiating is treated as a denial of service.
const maxOptions = 4096

// conn is one client connection: option negotiation, then transmission.
type conn struct {
	srv *Server
	raw net.Conn // the TCP connection; deadlines and hard close go here
	br  *bufio.Reader
	bw  *bufio.Writer
	wmu sync.Mutex // serialises replies during transmission

	stopping atomic.Bool

	// Negotiation state.
	fixed      bool
	noZeroes   bool
	tls        bool
	structured bool
	metaSet    bool   // base:allocation selected
	metaExport string // export the selection was made for

	// Transmission state.
	name        string
	exp         Export
	size        int64
	readOnly    bool
	blockStatus bool
	dirty       atomic.Bool // writes since the last successful flush
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		srv: s,
		raw: nc,
		br:  bufio.NewReaderSize(nc, 64<<10),
		bw:  bufio.NewWriterSize(nc, 64<<10),
	}
}

// stop makes the connection stop reading: negotiation fails at once, the
// transmission loop stops taking requests and lets in-flight ones finish.
func (c *conn) stop() {
	c.stopping.Store(true)
	c.raw.SetReadDeadline(time.Now())
}

func (c *conn) serve() {
	defer c.raw.Close()
	log := c.srv.log.With("remote", c.raw.RemoteAddr().String())
	c.raw.SetDeadline(time.Now().Add(c.srv.handshakeTimeout))
	if c.stopping.Load() {
		return
	}
	exp, err := c.negotiate()
	if err != nil {
		log.Debug("nbd: negotiation ended", "err", err)
		return
	}
	if exp == nil {
		return
	}
	c.raw.SetDeadline(time.Time{})
	if c.stopping.Load() {
		exp.Close()
		return
	}
	log.Debug("nbd: transmission", "export", c.name, "size", c.size, "structured", c.structured, "block_status", c.blockStatus)
	c.transmit(exp, log)
}

// negotiate runs the fixed newstyle handshake and option haggling. It returns
// the chosen export, or nil when the client aborted, or an error when the
// connection must be dropped.
func (c *conn) negotiate() (Export, error) {
	var hello [18]byte
	binary.BigEndian.PutUint64(hello[0:], magicInit)
	binary.BigEndian.PutUint64(hello[8:], magicOpt)
	binary.BigEndian.PutUint16(hello[16:], flagFixedNewstyle|flagNoZeroes)
	if _, err := c.bw.Write(hello[:]); err != nil {
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	var cf [4]byte
	if _, err := io.ReadFull(c.br, cf[:]); err != nil {
		return nil, fmt.Errorf("client flags: %w", err)
	}
	flags := binary.BigEndian.Uint32(cf[:])
	if flags&^(clientFixedNewstyle|clientNoZeroes) != 0 {
		return nil, fmt.Errorf("unknown client flags %#x", flags)
	}
	c.fixed = flags&clientFixedNewstyle != 0
	c.noZeroes = flags&clientNoZeroes != 0

	for n := 0; ; n++ {
		if n >= maxOptions {
			return nil, errors.New("too many options")
		}
		var h [16]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return nil, fmt.Errorf("option header: %w", err)
		}
		if m := binary.BigEndian.Uint64(h[0:]); m != magicOpt {
			return nil, fmt.Errorf("bad option magic %#x", m)
		}
		opt := binary.BigEndian.Uint32(h[8:])
		length := binary.BigEndian.Uint32(h[12:])
		if !c.fixed && opt != optExportName {
			return nil, fmt.Errorf("option %d from a non-fixed-newstyle client", opt)
		}
		if length > maxOptionLen {
			if opt == optExportName {
				return nil, errors.New("export name too long")
			}
			if _, err := io.CopyN(io.Discard, c.br, int64(length)); err != nil {
				return nil, fmt.Errorf("option data: %w", err)
			}
			if err := c.optReply(opt, repErrTooBig, []byte("option data too large")); err != nil {
				return nil, err
			}
			if err := c.bw.Flush(); err != nil {
				return nil, err
			}
			continue
		}
		data := make([]byte, length)
		if _, err := io.ReadFull(c.br, data); err != nil {
			return nil, fmt.Errorf("option data: %w", err)
		}
		exp, done, err := c.option(opt, data)
		if err != nil || done {
			return exp, err
		}
		if err := c.bw.Flush(); err != nil {
			return nil, err
		}
	}
}

// option handles one option. done reports that negotiation is over: exp is
// then the chosen export, or nil after NBD_OPT_ABORT.
func (c *conn) option(opt uint32, data []byte) (exp Export, done bool, err error) {
	if c.srv.tlsConfig != nil && !c.tls {
		switch opt {
		case optStartTLS, optAbort:
		case optExportName:
			return nil, true, errors.New("NBD_OPT_EXPORT_NAME before TLS")
		default:
			return nil, false, c.optReply(opt, repErrTLSReqd, []byte("TLS required"))
		}
	}
	switch opt {
	case optExportName:
		exp, err := c.optExportName(data)
		return exp, true, err
	case optAbort:
		c.optReply(opt, repAck, nil)
		c.bw.Flush()
		return nil, true, nil
	case optList:
		return nil, false, c.optList(data)
	case optStartTLS:
		return nil, false, c.optStartTLS(data)
	case optInfo, optGo:
		exp, err := c.optInfo(opt, data)
		return exp, exp != nil, err
	case optStructuredReply:
		if len(data) != 0 {
			return nil, false, c.optReply(opt, repErrInvalid, []byte("unexpected option data"))
		}
		c.structured = true
		return nil, false, c.optReply(opt, repAck, nil)
	case optListMetaContext, optSetMetaContext:
		return nil, false, c.optMetaContext(opt, data)
	}
	return nil, false, c.optReply(opt, repErrUnsup, []byte("option not supported"))
}

// optReply buffers one option reply; negotiate flushes after each option.
func (c *conn) optReply(opt, typ uint32, data []byte) error {
	var h [20]byte
	binary.BigEndian.PutUint64(h[0:], magicOptReply)
	binary.BigEndian.PutUint32(h[8:], opt)
	binary.BigEndian.PutUint32(h[12:], typ)
	binary.BigEndian.PutUint32(h[16:], uint32(len(data)))
	if _, err := c.bw.Write(h[:]); err != nil {
		return err
	}
	_, err := c.bw.Write(data)
	return err
}

// open opens an export and works out how it is advertised.
func (c *conn) open(name string) (Export, error) {
	exp, err := c.srv.exports.Open(c.srv.ctx, name)
	if err != nil {
		return nil, err
	}
	if exp == nil {
		return nil, fmt.Errorf("export %q: %w", name, ErrUnknownExport)
	}
	if exp.Size() < 0 {
		exp.Close()
		return nil, fmt.Errorf("export %q has negative size", name)
	}
	return exp, nil
}

// openReply maps an open failure to an option error reply.
func (c *conn) openFailed(opt uint32, name string, err error) error {
	if errors.Is(err, ErrUnknownExport) {
		return c.optReply(opt, repErrUnknown, []byte("unknown export"))
	}
	if c.stopping.Load() {
		return c.optReply(opt, repErrShutdown, []byte("server is shutting down"))
	}
	if errors.Is(err, ErrExportBusy) {
		return c.optReply(opt, repErrPolicy, []byte(err.Error()))
	}
	c.srv.log.Warn("nbd: open export", "export", name, "err", err)
	return c.optReply(opt, repErrPolicy, []byte("export unavailable"))
}

// transmissionFlags computes the flags advertised for exp and records the
// read-only state.
func (c *conn) transmissionFlags(exp Export) uint16 {
	ro := c.srv.readOnly
	if r, ok := exp.(ReadOnlyExport); ok && r.ReadOnly() {
		ro = true
	}
	f := tflagHasFlags | tflagSendFlush | tflagSendFUA | tflagSendCache
	if ro {
		f |= tflagReadOnly
	} else {
		f |= tflagSendTrim | tflagSendWriteZeroes | tflagSendFastZero
	}
	if c.structured {
		f |= tflagSendDF
	}
	return f
}

func (c *conn) enter(name string, exp Export) {
	c.name = name
	c.exp = exp
	c.size = exp.Size()
	c.readOnly = c.transmissionFlags(exp)&tflagReadOnly != 0
	c.blockStatus = c.structured && c.metaSet && c.metaExport == name
}

func (c *conn) optExportName(data []byte) (Export, error) {
	if len(data) > maxStringLen {
		return nil, errors.New("export name too long")
	}
	name := string(data)
	exp, err := c.open(name)
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", name, err)
	}
	flags := c.transmissionFlags(exp)
	var b [10 + 124]byte
	binary.BigEndian.PutUint64(b[0:], uint64(exp.Size()))
	binary.BigEndian.PutUint16(b[8:], flags)
	n := len(b)
	if c.noZeroes {
		n = 10
	}
	if _, err := c.bw.Write(b[:n]); err != nil {
		exp.Close()
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		exp.Close()
		return nil, err
	}
	c.enter(name, exp)
	return exp, nil
}

func (c *conn) optList(data []byte) error {
	if len(data) != 0 {
		return c.optReply(optList, repErrInvalid, []byte("unexpected option data"))
	}
	names, err := c.srv.exports.List(c.srv.ctx)
	if err != nil {
		c.srv.log.Warn("nbd: list exports", "err", err)
		return c.optReply(optList, repErrPolicy, []byte("cannot list exports"))
	}
	for _, name := range names {
		if len(name) > maxStringLen {
			continue
		}
		b := make([]byte, 4+len(name))
		binary.BigEndian.PutUint32(b, uint32(len(name)))
		copy(b[4:], name)
		if err := c.optReply(optList, repServer, b); err != nil {
			return err
		}
	}
	return c.optReply(optList, repAck, nil)
}

func (c *conn) optStartTLS(data []byte) error {
	if c.srv.tlsConfig == nil {
		return c.optReply(optStartTLS, repErrUnsup, []byte("TLS not configured"))
	}
	if c.tls {
		return c.optReply(optStartTLS, repErrInvalid, []byte("TLS already negotiated"))
	}
	if len(data) != 0 {
		return c.optReply(optStartTLS, repErrInvalid, []byte("unexpected option data"))
	}
	if err := c.optReply(optStartTLS, repAck, nil); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	if c.br.Buffered() > 0 {
		return errors.New("client sent data before the TLS handshake")
	}
	tc := tls.Server(c.raw, c.srv.tlsConfig)
	if err := tc.HandshakeContext(c.srv.ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.tls = true
	c.br = bufio.NewReaderSize(tc, 64<<10)
	c.bw = bufio.NewWriterSize(tc, 64<<10)
	// proto.md: no negotiation state survives STARTTLS.
	c.structured, c.metaSet, c.metaExport = false, false, ""
	return nil
}

// optInfo answers NBD_OPT_INFO and NBD_OPT_GO. For a successful GO it returns
// the opened export.
func (c *conn) optInfo(opt uint32, data []byte) (Export, error) {
	if len(data) < 6 {
		return nil, c.optReply(opt, repErrInvalid, []byte("option data too short"))
	}
	nl := binary.BigEndian.Uint32(data)
	if uint64(nl) > uint64(len(data)-6) || nl > maxStringLen {
		return nil, c.optReply(opt, repErrInvalid, []byte("bad name length"))
	}
	name := string(data[4 : 4+nl])
	rest := data[4+nl:]
	nreq := int(binary.BigEndian.Uint16(rest))
	if len(rest)-2 != 2*nreq {
		return nil, c.optReply(opt, repErrInvalid, []byte("bad information request list"))
	}
	wantName := false
	for i := range nreq {
		if binary.BigEndian.Uint16(rest[2+2*i:]) == infoName {
			wantName = true
		}
	}
	exp, err := c.open(name)
	if err != nil {
		return nil, c.openFailed(opt, name, err)
	}
	var ie [12]byte
	binary.BigEndian.PutUint16(ie[0:], infoExport)
	binary.BigEndian.PutUint64(ie[2:], uint64(exp.Size()))
	binary.BigEndian.PutUint16(ie[10:], c.transmissionFlags(exp))
	var bs [14]byte
	binary.BigEndian.PutUint16(bs[0:], infoBlockSize)
	binary.BigEndian.PutUint32(bs[2:], minBlockSize)
	binary.BigEndian.PutUint32(bs[6:], preferredBlockSize)
	binary.BigEndian.PutUint32(bs[10:], MaxRequestSize)
	err = c.optReply(opt, repInfo, ie[:])
	if err == nil {
		err = c.optReply(opt, repInfo, bs[:])
	}
	if err == nil && wantName {
		err = c.optReply(opt, repInfo, append([]byte{0, byte(infoName)}, name...))
	}
	if err == nil {
		err = c.optReply(opt, repAck, nil)
	}
	if err == nil && opt == optGo {
		err = c.bw.Flush()
	}
	if err != nil || opt == optInfo {
		exp.Close()
		return nil, err
	}
	c.enter(name, exp)
	return exp, nil
}

// optMetaContext answers NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT. Only base:allocation exists.
func (c *conn) optMetaContext(opt uint32, data []byte) error {
	if opt == optSetMetaContext {
		// proto.md: the selection is replaced even when the option fails.
		c.metaSet, c.metaExport = false, ""
	}
	if !c.structured {
		return c.optReply(opt, repErrInvalid, []byte("structured replies not negotiated"))
	}
	name, queries, ok := parseMetaRequest(data)
	if !ok {
		return c.optReply(opt, repErrInvalid, []byte("malformed request"))
	}
	selected := opt == optListMetaContext && len(queries) == 0
	for _, q := range queries {
		ns, leaf, found := strings.Cut(q, ":")
		if !found || ns == "" {
			return c.optReply(opt, repErrInvalid, []byte("query without namespace"))
		}
		if ns != "base" {
			continue
		}
		if leaf == "allocation" || (leaf == "" && opt == optListMetaContext) {
			selected = true
		}
	}
	exp, err := c.open(name)
	if err != nil {
		return c.openFailed(opt, name, err)
	}
	exp.Close()
	if selected {
		var id uint32
		if opt == optSetMetaContext {
			id = metaAllocationID
			c.metaSet, c.metaExport = true, name
		}
		b := make([]byte, 4+len(metaAllocation))
		binary.BigEndian.PutUint32(b, id)
		copy(b[4:], metaAllocation)
		if err := c.optReply(opt, repMetaContext, b); err != nil {
			return err
		}
	}
	return c.optReply(opt, repAck, nil)
}

// parseMetaRequest splits the data of a meta context option: export name,
// then a counted list of queries, all length-prefixed and exactly filling data.
func parseMetaRequest(data []byte) (name string, queries []string, ok bool) {
	next := func() (string, bool) {
		if len(data) < 4 {
			return "", false
		}
		n := binary.BigEndian.Uint32(data)
		if uint64(n) > uint64(len(data)-4) || n > maxStringLen {
			return "", false
		}
		s := string(data[4 : 4+n])
		data = data[4+n:]
		return s, true
	}
	name, ok = next()
	if !ok || len(data) < 4 {
		return "", nil, false
	}
	nq := binary.BigEndian.Uint32(data)
	data = data[4:]
	if uint64(nq)*4 > uint64(len(data)) {
		return "", nil, false
	}
	for range nq {
		q, ok := next()
		if !ok {
			return "", nil, false
		}
		queries = append(queries, q)
	}
	return name, queries, len(data) == 0
}
