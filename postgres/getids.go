package postgres

import (
	"context"
	"fmt"

	"github.com/omiproject/omi"
)

var _ omi.IDReader = (*Store)(nil)

// qGetIDs reads records by id. Run alone (autocommit), one statement reads
// one snapshot, even at PostgreSQL's default READ COMMITTED level.
const qGetIDs = `SELECT ` + cols + ` FROM records r WHERE r.kind = $1 AND r.id = ANY($2::text[])`

// GetIDs reads the records of kind among ids in one statement outside any
// transaction: one round trip (pgx keeps the statement prepared per
// connection), where a View costs a BEGIN batch and a ROLLBACK.
func (s *Store) GetIDs(ctx context.Context, kind omi.Kind, ids []string) ([]omi.Record, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	ids = uniq(ids)
	if len(ids) > omi.MaxGetIDs {
		return nil, fmt.Errorf("postgres: get %s: %d ids, more than %d", kind, len(ids), omi.MaxGetIDs)
	}
	valid := ids[:0:0]
	for _, id := range ids {
		if validText(id) { // text PostgreSQL cannot store names no record
			valid = append(valid, id)
		}
	}
	if len(valid) == 0 || !validText(string(kind)) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, qGetIDs, string(kind), valid)
	if err != nil {
		return nil, fmt.Errorf("postgres: get %s: %w", kind, err)
	}
	defer rows.Close()
	var recs []omi.Record
	for rows.Next() {
		r := omi.Record{Kind: kind}
		if err := rows.Scan(&r.ID, &r.Owner, &r.Name, &r.Public, &r.Doc, &r.SharedWith); err != nil {
			return nil, fmt.Errorf("postgres: get %s: %w", kind, err)
		}
		if len(r.SharedWith) == 0 {
			r.SharedWith = nil
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: get %s: %w", kind, err)
	}
	return recs, nil
}
