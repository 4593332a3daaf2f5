package nbd

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose client side is a fixed byte script; what
// the server writes is discarded.
type scriptConn struct {
	r *bytes.Reader
}

func (s *scriptConn) Read(p []byte) (int, error)       { return s.r.Read(p) }
func (s *scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (s *scriptConn) Close() error                     { return nil }
func (s *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *scriptConn) SetDeadline(time.Time) error      { return nil }
func (s *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (s *scriptConn) SetWriteDeadline(time.Time) error { return nil }

type script struct{ b []byte }

func (s *script) u16(v uint16) *script { s.b = binary.BigEndian.AppendUint16(s.b, v); return s }
func (s *script) u32(v uint32) *script { s.b = binary.BigEndian.AppendUint32(s.b, v); return s }
func (s *script) u64(v uint64) *script { s.b = binary.BigEndian.AppendUint64(s.b, v); return s }
func (s *script) opt(opt uint32, data []byte) *script {
	s.u64(magicOpt).u32(opt).u32(uint32(len(data)))
	s.b = append(s.b, data...)
	return s
}
func (s *script) req(flags, typ uint16, off uint64, n uint32, payload []byte) *script {
	s.u32(magicRequest).u16(flags).u16(typ).u64(1).u64(off).u32(n)
	s.b = append(s.b, payload...)
	return s
}

// FuzzServerConn feeds arbitrary client bytes to one server connection: the
// handshake and option parser first, then, when the input gets that far,
// the transmission loop. It must never panic or hang.
func FuzzServerConn(f *testing.F) {
	full := (&script{}).u32(clientFixedNewstyle|clientNoZeroes).
		opt(optList, nil).
		opt(optStructuredReply, nil).
		opt(optListMetaContext, metaData("vol-1")).
		opt(optSetMetaContext, metaData("vol-1", metaAllocation)).
		opt(optInfo, infoData("vol-1", infoBlockSize, infoName)).
		opt(optGo, infoData("vol-1", infoBlockSize)).
		req(0, cmdWrite, 4096, 8, []byte("abcdefgh")).
		req(0, cmdRead, 0, 8192, nil).
		req(cmdFlagReqOne, cmdBlockStatus, 0, 1<<20, nil).
		req(cmdFlagNoHole, cmdWriteZeroes, 0, 4096, nil).
		req(0, cmdTrim, 0, 65536, nil).
		req(0, cmdFlush, 0, 0, nil).
		req(0, cmdDisc, 0, 0, nil)
	f.Add(full.b)
	simple := (&script{}).u32(clientFixedNewstyle).
		opt(optExportName, []byte("vol-1")).
		req(cmdFlagFUA, cmdWrite, 0, 4, []byte{1, 2, 3, 4}).
		req(0, cmdRead, 0, 4, nil)
	f.Add(simple.b)
	f.Add((&script{}).u32(clientFixedNewstyle).opt(optGo, []byte{0, 0, 0, 200, 1}).b)
	f.Add((&script{}).u32(0).opt(optList, nil).b)
	f.Add([]byte("garbage"))

	ex := newMemExports()
	ex.add("vol-1", newMemDisk(1<<20))
	srv := NewServer(ex, WithMaxInFlight(4, 4<<20))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := newConn(srv, &scriptConn{r: bytes.NewReader(in)})
		done := make(chan struct{})
		go func() {
			c.serve()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection did not end at end of input")
		}
	})
}

var _ io.Reader = (*scriptConn)(nil)
