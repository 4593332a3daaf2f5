package blockmap

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The write log keeps every write a Device acknowledged since its last
// successful Flush in a file, so that the death of the process (a kill, a
// crash, an OOM) does not lose it while the client goes on.
//
// Why it is needed: an NBD client such as QEMU reconnects to a restarted
// server and resends what was in flight, so the guest never learns that the
// server died. Writes acknowledged by the old process but still in its
// memory buffer would vanish while the guest believes them on disk, and
// the next FLUSH, answered by the new process, would "cover" them. A
// journalling file system then writes a commit block over journal blocks
// that were never stored, and its recovery drops that transaction and
// every later one: synced files disappear.
//
// Each record is appended (one write(2), no fsync) before the write is
// acknowledged: the page cache keeps it when the process dies. A power
// loss may lose unsynced records, which NBD allows (the client dies too).
// Flush rotates the log before writing the buffer back, and deletes the
// older logs once the map naming their data is saved. Opening a map with
// logs left replays them in order and saves the result before anything
// reads it.
//
// Record: kind (1 byte), offset (8), length (8), CRC-32C of the kind,
// offset, length and data (4), then length bytes of data for a write. A
// torn or corrupt record ends the replay of its file: it was never
// acknowledged.

// WithWriteLog makes Devices log acknowledged writes under dir until they
// are flushed (see the write log above), so a process that dies loses no
// write it acknowledged. dir must be local to this process's machine and
// used by one Manager.
func WithWriteLog(dir string) Option { return func(c *config) { c.logDir = dir } }

const (
	recWrite byte = 'W' // data follows
	recZero  byte = 'Z' // [off, off+length) reads as zeros
	recGrow  byte = 'G' // the volume grew to off bytes
	recHdr        = 1 + 8 + 8 + 4
	logExt        = ".wlog"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// logName is the path of log seq of id.
func (m *Manager) logName(id string, seq uint64) string {
	return filepath.Join(m.cfg.logDir, fmt.Sprintf("%s.%020d%s", id, seq, logExt))
}

// logsOf lists the logs left for id, oldest first, and the highest seq.
func (m *Manager) logsOf(id string) ([]string, uint64, error) {
	if m.cfg.logDir == "" {
		return nil, 0, nil
	}
	paths, err := filepath.Glob(filepath.Join(m.cfg.logDir, id+".*"+logExt))
	if err != nil {
		return nil, 0, err
	}
	var seqs []uint64
	for _, p := range paths {
		s := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), id+"."), logExt)
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, n)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	out := make([]string, len(seqs))
	var top uint64
	for i, n := range seqs {
		out[i] = m.logName(id, n)
		top = max(top, n)
	}
	return out, top, nil
}

// RecoverLogs replays the write logs a dead process left (see WithWriteLog)
// into their maps and saves them, so that readers of saved maps (views,
// clones, exports) see every write that was acknowledged. Call it before
// serving. The logs of a map another process holds now are deleted: that
// process took over without them. It returns how many maps it recovered.
func (m *Manager) RecoverLogs(ctx context.Context) (int, error) {
	if m.cfg.logDir == "" {
		return 0, nil
	}
	paths, err := filepath.Glob(filepath.Join(m.cfg.logDir, "*"+logExt))
	if err != nil {
		return 0, err
	}
	ids := map[string]bool{}
	for _, p := range paths {
		base := strings.TrimSuffix(filepath.Base(p), logExt)
		if i := strings.LastIndexByte(base, '.'); i > 0 {
			ids[base[:i]] = true
		}
	}
	n := 0
	for id := range ids {
		s, err := m.acquire(ctx, id) // replays and saves
		if errors.Is(err, ErrBusy) {
			// Another node took the map over while this one was down:
			// its client reconnected there, without these writes, and
			// may have written since. Replaying them later would put
			// stale data over newer.
			logs, _, _ := m.logsOf(id)
			for _, p := range logs {
				os.Remove(p)
			}
			continue
		}
		if err != nil {
			return n, fmt.Errorf("blockmap: recover %s: %w", id, err)
		}
		if err := m.release(ctx, s); err != nil {
			return n, fmt.Errorf("blockmap: recover %s: %w", id, err)
		}
		n++
	}
	return n, nil
}

// replayLogs applies the logs left for s.id to the freshly loaded state and
// saves it; the logs are deleted once saved. Called by acquire before the
// state is shared.
func (s *devState) replayLogs(ctx context.Context) error {
	logs, top, err := s.m.logsOf(s.id)
	if err != nil || len(logs) == 0 {
		s.logSeq = top
		return err
	}
	s.logSeq = top
	for _, p := range logs {
		if err := s.replayLog(ctx, p); err != nil {
			return fmt.Errorf("blockmap: replay %s: %w", filepath.Base(p), err)
		}
	}
	s.oldLogs = logs
	return s.flush(ctx)
}

func (s *devState) replayLog(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var h [recHdr]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return nil // end, or a torn header: never acknowledged
		}
		kind, off, n := h[0], int64(binary.LittleEndian.Uint64(h[1:])), int64(binary.LittleEndian.Uint64(h[9:]))
		sum := binary.LittleEndian.Uint32(h[17:])
		if off < 0 || n < 0 || n > MaxSize {
			return nil
		}
		var data []byte
		if kind == recWrite {
			data = make([]byte, n)
			if _, err := io.ReadFull(r, data); err != nil {
				return nil
			}
		}
		c := crc32.Update(crc32.Checksum(h[:17], castagnoli), castagnoli, data)
		if c != sum {
			return nil
		}
		switch kind {
		case recWrite:
			err = s.applyWrite(ctx, data, off, false)
		case recZero:
			err = s.applyZero(ctx, off, n)
		case recGrow:
			err = s.grow(ctx, off, false)
		default:
			return nil
		}
		if err == nil {
			err = s.maybeWriteback(ctx)
		}
		if err != nil {
			return err
		}
	}
}

// appendLog logs one change before it is applied. The caller holds
// s.logMu shared, so a Flush's rotation sees the change either in the old
// log and in the buffer it writes back, or in the new log.
func (s *devState) appendLog(kind byte, off, n int64, data []byte) error {
	if s.m.cfg.logDir == "" {
		return nil
	}
	var rec [recHdr]byte
	rec[0] = kind
	binary.LittleEndian.PutUint64(rec[1:], uint64(off))
	binary.LittleEndian.PutUint64(rec[9:], uint64(n))
	c := crc32.Update(crc32.Checksum(rec[:17], castagnoli), castagnoli, data)
	binary.LittleEndian.PutUint32(rec[17:], c)
	s.logFileMu.Lock()
	defer s.logFileMu.Unlock()
	if s.logF == nil {
		s.logSeq++
		f, err := os.OpenFile(s.m.logName(s.id, s.logSeq), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("blockmap: write log %s: %w", s.id, err)
		}
		s.logF = f
	}
	// Header and data in two writes (no copy): the mutex keeps records
	// whole, and the CRC catches one torn by the death of the process.
	_, err := s.logF.Write(rec[:])
	if err == nil && len(data) > 0 {
		_, err = s.logF.Write(data)
	}
	if err != nil {
		// The record may be partly written and would end this file's
		// replay: later records go to a new file.
		s.logF.Close()
		s.oldLogsPending = append(s.oldLogsPending, s.logF.Name())
		s.logF = nil
		return fmt.Errorf("blockmap: write log %s: %w", s.id, err)
	}
	return nil
}

// rotateLog closes the current log; the caller holds s.logMu exclusively
// and s.wbMu, and is about to write back the buffer. The closed logs are
// deleted by the next successful save.
func (s *devState) rotateLog() {
	s.logFileMu.Lock()
	defer s.logFileMu.Unlock()
	s.oldLogs = append(s.oldLogs, s.oldLogsPending...)
	s.oldLogsPending = nil
	if s.logF != nil {
		s.oldLogs = append(s.oldLogs, s.logF.Name())
		s.logF.Close()
		s.logF = nil
	}
}

// dropLogs deletes logs whose every change is in a saved map: a prefix of
// s.oldLogs. s.wbMu is held.
func (s *devState) dropLogs(logs []string) {
	for _, p := range logs {
		os.Remove(p)
	}
	s.oldLogs = s.oldLogs[len(logs):]
}

// closeLog closes the current log file without deleting it (the state is
// dropped after a failed final flush: the log keeps the unsaved writes for
// the next open).
func (s *devState) closeLog() {
	s.logFileMu.Lock()
	defer s.logFileMu.Unlock()
	if s.logF != nil {
		s.logF.Close()
		s.logF = nil
	}
}
