package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/omiproject/omi"
)

var _ omi.IDReader = (*Store)(nil)

// GetIDs reads the records of kind among ids in one SELECT on a read
// connection, in autocommit: SQLite holds one read snapshot for the whole
// statement, so this is what a View running the same SELECT would see,
// without its BEGIN and ROLLBACK. The id list is deduplicated and padded
// to a power of two (see plan), so few distinct statements get prepared.
func (s *Store) GetIDs(ctx context.Context, kind omi.Kind, ids []string) ([]omi.Record, error) {
	ids = pad(uniq(ids))
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > omi.MaxGetIDs {
		return nil, fmt.Errorf("sqlite: get %s: %d ids, more than %d", kind, len(ids), omi.MaxGetIDs)
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("sqlite: get %s: %w", kind, ctx.Err())
	}
	defer func() { <-s.slots }()
	query := `SELECT ` + cols + ` FROM records r WHERE r.kind = ? AND r.id IN (` + placeholders(len(ids)) + `)`
	args := make([]any, 0, len(ids)+1)
	args = append(args, string(kind))
	for _, id := range ids {
		args = append(args, id)
	}
	st := s.rc.get(ctx, query)
	var err error
	var recs []omi.Record
	if st != nil {
		rows, qerr := st.QueryContext(ctx, args...)
		if qerr != nil {
			return nil, fmt.Errorf("sqlite: get %s: %w", kind, qerr)
		}
		recs, err = scanRecords(rows, kind)
	} else {
		rows, qerr := s.r.QueryContext(ctx, query, args...)
		if qerr != nil {
			return nil, fmt.Errorf("sqlite: get %s: %w", kind, qerr)
		}
		recs, err = scanRecords(rows, kind)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get %s %s: %w", kind, strings.Join(ids, ","), err)
	}
	return recs, nil
}
