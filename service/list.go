package service

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"

	"github.com/omiproject/omi"
)

// listPage scans resources matching q, keeps those accepted by keep, and
// applies NextPageToken/ResultsPerPage. Results are in id order; the token
// is the base64 of the last id returned, so a page boundary is stable even
// while resources are created or deleted between calls, and every resource
// present throughout is returned exactly once across pages.
func listPage[T any, PT interface {
	*T
	omi.Resource
}](tx omi.Tx, q omi.Query, pg Paging, prefix string, keep func(*T) bool) ([]*T, string, error) {
	limit, err := resultsPerPage(pg.ResultsPerPage)
	if err != nil {
		return nil, "", err
	}
	if pg.NextPageToken != "" {
		after, err := decodeToken(pg.NextPageToken, prefix)
		if err != nil {
			return nil, "", err
		}
		q.AfterID = after
	}
	return collectPage[T, PT](limit, keep, func(fn func(*T) (bool, error)) error { return omi.Scan[T, PT](tx, q, fn) })
}

// collectPage keeps at most limit values of scan (0: all) accepted by keep,
// and the token of the next page if more would follow.
func collectPage[T any, PT interface {
	*T
	omi.Resource
}](limit int, keep func(*T) bool, scan func(func(*T) (bool, error)) error) ([]*T, string, error) {
	out := []*T{}
	more := false
	err := scan(func(v *T) (bool, error) {
		if !keep(v) {
			return true, nil
		}
		if limit > 0 && len(out) == limit {
			more = true
			return false, nil
		}
		out = append(out, v)
		return true, nil
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		next = base64.StdEncoding.EncodeToString([]byte(PT(out[len(out)-1]).ResourceID()))
	}
	return out, next, nil
}

// readPage is listPage in a read of its own. A query by a few ids (the
// common poll of one resource's state) is answered by the store's IDReader
// when it has one: one statement without a transaction, or memory (package
// recordcache); the records are filtered by the query as Scan would
// (omi.Query.Matches) and taken in id order. Anything else runs listPage in
// a View.
func readPage[T any, PT interface {
	*T
	omi.Resource
}](ctx context.Context, s *Service, q omi.Query, pg Paging, prefix string, keep func(*T) bool) ([]*T, string, error) {
	if s.ids == nil || len(q.IDs) == 0 || len(q.IDs) > omi.MaxGetIDs {
		var out []*T
		var next string
		err := s.view(ctx, func(tx omi.Tx) error {
			var err error
			out, next, err = listPage[T, PT](tx, q, pg, prefix, keep)
			return err
		})
		return out, next, err
	}
	limit, err := resultsPerPage(pg.ResultsPerPage)
	if err != nil {
		return nil, "", err
	}
	if pg.NextPageToken != "" {
		if q.AfterID, err = decodeToken(pg.NextPageToken, prefix); err != nil {
			return nil, "", err
		}
	}
	q.Kind = PT(new(T)).Kind()
	recs, err := s.ids.GetIDs(ctx, q.Kind, q.IDs)
	if err != nil {
		return nil, "", wrapStoreErr(err)
	}
	matched := recs[:0:0]
	for _, r := range recs {
		if q.Matches(r) {
			matched = append(matched, r)
		}
	}
	slices.SortFunc(matched, func(a, b omi.Record) int { return strings.Compare(a.ID, b.ID) })
	return collectPage[T, PT](limit, keep, func(fn func(*T) (bool, error)) error {
		for _, r := range matched {
			v, err := decode[T, PT](&s.decoded, r)
			if err != nil {
				return wrapStoreErr(err)
			}
			if more, err := fn(v); err != nil || !more {
				return err
			}
		}
		return nil
	})
}

func decodeToken(tok, prefix string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), prefix+"-") || len(b) > 64 {
		return "", omi.Invalid(omi.CodeInvalidPageToken, "invalid NextPageToken")
	}
	return string(b), nil
}

// tagFilter holds the three tag filters every Read call accepts.
type tagFilter struct {
	TagKeys   []string `json:"TagKeys"`
	TagValues []string `json:"TagValues"`
	Tags      []string `json:"Tags"`
}

// match reports whether tags satisfy the filter: for each non-empty filter,
// some tag must match one of its entries (Tags entries are KEY=VALUE).
func (f *tagFilter) match(tags []omi.Tag) bool {
	if len(f.TagKeys) > 0 && !someTag(tags, func(t omi.Tag) bool { return contains(f.TagKeys, t.Key) }) {
		return false
	}
	if len(f.TagValues) > 0 && !someTag(tags, func(t omi.Tag) bool { return contains(f.TagValues, t.Value) }) {
		return false
	}
	if len(f.Tags) > 0 && !someTag(tags, func(t omi.Tag) bool { return contains(f.Tags, t.Key+"="+t.Value) }) {
		return false
	}
	return true
}

func someTag(tags []omi.Tag, pred func(omi.Tag) bool) bool {
	for _, t := range tags {
		if pred(t) {
			return true
		}
	}
	return false
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// anyPattern reports whether patterns is empty or one of them matches s.
func anyPattern(patterns []string, s string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if omi.MatchPattern(p, s) {
			return true
		}
	}
	return false
}

// intersects reports whether want is empty or shares an element with have.
func intersects[T comparable](want, have []T) bool {
	if len(want) == 0 {
		return true
	}
	for _, h := range have {
		if contains(want, h) {
			return true
		}
	}
	return false
}
