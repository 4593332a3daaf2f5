package diskread

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/flate"

	"github.com/omiproject/omi/diskimage"
)

// refInflate is the streaming decoder's answer for src: the output and
// whether it decodes cleanly to exactly size bytes.
func refInflate(src []byte, size int) ([]byte, bool) {
	fr := flate.NewReader(bytes.NewReader(src))
	out := make([]byte, size+1)
	n, err := io.ReadFull(fr, out)
	return out[:n], n == size && (err == io.EOF || err == io.ErrUnexpectedEOF)
}

// inflateSamples are inputs of every shape deflate encoders produce from a
// disk: text, runs, random bytes, mixes, empty.
func inflateSamples() [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 300<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte("the image service stores blocks by their SHA-256\n"), 9000)
	mixed := append(append(append([]byte{}, text[:100<<10]...), random[:70<<10]...), make([]byte, 80<<10)...)
	words := make([]byte, 0, 256<<10)
	for len(words) < 256<<10 {
		words = append(words, []byte([]string{"ext4 ", "inode ", "block ", "\x00\x00\x00\x00", "journal ", "\x7fELF"}[rng.IntN(6)])...)
	}
	return [][]byte{{}, {42}, text, random, mixed, words, make([]byte, 1<<20), bytes.Repeat([]byte{1, 2, 3}, 1<<18)}
}

func TestInflateIntoMatchesStreaming(t *testing.T) {
	var d memberInflater
	for si, data := range inflateSamples() {
		for _, level := range []int{flate.HuffmanOnly, flate.NoCompression, 1, 2, 5, 9} {
			var buf bytes.Buffer
			fw, _ := flate.NewWriter(&buf, level)
			fw.Write(data)
			fw.Close()
			dst := make([]byte, len(data))
			n, err := inflateInto(&d, dst, buf.Bytes())
			if err != nil || n != len(data) || !bytes.Equal(dst, data) {
				t.Fatalf("sample %d level %d: n %d of %d, err %v, equal %v", si, level, n, len(data), err, bytes.Equal(dst[:n], data[:min(n, len(data))]))
			}
			// A stream cut anywhere, or one byte flipped, either fails or
			// gives what the streaming decoder gives.
			comp := buf.Bytes()
			rng := rand.New(rand.NewPCG(uint64(si), uint64(level+3)))
			for range 20 {
				bad := append([]byte{}, comp...)
				if len(bad) > 0 {
					if rng.IntN(2) == 0 {
						bad = bad[:rng.IntN(len(bad))]
					} else {
						bad[rng.IntN(len(bad))] ^= byte(1 + rng.IntN(255))
					}
				}
				checkAgainstRef(t, &d, bad, len(data))
			}
		}
	}
}

func checkAgainstRef(t testing.TB, d *memberInflater, src []byte, size int) {
	dst := make([]byte, size)
	n, err := inflateInto(d, dst, src)
	if err != nil {
		return // the caller falls back to the streaming decoder
	}
	want, ok := refInflate(src, size)
	if n == size && (!ok || !bytes.Equal(dst, want)) {
		t.Fatalf("inflateInto accepted %d bytes the streaming decoder gives as ok=%v, equal=%v", n, ok, bytes.Equal(dst, want))
	}
}

// FuzzInflateInto: whatever inflateInto accepts, the streaming decoder
// decodes to the same bytes.
func FuzzInflateInto(f *testing.F) {
	for _, data := range inflateSamples()[:6] {
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, 1)
		fw.Write(data[:min(len(data), 4096)])
		fw.Close()
		f.Add(buf.Bytes(), uint16(min(len(data), 4096)))
	}
	f.Add([]byte{0x01, 0x03, 0x00, 0xfc, 0xff, 'a', 'b', 'c'}, uint16(3))
	f.Fuzz(func(t *testing.T, src []byte, size uint16) {
		var d memberInflater
		checkAgainstRef(t, &d, src, int(size))
	})
}

func BenchmarkInflateInto(b *testing.B) {
	data := inflateSamples()[5]
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, 1)
	fw.Write(data)
	fw.Close()
	comp := buf.Bytes()
	dst := make([]byte, len(data))
	b.Run("inflateInto", func(b *testing.B) {
		var d memberInflater
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			inflateInto(&d, dst, comp)
		}
	})
	b.Run("flate.Reader", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		fr := flate.NewReader(bytes.NewReader(comp))
		for b.Loop() {
			fr.(flate.Resetter).Reset(bytes.NewReader(comp), nil)
			io.ReadFull(fr, dst)
		}
	})
}

// TestInflateIntoOurMembers: every member of our own exports decodes on the
// fast path (no fallback to the streaming decoder) to what its CRC says.
func TestInflateIntoOurMembers(t *testing.T) {
	obj := exportBytes(t, content(24<<20, 7), diskimage.FormatQcow2, true)
	var d memberInflater
	members := 0
	for off := 0; off < len(obj); {
		if !isOMHeader(obj[off:]) {
			t.Fatalf("no member at %d", off)
		}
		total := int(binary.LittleEndian.Uint32(obj[off+16:]))
		usize := int(binary.LittleEndian.Uint32(obj[off+20:]))
		m := obj[off : off+total]
		dst := make([]byte, usize)
		n, err := inflateInto(&d, dst, m[omHeadLen:total-trailerLen])
		if err != nil || n != usize {
			t.Fatalf("member at %d: %d of %d bytes, %v", off, n, usize, err)
		}
		if crc32.ChecksumIEEE(dst) != binary.LittleEndian.Uint32(m[total-trailerLen:]) {
			t.Fatalf("member at %d: CRC mismatch", off)
		}
		members++
		off += total
	}
	if members < 8 {
		t.Fatalf("only %d members", members)
	}
}
