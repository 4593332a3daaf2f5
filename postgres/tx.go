package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/omiproject/omi"
)

var (
	errTxDone   = errors.New("postgres: transaction already finished")
	errReadOnly = errors.New("postgres: write in a read-only transaction (View)")
)

// tx implements omi.Tx on one PostgreSQL transaction. Like pgx.Tx it is not
// safe for concurrent use.
//
// The transaction begins with the first statement, sent in one batch with
// its BEGIN: a View of one Get costs two round trips (BEGIN and SELECT, then
// ROLLBACK) instead of three. PostgreSQL takes a transaction's snapshot at
// its first statement anyway, so this changes nothing else.
type tx struct {
	ctx context.Context
	// conn sends the first batch, which begins the transaction: the pool,
	// or the connection holding the lock of an exclusive Update.
	conn interface {
		SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
	}
	opts pgx.TxOptions
	// shareLock, if not 0, is the advisory lock key the transaction takes
	// shared (see exclusiveFrom).
	shareLock int64
	// channel announces the writes (changes.go).
	channel string
	ptx     pgx.Tx // nil until the first statement
	write   bool
	// done is set when View or Update returns; later calls fail instead of
	// reaching a finished transaction.
	done atomic.Bool
	// conflict is the first serialisation failure or deadlock a statement
	// met: the transaction is then aborted and Update runs fn again.
	conflict error
}

func (t *tx) check(write bool) error {
	if t.done.Load() {
		return errTxDone
	}
	if write && !t.write {
		return errReadOnly
	}
	return nil
}

// batch returns a batch for the next statements, beginning with the
// transaction's BEGIN if none ran yet.
func (t *tx) batch() *pgx.Batch {
	b := &pgx.Batch{}
	if t.ptx == nil {
		b.BeginTx(t.opts)
		if t.shareLock != 0 {
			b.Queue(qShareLock, t.shareLock)
		}
	}
	return b
}

// qShareLock takes an advisory lock shared until the transaction ends.
const qShareLock = "SELECT pg_advisory_xact_lock_shared($1)"

// send sends b, from batch, and returns the results of its own statements.
// The caller must Close them.
func (t *tx) send(b *pgx.Batch) (pgx.BatchResults, error) {
	if t.ptx != nil {
		return t.ptx.SendBatch(t.ctx, b), nil
	}
	br := t.conn.SendBatch(t.ctx, b)
	t.ptx = br.Tx()
	opening := 1
	if t.shareLock != 0 {
		opening++
	}
	for range opening {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, fmt.Errorf("begin: %w", err)
		}
	}
	return br, nil
}

// rollback ends the transaction if it began, giving the connection back to
// the pool. It runs even when the context is cancelled.
func (t *tx) rollback() {
	if t.ptx != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), 15*time.Second)
		defer cancel()
		t.ptx.Rollback(ctx) // an error leaves the connection closed, not leaked
	}
}

// note records err if it is a conflict, and returns it.
func (t *tx) note(err error) error {
	if err != nil && t.conflict == nil && isConflict(err) {
		t.conflict = err
	}
	return err
}

// sharesCol yields Record.SharedWith of the record aliased r, in the order it
// was written (the primary key order of shares).
const sharesCol = `ARRAY(SELECT s.account FROM shares s WHERE s.kind = r.kind AND s.id = r.id ORDER BY s.pos)`

// Fixed statements. pgx prepares each once per connection and caches it.
const (
	qGet = `SELECT r.owner, r.name, r.public, r.doc, ` + sharesCol + ` FROM records r WHERE r.kind = $1 AND r.id = $2`
	// An upsert rather than delete and insert: deleting would cascade to
	// the shares and cost index churn for nothing.
	qUpsert = `INSERT INTO records (kind, id, owner, name, public, doc) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (kind, id) DO UPDATE SET owner = excluded.owner, name = excluded.name,
		public = excluded.public, doc = excluded.doc`
	qClearShares = `DELETE FROM shares WHERE kind = $1 AND id = $2`
	qAddShares   = `INSERT INTO shares (kind, id, pos, account)
		SELECT $1, $2, s.pos, s.account FROM unnest($3::text[]) WITH ORDINALITY AS s(account, pos)`
	// Insert is one statement: the shares are added only for a row that
	// was inserted, and the count tells whether it was. ON CONFLICT DO
	// NOTHING, unlike a unique violation, leaves the transaction usable.
	qInsert = `WITH ins AS (
			INSERT INTO records (kind, id, owner, name, public, doc) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (kind, id) DO NOTHING RETURNING kind, id),
		sh AS (
			INSERT INTO shares (kind, id, pos, account)
			SELECT ins.kind, ins.id, s.pos, s.account FROM ins CROSS JOIN unnest($7::text[]) WITH ORDINALITY AS s(account, pos))
		SELECT count(*) FROM ins`
	qDelete = `DELETE FROM records WHERE kind = $1 AND id = $2`
)

// validText reports whether s can be stored in a PostgreSQL text column:
// UTF-8 without NUL bytes. A string that cannot be stored names no record.
func validText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// validate rejects records the store could not give back unchanged.
func validate(r omi.Record) error {
	if r.Kind == "" || r.ID == "" {
		return fmt.Errorf("postgres: record %q %q: kind and id are required", r.Kind, r.ID)
	}
	for _, s := range append([]string{string(r.Kind), r.ID, r.Owner, r.Name}, r.SharedWith...) {
		if !validText(s) {
			return fmt.Errorf("postgres: record %s %q: %q is not UTF-8 text without NUL bytes", r.Kind, r.ID, s)
		}
	}
	if !json.Valid(r.Doc) {
		return fmt.Errorf("postgres: record %s %s: document is not valid JSON", r.Kind, r.ID)
	}
	return nil
}

// Get returns one record or an error wrapping omi.ErrNotFound.
func (t *tx) Get(kind omi.Kind, id string) (omi.Record, error) {
	if err := t.check(false); err != nil {
		return omi.Record{}, err
	}
	if !validText(string(kind)) || !validText(id) {
		return omi.Record{}, fmt.Errorf("%s %q: %w", kind, id, omi.ErrNotFound)
	}
	rec := omi.Record{Kind: kind, ID: id}
	b := t.batch()
	b.Queue(qGet, string(kind), id)
	br, err := t.send(b)
	if err == nil {
		err = br.QueryRow().Scan(&rec.Owner, &rec.Name, &rec.Public, &rec.Doc, &rec.SharedWith)
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return omi.Record{}, fmt.Errorf("%s %s: %w", kind, id, omi.ErrNotFound)
	}
	if err != nil {
		return omi.Record{}, fmt.Errorf("postgres: get %s %s: %w", kind, id, t.note(err))
	}
	if len(rec.SharedWith) == 0 {
		rec.SharedWith = nil
	}
	return rec, nil
}

// Put inserts or replaces a record and its shares, in one round trip.
func (t *tx) Put(r omi.Record) error {
	if err := t.check(true); err != nil {
		return err
	}
	if err := validate(r); err != nil {
		return err
	}
	shares := uniq(r.SharedWith)
	b := t.batch()
	b.Queue(qUpsert, string(r.Kind), r.ID, r.Owner, r.Name, r.Public, r.Doc)
	b.Queue(qClearShares, string(r.Kind), r.ID)
	if len(shares) > 0 {
		b.Queue(qAddShares, string(r.Kind), r.ID, shares)
	}
	b.Queue(qNotify, t.channel, notifyPayload(r.Kind, r.ID))
	br, err := t.send(b)
	if err == nil {
		// Close reads every result and reports the first error.
		err = br.Close()
	}
	if err != nil {
		return fmt.Errorf("postgres: put %s %s: %w", r.Kind, r.ID, t.note(err))
	}
	return nil
}

// Insert adds a record, failing with an error wrapping omi.ErrExists if the
// kind and id are taken.
func (t *tx) Insert(r omi.Record) error {
	if err := t.check(true); err != nil {
		return err
	}
	if err := validate(r); err != nil {
		return err
	}
	var n int
	b := t.batch()
	b.Queue(qInsert, string(r.Kind), r.ID, r.Owner, r.Name, r.Public, r.Doc, uniq(r.SharedWith))
	b.Queue(qNotify, t.channel, notifyPayload(r.Kind, r.ID))
	br, err := t.send(b)
	if err == nil {
		err = br.QueryRow().Scan(&n)
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("postgres: insert %s %s: %w", r.Kind, r.ID, t.note(err))
	}
	if n == 0 {
		return fmt.Errorf("%s %s: %w", r.Kind, r.ID, omi.ErrExists)
	}
	return nil
}

// Delete removes a record and its shares (ON DELETE CASCADE), or fails with
// an error wrapping omi.ErrNotFound.
func (t *tx) Delete(kind omi.Kind, id string) error {
	if err := t.check(true); err != nil {
		return err
	}
	if !validText(string(kind)) || !validText(id) {
		return fmt.Errorf("%s %q: %w", kind, id, omi.ErrNotFound)
	}
	var tag pgconn.CommandTag
	b := t.batch()
	b.Queue(qDelete, string(kind), id)
	b.Queue(qNotify, t.channel, notifyPayload(kind, id))
	br, err := t.send(b)
	if err == nil {
		tag, err = br.Exec()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("postgres: delete %s %s: %w", kind, id, t.note(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s %s: %w", kind, id, omi.ErrNotFound)
	}
	return nil
}

// Scan batches: the first batch is small, for the common single-page
// listing; later ones grow so a full scan makes few queries, while memory
// stays bounded whatever the table size.
const (
	firstBatch = 64
	maxBatch   = 1024
)

// Scan calls fn for each record matching q, in ascending id order.
//
// Records are read in batches (keyset pagination on id, LIMIT pushed into
// SQL) and no statement is open while fn runs, since one connection cannot
// interleave statements: fn may use the Tx freely, and records it writes
// with ids after the current one show up later in the scan. In a View every
// batch reads the same snapshot.
func (t *tx) Scan(q omi.Query, fn func(omi.Record) (bool, error)) error {
	if err := t.check(false); err != nil {
		return err
	}
	if q.Kind == "" {
		return errors.New("postgres: scan: query without kind")
	}
	if q.Limit < 0 {
		return fmt.Errorf("postgres: scan %s: negative limit %d", q.Kind, q.Limit)
	}
	after := q.AfterID
	if !utf8.ValidString(after) {
		return fmt.Errorf("postgres: scan %s: AfterID %q is not UTF-8", q.Kind, after)
	}
	// Stored ids hold no NUL byte, so "id > p + NUL + rest" selects the
	// same ids as "id > p".
	if i := strings.IndexByte(after, 0); i >= 0 {
		after = after[:i]
	}
	p := plan(q)
	if p.none || !validText(string(q.Kind)) {
		return nil
	}
	remaining := q.Limit
	batch := firstBatch
	for {
		n := batch
		if q.Limit > 0 {
			n = min(n, remaining)
		}
		recs, err := t.page(q.Kind, p, after, n)
		if err != nil {
			return err
		}
		for _, r := range recs {
			more, err := fn(r)
			if err != nil {
				return err
			}
			if !more {
				return nil
			}
		}
		if len(recs) < n {
			return nil
		}
		if q.Limit > 0 {
			if remaining -= len(recs); remaining == 0 {
				return nil
			}
		}
		after = recs[len(recs)-1].ID
		batch = min(2*batch, maxBatch)
	}
}

// page runs one batch of a scan.
func (t *tx) page(kind omi.Kind, p *scanPlan, after string, limit int) ([]omi.Record, error) {
	if err := t.check(false); err != nil {
		return nil, err
	}
	query, args := p.sql(after, limit)
	b := t.batch()
	b.Queue(query, args...)
	br, err := t.send(b)
	if err != nil {
		return nil, fmt.Errorf("postgres: scan %s: %w", kind, t.note(err))
	}
	recs, err := readPage(br, kind, limit)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: scan %s: %w", kind, t.note(err))
	}
	return recs, nil
}

// readPage reads the records of one batch of a scan.
func readPage(br pgx.BatchResults, kind omi.Kind, limit int) ([]omi.Record, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	recs := make([]omi.Record, 0, min(limit, 64))
	for rows.Next() {
		r := omi.Record{Kind: kind}
		if err := rows.Scan(&r.ID, &r.Owner, &r.Name, &r.Public, &r.Doc, &r.SharedWith); err != nil {
			return nil, err
		}
		if len(r.SharedWith) == 0 {
			r.SharedWith = nil
		}
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

// scanPlan is a Query turned into SQL, built once per Scan and completed per
// batch with the keyset position and limit. Its placeholders are numbered
// after the three that every batch sets: $1 kind, $2 the id to start after
// and $3 the limit.
type scanPlan struct {
	kind    string
	none    bool   // the query can match nothing
	filter  string // conditions on r besides kind and id > after, or ""
	args    []any  // values of $4 onwards
	visible string // placeholder of VisibleTo, or ""
	union   bool   // use the three-arm form for VisibleTo (see sql)
}

const cols = `r.id, r.owner, r.name, r.public, r.doc, ` + sharesCol

// plan translates q's filters. Lists travel as arrays (col = ANY($n)), so
// the statement text depends only on which fields are set and pgx's
// statement cache stays small. Name patterns without wildcards become
// exact names (MatchPattern compares them literally), and a pattern of only
// '*' drops the name filter since it matches every name. Values that cannot
// be stored (see validText) are dropped from lists: they match nothing.
func plan(q omi.Query) *scanPlan {
	p := &scanPlan{kind: string(q.Kind)}
	arg := func(v any) string {
		p.args = append(p.args, v)
		return "$" + strconv.Itoa(3+len(p.args))
	}
	var conds []string
	in := func(col string, vals []string) {
		var ok []string
		for _, v := range uniq(vals) {
			if validText(v) {
				ok = append(ok, v)
			}
		}
		if len(ok) == 0 {
			p.none = true
			return
		}
		conds = append(conds, col+" = ANY("+arg(ok)+"::text[])")
	}
	if len(q.IDs) > 0 {
		in("r.id", q.IDs)
	}
	if len(q.Owners) > 0 {
		in("r.owner", q.Owners)
	}
	var names []string
	for _, n := range q.Names {
		if validText(n) {
			names = append(names, n)
		}
	}
	var patterns [][]byte
	matchAll := false
	for _, pat := range q.NamePatterns {
		switch {
		case pat != "" && strings.Trim(pat, "*") == "":
			matchAll = true
		case strings.ContainsAny(pat, "*?"):
			patterns = append(patterns, likePattern(pat))
		case validText(pat):
			names = append(names, pat)
		}
	}
	if (len(q.Names) > 0 || len(q.NamePatterns) > 0) && !matchAll {
		var alts []string
		if len(names) > 0 {
			alts = append(alts, "r.name = ANY("+arg(uniq(names))+"::text[])")
		}
		if len(patterns) > 0 {
			// LIKE on bytea compares bytes, as MatchPattern does: on
			// text, '_' would match a character, not a byte.
			alts = append(alts, "convert_to(r.name, 'UTF8') LIKE ANY("+arg(patterns)+"::bytea[])")
		}
		if len(alts) == 0 {
			p.none = true
		}
		conds = append(conds, "("+strings.Join(alts, " OR ")+")")
	}
	if q.VisibleTo != "" {
		if validText(q.VisibleTo) {
			p.visible = arg(q.VisibleTo)
		} else {
			// No record is owned by or shared with this account.
			conds = append(conds, "r.public")
		}
	}
	p.filter = strings.Join(conds, " AND ")
	// With ids, or only exact names, the candidate rows are few and found
	// by index, so visibility is a per-row test. Otherwise see sql.
	p.union = p.visible != "" && len(q.IDs) == 0 && (len(names) == 0 || len(patterns) > 0 || matchAll)
	return p
}

// likePattern translates a MatchPattern pattern into a LIKE pattern, with
// backslash (LIKE's default escape) before the characters LIKE treats
// specially.
func likePattern(pat string) []byte {
	out := make([]byte, 0, len(pat)+4)
	for i := 0; i < len(pat); i++ {
		switch c := pat[i]; c {
		case '*':
			out = append(out, '%')
		case '?':
			out = append(out, '_')
		case '%', '_', '\\':
			out = append(out, '\\', c)
		default:
			out = append(out, c)
		}
	}
	return out
}

// sql returns the statement and arguments of one batch.
//
// For VisibleTo without ids or exact names, the visible ids are the union of
// three streams, each read in id order from an index and cut at the limit:
// the account's own records (records_by_owner), public ones (records_public)
// and those shared with it (shares_by_account). The first limit ids of the
// union are among the first limit of each stream, so a page costs O(limit)
// index steps whatever the table size and however little the account sees;
// filtering every record of the kind for visibility would cost O(records)
// for an account that sees little. The other filters apply inside each arm,
// so no arm is cut short by records a filter then drops.
//
// The keyset condition id > $2 is always there, with "" for the first batch
// of a scan without AfterID: stored ids are never empty, and one statement
// text per shape keeps pgx's statement cache small.
func (p *scanPlan) sql(after string, limit int) (string, []any) {
	args := make([]any, 0, 3+len(p.args))
	args = append(args, p.kind, after, limit)
	args = append(args, p.args...)
	var b strings.Builder
	// where writes the conditions shared by every form, the keyset one on
	// idCol.
	where := func(kindCond, idCol string) {
		b.WriteString(kindCond)
		b.WriteString(" AND " + idCol + " > $2")
		if p.filter != "" {
			b.WriteString(" AND ")
			b.WriteString(p.filter)
		}
	}
	switch {
	case p.visible == "":
		b.WriteString("SELECT " + cols + " FROM records r WHERE ")
		where("r.kind = $1", "r.id")
		b.WriteString(" ORDER BY r.id LIMIT $3")
	case !p.union:
		b.WriteString("SELECT " + cols + " FROM records r WHERE ")
		where("r.kind = $1", "r.id")
		b.WriteString(" AND (r.owner = " + p.visible + " OR r.public OR EXISTS (SELECT 1 FROM shares v" +
			" WHERE v.account = " + p.visible + " AND v.kind = r.kind AND v.id = r.id)) ORDER BY r.id LIMIT $3")
	default:
		b.WriteString("SELECT " + cols + " FROM (SELECT id FROM ((SELECT r.id FROM records r WHERE ")
		where("r.kind = $1 AND r.owner = "+p.visible, "r.id")
		b.WriteString(" ORDER BY r.id LIMIT $3) UNION (SELECT r.id FROM records r WHERE ")
		where("r.kind = $1 AND r.public", "r.id")
		// The shares arm reads shares_by_account in (kind, id) order for
		// the account, and looks each record up by primary key.
		b.WriteString(" ORDER BY r.id LIMIT $3) UNION (SELECT v.id FROM shares v JOIN records r ON r.kind = v.kind AND r.id = v.id WHERE ")
		where("v.account = "+p.visible+" AND v.kind = $1", "v.id")
		// Cutting the merged ids at the limit before the join fetches
		// only the records returned.
		b.WriteString(" ORDER BY v.id LIMIT $3)) w ORDER BY id LIMIT $3) u JOIN records r ON r.kind = $1 AND r.id = u.id ORDER BY r.id")
	}
	return b.String(), args
}

// uniq returns list without repeated entries, first occurrence kept.
func uniq(list []string) []string {
	if len(list) < 2 {
		return list
	}
	seen := make(map[string]bool, len(list))
	out := make([]string, 0, len(list))
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
