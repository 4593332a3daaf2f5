package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"modernc.org/sqlite"

	"github.com/omiproject/omi"
)

var (
	errTxDone   = errors.New("sqlite: transaction already finished")
	errReadOnly = errors.New("sqlite: write in a read-only transaction (View)")
)

// tx implements omi.Tx on one SQL transaction.
type tx struct {
	ctx   context.Context
	tx    *sql.Tx
	write bool
	cache *stmtCache
	// stmts holds the pool statements bound to this transaction, so a
	// statement run many times in one Update is bound once. mu guards it
	// should fn share the Tx between goroutines.
	mu    sync.Mutex
	stmts map[*sql.Stmt]*sql.Stmt
	// done is set when View or Update returns; later calls fail instead of
	// reaching a finished (or, worse, another caller's) transaction.
	done atomic.Bool
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

// stmt returns query bound to this transaction, prepared when the pool has
// it cached, or nil to run query unprepared.
func (t *tx) stmt(query string) *sql.Stmt {
	st := t.cache.get(t.ctx, query)
	if st == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ts := t.stmts[st]; ts != nil {
		return ts
	}
	if t.stmts == nil {
		t.stmts = map[*sql.Stmt]*sql.Stmt{}
	}
	ts := t.tx.StmtContext(t.ctx, st)
	t.stmts[st] = ts
	return ts
}

func (t *tx) exec(query string, args ...any) (sql.Result, error) {
	if st := t.stmt(query); st != nil {
		return st.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, query, args...)
}

func (t *tx) query(query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(query); st != nil {
		return st.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, query, args...)
}

// sharesCol yields Record.SharedWith of the record aliased r, as a JSON array
// in the order it was written (the primary key order of shares, so SQLite
// reads it without sorting).
const sharesCol = `(SELECT json_group_array(s.account ORDER BY s.pos) FROM shares s WHERE s.kind = r.kind AND s.id = r.id)`

// Fixed statements, prepared by Open.
const (
	qGet    = `SELECT r.owner, r.name, r.public, r.doc, ` + sharesCol + ` FROM records r WHERE r.kind = ? AND r.id = ?`
	qUpsert = `INSERT INTO records (kind, id, owner, name, public, doc) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (kind, id) DO UPDATE SET owner = excluded.owner, name = excluded.name,
		public = excluded.public, doc = excluded.doc`
	qInsert = `INSERT INTO records (kind, id, owner, name, public, doc) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (kind, id) DO NOTHING`
	qDelete      = `DELETE FROM records WHERE kind = ? AND id = ?`
	qClearShares = `DELETE FROM shares WHERE kind = ? AND id = ?`
	qInsertShare = `INSERT INTO shares (kind, id, pos, account) VALUES (?, ?, ?, ?)`
)

var writerStmts = []string{qGet, qUpsert, qInsert, qDelete, qClearShares, qInsertShare}

// Get returns one record or an error wrapping omi.ErrNotFound.
func (t *tx) Get(kind omi.Kind, id string) (omi.Record, error) {
	if err := t.check(false); err != nil {
		return omi.Record{}, err
	}
	rec := omi.Record{Kind: kind, ID: id}
	var shared string
	rows, err := t.query(qGet, string(kind), id)
	if err == nil {
		defer rows.Close()
		if rows.Next() {
			err = rows.Scan(&rec.Owner, &rec.Name, &rec.Public, &rec.Doc, &shared)
		} else if err = rows.Err(); err == nil {
			err = sql.ErrNoRows
		}
	}
	if errors.Is(err, sql.ErrNoRows) {
		return omi.Record{}, fmt.Errorf("%s %s: %w", kind, id, omi.ErrNotFound)
	}
	if err != nil {
		return omi.Record{}, fmt.Errorf("sqlite: get %s %s: %w", kind, id, err)
	}
	if rec.SharedWith, err = decodeShares(shared); err != nil {
		return omi.Record{}, fmt.Errorf("sqlite: get %s %s: %w", kind, id, err)
	}
	return rec, nil
}

func decodeShares(s string) ([]string, error) {
	if s == "[]" || s == "" {
		return nil, nil
	}
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("decode shares: %w", err)
	}
	return out, nil
}

// validate rejects records the store could not give back unchanged: text
// fields must be UTF-8 (shares travel through SQLite's JSON functions, and
// PostgreSQL refuses invalid text) and Doc must be JSON.
func validate(r omi.Record) error {
	if r.Kind == "" || r.ID == "" {
		return fmt.Errorf("sqlite: record %q %q: kind and id are required", r.Kind, r.ID)
	}
	for _, s := range append([]string{string(r.Kind), r.ID, r.Owner, r.Name}, r.SharedWith...) {
		if !utf8.ValidString(s) {
			return fmt.Errorf("sqlite: record %s %q: %q is not valid UTF-8", r.Kind, r.ID, s)
		}
	}
	if !json.Valid(r.Doc) {
		return fmt.Errorf("sqlite: record %s %s: document is not valid JSON", r.Kind, r.ID)
	}
	return nil
}

// Put inserts or replaces a record and its shares.
func (t *tx) Put(r omi.Record) error {
	if err := t.check(true); err != nil {
		return err
	}
	if err := validate(r); err != nil {
		return err
	}
	// An upsert, not INSERT OR REPLACE: REPLACE deletes the old row first,
	// and the delete would cascade to the shares.
	_, err := t.exec(qUpsert, string(r.Kind), r.ID, r.Owner, r.Name, r.Public, r.Doc)
	if err != nil {
		return fmt.Errorf("sqlite: put %s %s: %w", r.Kind, r.ID, err)
	}
	if _, err := t.exec(qClearShares, string(r.Kind), r.ID); err != nil {
		return fmt.Errorf("sqlite: put %s %s: clear shares: %w", r.Kind, r.ID, err)
	}
	return t.insertShares(r)
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
	res, err := t.exec(qInsert, string(r.Kind), r.ID, r.Owner, r.Name, r.Public, r.Doc)
	if err != nil {
		return fmt.Errorf("sqlite: insert %s %s: %w", r.Kind, r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: insert %s %s: %w", r.Kind, r.ID, err)
	} else if n == 0 {
		return fmt.Errorf("%s %s: %w", r.Kind, r.ID, omi.ErrExists)
	}
	return t.insertShares(r)
}

func (t *tx) insertShares(r omi.Record) error {
	for pos, account := range uniq(r.SharedWith) {
		if _, err := t.exec(qInsertShare, string(r.Kind), r.ID, pos, account); err != nil {
			return fmt.Errorf("sqlite: put %s %s: share: %w", r.Kind, r.ID, err)
		}
	}
	return nil
}

// Delete removes a record and its shares, or fails with an error wrapping
// omi.ErrNotFound.
func (t *tx) Delete(kind omi.Kind, id string) error {
	if err := t.check(true); err != nil {
		return err
	}
	// Shares go with the record: ON DELETE CASCADE (foreign_keys is on for
	// every connection).
	res, err := t.exec(qDelete, string(kind), id)
	if err != nil {
		return fmt.Errorf("sqlite: delete %s %s: %w", kind, id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: delete %s %s: %w", kind, id, err)
	} else if n == 0 {
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
// SQL) and no statement is open while fn runs, so fn may use the Tx freely:
// records it writes with ids after the current one show up later in the scan.
func (t *tx) Scan(q omi.Query, fn func(omi.Record) (bool, error)) error {
	if err := t.check(false); err != nil {
		return err
	}
	if q.Kind == "" {
		return errors.New("sqlite: scan: query without kind")
	}
	if q.Limit < 0 {
		return fmt.Errorf("sqlite: scan %s: negative limit %d", q.Kind, q.Limit)
	}
	p := plan(q)
	after, hasAfter := q.AfterID, q.AfterID != ""
	remaining := q.Limit
	batch := firstBatch
	for {
		n := batch
		if q.Limit > 0 {
			n = min(n, remaining)
		}
		recs, err := t.page(q.Kind, p, hasAfter, after, n)
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
		after, hasAfter = recs[len(recs)-1].ID, true
		batch = min(2*batch, maxBatch)
	}
}

// page runs one batch of a scan.
func (t *tx) page(kind omi.Kind, p *scanPlan, hasAfter bool, after string, limit int) ([]omi.Record, error) {
	query, args := p.sql(hasAfter, after, limit)
	if len(args) > maxParams {
		return nil, fmt.Errorf("sqlite: scan %s: query has %d values, more than the %d supported", kind, len(args), maxParams)
	}
	if err := t.check(false); err != nil {
		return nil, err
	}
	rows, err := t.query(query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: scan %s: %w", kind, err)
	}
	recs, err := scanRecords(rows, kind)
	if err != nil {
		return nil, fmt.Errorf("sqlite: scan %s: %w", kind, err)
	}
	return recs, nil
}

// scanRecords reads the rows of a SELECT of cols, and closes them.
func scanRecords(rows *sql.Rows, kind omi.Kind) ([]omi.Record, error) {
	defer rows.Close()
	var recs []omi.Record
	for rows.Next() {
		r := omi.Record{Kind: kind}
		var shared string
		if err := rows.Scan(&r.ID, &r.Owner, &r.Name, &r.Public, &r.Doc, &shared); err != nil {
			return nil, err
		}
		var err error
		if r.SharedWith, err = decodeShares(shared); err != nil {
			return nil, fmt.Errorf("%s: %w", r.ID, err)
		}
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

// maxParams stays under SQLite's default SQLITE_MAX_VARIABLE_NUMBER (32766).
const maxParams = 32000

// scanPlan is a Query turned into SQL fragments, built once per Scan and
// completed per batch with the keyset position and limit.
type scanPlan struct {
	kind    string
	filter  string // conditions on r besides kind and id > after
	args    []any  // arguments of filter
	visible string // VisibleTo, or ""
	// union selects the three-arm form for VisibleTo (see sql).
	union bool
}

const cols = `r.id, r.owner, r.name, r.public, r.doc, ` + sharesCol

// plan translates q's filters. Lists are deduplicated, then padded to a
// power of two by repeating their first entry, which changes no result but
// bounds the number of distinct statements (and so prepared ones). Name
// patterns without wildcards become exact names (MatchPattern compares them
// literally), and a pattern of only '*' drops the name filter altogether
// since it matches every name.
func plan(q omi.Query) *scanPlan {
	p := &scanPlan{kind: string(q.Kind), visible: q.VisibleTo}
	var conds []string
	in := func(col string, vals []string) string {
		vals = pad(uniq(vals))
		for _, v := range vals {
			p.args = append(p.args, v)
		}
		return col + " IN (" + placeholders(len(vals)) + ")"
	}
	if len(q.IDs) > 0 {
		conds = append(conds, in("r.id", q.IDs))
	}
	if len(q.Owners) > 0 {
		conds = append(conds, in("r.owner", q.Owners))
	}
	names := append([]string(nil), q.Names...)
	var patterns []string
	matchAll := false
	for _, pat := range q.NamePatterns {
		switch {
		case pat != "" && strings.Trim(pat, "*") == "":
			matchAll = true
		case strings.ContainsAny(pat, "*?"):
			patterns = append(patterns, pat)
		default:
			names = append(names, pat)
		}
	}
	if !matchAll && (len(names) > 0 || len(patterns) > 0) {
		var alts []string
		if len(names) > 0 {
			alts = append(alts, in("r.name", names))
		}
		// omi_match is omi.MatchPattern as an SQL function: LIKE and GLOB
		// differ from it (case folding, '[' classes, '?' matching a
		// character rather than a byte), and escaping cannot fix the last.
		for _, pat := range pad(uniq(patterns)) {
			alts = append(alts, "omi_match(?, r.name)")
			p.args = append(p.args, pat)
		}
		conds = append(conds, "("+strings.Join(alts, " OR ")+")")
	}
	p.filter = strings.Join(conds, " AND ")
	// With ids or exact names the candidate rows are few and found by
	// index, so visibility is a per-row test. Otherwise see sql.
	p.union = q.VisibleTo != "" && len(q.IDs) == 0 && len(names) == 0
	return p
}

// sql returns the statement and arguments of one batch.
//
// For VisibleTo without ids or names, the visible ids are the union of three
// streams read in id order from covering indexes: the account's own records
// (records_by_owner), public ones (records_public) and those shared with it
// (shares_by_account). SQLite merges them as a co-routine and the outer
// query fetches records for the merged ids until LIMIT is reached, so a page
// costs O(limit) index steps whatever the table size and the share of
// visible records; filtering every record of the kind for visibility would
// cost O(records) for an account that sees little. INDEXED BY pins each arm
// to its index: the query fails rather than silently degrading if an index
// goes missing. The remaining filters apply to the fetched records.
func (p *scanPlan) sql(hasAfter bool, after string, limit int) (string, []any) {
	var b strings.Builder
	var args []any
	// where writes the conditions on records r shared by every form.
	where := func() {
		b.WriteString(" r.kind = ?")
		args = append(args, p.kind)
		if hasAfter {
			b.WriteString(" AND r.id > ?")
			args = append(args, after)
		}
		if p.filter != "" {
			b.WriteString(" AND ")
			b.WriteString(p.filter)
			args = append(args, p.args...)
		}
	}
	// arm writes one stream of the union.
	arm := func(sql string, vals ...any) {
		b.WriteString(sql)
		args = append(args, vals...)
		if hasAfter {
			b.WriteString(" AND id > ?")
			args = append(args, after)
		}
	}
	switch {
	case p.visible == "":
		b.WriteString("SELECT " + cols + " FROM records r WHERE")
		where()
		b.WriteString(" ORDER BY r.id")
	case !p.union:
		b.WriteString("SELECT " + cols + " FROM records r WHERE")
		where()
		b.WriteString(" AND (r.owner = ? OR r.public = 1 OR EXISTS (SELECT 1 FROM shares v" +
			" WHERE v.account = ? AND v.kind = r.kind AND v.id = r.id)) ORDER BY r.id")
		args = append(args, p.visible, p.visible)
	default:
		b.WriteString("SELECT " + cols + " FROM (")
		arm("SELECT id FROM records INDEXED BY records_by_owner WHERE kind = ? AND owner = ?", p.kind, p.visible)
		arm(" UNION SELECT id FROM records INDEXED BY records_public WHERE kind = ? AND public = 1", p.kind)
		arm(" UNION SELECT id FROM shares INDEXED BY shares_by_account WHERE account = ? AND kind = ?", p.visible, p.kind)
		b.WriteString(" ORDER BY 1) v CROSS JOIN records r ON r.id = v.id WHERE")
		where()
		b.WriteString(" ORDER BY v.id")
	}
	b.WriteString(" LIMIT ?")
	args = append(args, limit)
	return b.String(), args
}

// pad repeats the first entry of list up to the next power of two.
func pad(list []string) []string {
	if len(list) == 0 {
		return list
	}
	n := 1
	for n < len(list) {
		n *= 2
	}
	for len(list) < n {
		list = append(list, list[0])
	}
	return list
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
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

// sqlMatch is omi_match(pattern, name) for SQL: omi.MatchPattern.
func sqlMatch(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	pat, ok1 := text(args[0])
	name, ok2 := text(args[1])
	if !ok1 || !ok2 {
		return int64(0), nil
	}
	if omi.MatchPattern(pat, name) {
		return int64(1), nil
	}
	return int64(0), nil
}

func text(v driver.Value) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	return "", false
}
