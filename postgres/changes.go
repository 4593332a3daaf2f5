package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omiproject/omi"
)

var _ omi.ChangeFeed = (*Store)(nil)

// changesChannel names the NOTIFY channel on which every write of a record
// of the store in schema is announced, with the payload "<kind> <id>".
// Channels are per database: the name carries the schema's lock key, so
// stores in other schemas do not hear each other. NOTIFY is transactional:
// the notification of a write is delivered when, and only if, its
// transaction commits, and identical payloads within one transaction are
// sent once.
func changesChannel(lockKey int64) string { return fmt.Sprintf("omi_records_%016x", uint64(lockKey)) }

// qNotify announces the write of a record ($2) on the channel $1, in the
// batch of the write itself (no extra round trip).
const qNotify = "SELECT pg_notify($1, $2)"

// notifyAll is the payload announcing writes too many to name (an id so
// long the payload would pass PostgreSQL's 8000-byte limit).
const notifyAll = "*"

// notifyPayload names the record kind/id in a notification.
func notifyPayload(kind omi.Kind, id string) string {
	p := string(kind) + " " + id
	if len(p) >= 7900 {
		return notifyAll
	}
	return p
}

// Liveness of the listening connection: when no notification came for
// listenIdle, a query checks the connection still answers (a silently
// broken connection would otherwise look like a quiet cluster), within
// listenPing.
const (
	listenIdle  = time.Second
	listenPing  = 2 * time.Second
	listenRetry = 500 * time.Millisecond
)

// WatchChanges implements omi.ChangeFeed: a connection of its own LISTENs to
// the writes of every node (this one's too). When that connection fails,
// live(false) says notifications may have been lost, and it connects again.
func (s *Store) WatchChanges(ctx context.Context, live func(bool), changed func(kind omi.Kind, id string)) {
	cfg := s.pool.Config().ConnConfig
	for ctx.Err() == nil {
		if err := s.listen(ctx, cfg, live, changed); err != nil && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(listenRetry):
			}
		}
	}
}

// listen runs one listening connection until it fails or ctx ends.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig, live func(bool), changed func(kind omi.Kind, id string)) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	channel := changesChannel(s.lockKey)
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	live(true)
	defer live(false)
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if n.Channel != channel {
				continue
			}
			kind, id, ok := strings.Cut(n.Payload, " ")
			if !ok || n.Payload == notifyAll {
				// Cannot tell which records: lose them all.
				live(false)
				live(true)
				continue
			}
			changed(omi.Kind(kind), id)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, listenPing)
			_, err := conn.Exec(pctx, "SELECT 1")
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}
