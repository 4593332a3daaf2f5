package diskread

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/omiproject/omi/diskimage"
)

// DecodeAt decodes the image held by ra (size bytes), for sources with
// random access such as an object read with ranged GETs. An uncompressed
// qcow2 image is read by following its metadata wherever it lies, so any
// valid layout works with no buffering, in guest order; gzip and raw
// sources are read forward as by Decode. Observer.Input sees the source
// bytes read forward only; a random-access qcow2 decode does not read the
// whole file, so the caller hashes it separately if it needs a digest.
func DecodeAt(ctx context.Context, ra io.ReaderAt, size int64, opts Options, obs Observer, start func(Info) error, write WriteFunc) (Stats, error) {
	var magic [4]byte
	if n, _ := ra.ReadAt(magic[:], 0); n < 4 || binary.BigEndian.Uint32(magic[:]) != qcowMagic {
		return Decode(ctx, io.NewSectionReader(ra, 0, size), opts, obs, start, write)
	}
	first := make([]byte, min(size, qcowV3Len+8))
	if n, err := ra.ReadAt(first, 0); n < len(first) {
		return Stats{}, truncated(orEOF(err), int64(n))
	}
	h, err := parseHeader(first)
	if err != nil {
		return Stats{}, err
	}
	if opts.DeclaredSize > 0 && h.size > opts.DeclaredSize {
		return Stats{}, fmt.Errorf("%w: virtual size %d, declared %d", diskimage.ErrTooLarge, h.size, opts.DeclaredSize)
	}
	if err := start(Info{Format: diskimage.FormatQcow2, Size: h.size}); err != nil {
		return Stats{}, err
	}
	rd := func(p []byte, off int64, short bool) ([]byte, error) {
		if off >= size {
			return nil, truncated(io.EOF, off)
		}
		n, err := ra.ReadAt(p, off)
		if n == len(p) {
			return p, nil
		}
		if short && n > 0 && (err == nil || errors.Is(err, io.EOF)) {
			return p[:n], nil
		}
		return nil, truncated(orEOF(err), off+int64(n))
	}
	l1 := make([]byte, h.l1Size*8)
	if _, err := rd(l1, h.l1Offset, false); err != nil {
		return Stats{}, err
	}
	inf := &inflater{h: h}
	defer inf.close()
	l2 := make([]byte, h.cs())
	data := make([]byte, chunkSize)
	cl := make([]byte, h.cs())
	var comp []byte
	// run is a pending read of host-contiguous data clusters.
	var runHost, runGuest, runLen int64
	flush := func() error {
		for done := int64(0); done < runLen; {
			k := min(runLen-done, chunkSize)
			b, err := rd(data[:k], runHost+done, false)
			if err != nil {
				return err
			}
			if !isZero(b) {
				if err := write(runGuest+done, b); err != nil {
					return err
				}
			}
			done += k
		}
		runLen = 0
		return nil
	}
	for i := int64(0); i < h.l1Size; i++ {
		if err := ctx.Err(); err != nil {
			return Stats{}, err
		}
		off, err := h.l1Entry(binary.BigEndian.Uint64(l1[i*8:]))
		if err != nil {
			return Stats{}, err
		}
		if off == 0 {
			continue
		}
		if _, err := rd(l2, off, false); err != nil {
			return Stats{}, err
		}
		base := i * h.l2Entries() * h.cs()
		for j := int64(0); j < h.l2Entries(); j++ {
			g := base + j*h.cs()
			if g >= h.size {
				break
			}
			c, ok, err := h.l2Entry(binary.BigEndian.Uint64(l2[j*8:]))
			if err != nil {
				return Stats{}, err
			}
			if !ok {
				continue
			}
			length := min(h.cs(), h.size-g)
			if !c.comp && runLen > 0 && runHost+runLen == c.host && runGuest+runLen == g && runLen < 4*chunkSize {
				runLen += length
				continue
			}
			if err := flush(); err != nil {
				return Stats{}, err
			}
			if !c.comp {
				runHost, runGuest, runLen = c.host, g, length
				continue
			}
			if int64(cap(comp)) < c.length {
				comp = make([]byte, c.length)
			}
			b, err := rd(comp[:c.length], c.host, true)
			if err != nil {
				return Stats{}, err
			}
			if err := inf.inflate(b, cl); err != nil {
				return Stats{}, err
			}
			if !isZero(cl[:length]) {
				if err := write(g, cl[:length]); err != nil {
					return Stats{}, err
				}
			}
		}
		if err := flush(); err != nil {
			return Stats{}, err
		}
	}
	return Stats{ImageBytes: size, InputBytes: size}, nil
}

func orEOF(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}
