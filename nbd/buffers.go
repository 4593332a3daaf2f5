package nbd

import (
	"math/bits"
	"sync"
)

// Request buffers come from size-class pools (powers of two from 4 KiB to
// MaxRequestSize), so that a stream of 32 MiB requests does not allocate 32 MiB
// each time.
const (
	minBufShift = 12
	maxBufShift = 25 // log2(MaxRequestSize)
)

var bufPools [maxBufShift - minBufShift + 1]sync.Pool

func bufClass(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// getBuf returns a buffer of length n (n <= MaxRequestSize).
func getBuf(n int) *[]byte {
	c := bufClass(n)
	if v := bufPools[c].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(c+minBufShift))
	return &b
}

func putBuf(b *[]byte) {
	if b == nil {
		return
	}
	c := bufClass(cap(*b))
	if cap(*b) != 1<<(c+minBufShift) {
		return
	}
	bufPools[c].Put(b)
}

// zeroBuf is written for NBD_CMD_FLAG_NO_HOLE zeroing; nobody writes into it.
var zeroBuf = make([]byte, 1<<20)

// budget bounds how many requests of one connection are in flight and how
// many bytes of data they hold. The reader blocks on it, which pushes back on
// the client through TCP. A request larger than the byte bound may still run
// when nothing else is in flight, so the bound can never deadlock.
type budget struct {
	mu       sync.Mutex
	cond     sync.Cond
	n, maxN  int
	used, mx int64
}

func newBudget(maxN int, maxBytes int64) *budget {
	b := &budget{maxN: maxN, mx: maxBytes}
	b.cond.L = &b.mu
	return b
}

func (b *budget) acquire(size int64) {
	b.mu.Lock()
	for b.n >= b.maxN || (b.n > 0 && b.used+size > b.mx) {
		b.cond.Wait()
	}
	b.n++
	b.used += size
	b.mu.Unlock()
}

func (b *budget) release(size int64) {
	b.mu.Lock()
	b.n--
	b.used -= size
	b.mu.Unlock()
	b.cond.Broadcast()
}
