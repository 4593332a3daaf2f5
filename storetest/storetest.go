// Package storetest is the conformance suite every [omi.Store] backend runs
// from its own tests, so that the embedded SQLite store and a PostgreSQL
// store provably honour the same contract: round trips, error wrapping,
// query semantics (compared against a reference model written here in plain
// Go), visibility, pagination, rollback, read-only views and serialisable
// updates under concurrency.
//
// A backend test calls:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) omi.Store { ... })
//	}
//
// open must return a new, empty store for each call and arrange for it to be
// closed (t.Cleanup); the suite may close it itself too, so Close must be
// safe to call twice.
//
// Choices the suite makes where store.go leaves room, which every backend
// must therefore follow:
//
//   - Doc is compared as JSON (decoded with UseNumber, then deep-equal), not
//     byte for byte, so a backend may keep documents in a normalising type
//     such as PostgreSQL jsonb. Docs must be valid JSON.
//   - SharedWith comes back in the order it was written; a backend may drop
//     repeated entries (the first occurrence counts). An empty list may come
//     back as nil.
//   - IDs sort by bytes (Go string order), so a PostgreSQL backend needs
//     COLLATE "C" on its id column.
//   - The function given to Scan may use the same Tx (Get, Put, Insert,
//     Delete, nested Scan) while the scan is in progress; backends whose
//     driver cannot interleave statements on one connection must buffer.
//   - Update retries internally whatever the database makes it retry
//     (serialisation failures): concurrent Updates never fail because of
//     each other.
//   - After a View or Update returns, its Tx answers every call with an
//     error, never a panic, and writes nothing.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omiproject/omi"
)

// Run runs the conformance suite, one subtest per property, each on a fresh
// store from open.
func Run(t *testing.T, open func(t *testing.T) omi.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s omi.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"DocIsCopied", testDocIsCopied},
		{"LargeDocAndManyShares", testLargeRecord},
		{"NotFound", testNotFound},
		{"InsertExists", testInsertExists},
		{"PutReplaces", testPutReplaces},
		{"DeleteRemovesShares", testDeleteRemovesShares},
		{"KindsIsolated", testKindsIsolated},
		{"ScanOrder", testScanOrder},
		{"QueryFields", testQueryFields},
		{"QueryRandomCombinations", testQueryRandom},
		{"NamePatterns", testNamePatterns},
		{"VisibleTo", testVisibleTo},
		{"Pagination", testPagination},
		{"ScanStop", testScanStop},
		{"ScanError", testScanError},
		{"ScanCallbackUsesTx", testScanCallbackUsesTx},
		{"UpdateRollback", testUpdateRollback},
		{"UpdatePanicRollsBack", testUpdatePanic},
		{"ViewCannotWrite", testViewCannotWrite},
		{"CancelledContext", testCancelled},
		{"ConcurrentCounter", testConcurrentCounter},
		{"ConcurrentViewsSeeSnapshots", testSnapshots},
		{"Ping", testPing},
		{"TxAfterReturn", testTxAfterReturn},
		{"UseAfterClose", testUseAfterClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// Kinds used by the suite.
const (
	kindA = omi.KindImage
	kindB = omi.KindSnapshot
)

var bg = context.Background()

// rec builds a record with a small document naming it.
func rec(kind omi.Kind, id, owner, name string) omi.Record {
	return omi.Record{Kind: kind, ID: id, Owner: owner, Name: name,
		Doc: []byte(fmt.Sprintf(`{"Id":%q,"Owner":%q,"Name":%q}`, id, owner, name))}
}

// update runs fn in an Update and fails the test on error.
func update(t *testing.T, s omi.Store, fn func(tx omi.Tx) error) {
	t.Helper()
	if err := s.Update(bg, fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// putAll stores recs in one Update.
func putAll(t *testing.T, s omi.Store, recs ...omi.Record) {
	t.Helper()
	update(t, s, func(tx omi.Tx) error {
		for _, r := range recs {
			if err := tx.Put(r); err != nil {
				return fmt.Errorf("put %s %s: %w", r.Kind, r.ID, err)
			}
		}
		return nil
	})
}

// get reads one record in a View.
func get(t *testing.T, s omi.Store, kind omi.Kind, id string) (omi.Record, error) {
	t.Helper()
	var r omi.Record
	err := s.View(bg, func(tx omi.Tx) error {
		var err error
		r, err = tx.Get(kind, id)
		return err
	})
	return r, err
}

// mustGet reads one record that must exist.
func mustGet(t *testing.T, s omi.Store, kind omi.Kind, id string) omi.Record {
	t.Helper()
	r, err := get(t, s, kind, id)
	if err != nil {
		t.Fatalf("Get %s %s: %v", kind, id, err)
	}
	return r
}

// scan returns the records q selects, read in a View.
func scan(t *testing.T, s omi.Store, q omi.Query) []omi.Record {
	t.Helper()
	var out []omi.Record
	err := s.View(bg, func(tx omi.Tx) error {
		return tx.Scan(q, func(r omi.Record) (bool, error) {
			out = append(out, r)
			return true, nil
		})
	})
	if err != nil {
		t.Fatalf("Scan %+v: %v", q, err)
	}
	return out
}

func ids(recs []omi.Record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

// dedup returns list without repeated entries, first occurrence kept.
func dedup(list []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// jsonEqual reports whether a and b hold the same JSON value.
func jsonEqual(a, b []byte) (bool, error) {
	decode := func(p []byte) (any, error) {
		d := json.NewDecoder(bytes.NewReader(p))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return nil, err
		}
		if d.More() {
			return nil, errors.New("trailing data after JSON value")
		}
		return v, nil
	}
	va, err := decode(a)
	if err != nil {
		return false, fmt.Errorf("decode %q: %w", a, err)
	}
	vb, err := decode(b)
	if err != nil {
		return false, fmt.Errorf("decode %q: %w", b, err)
	}
	return reflect.DeepEqual(va, vb), nil
}

// checkRecord compares a stored record with the one written.
func checkRecord(t *testing.T, got, want omi.Record) {
	t.Helper()
	if got.Kind != want.Kind || got.ID != want.ID || got.Owner != want.Owner ||
		got.Name != want.Name || got.Public != want.Public {
		t.Fatalf("record = {%q %q owner=%q name=%q public=%v}, want {%q %q owner=%q name=%q public=%v}",
			got.Kind, got.ID, got.Owner, got.Name, got.Public,
			want.Kind, want.ID, want.Owner, want.Name, want.Public)
	}
	if g, w := dedup(got.SharedWith), dedup(want.SharedWith); !slices.Equal(g, w) {
		t.Fatalf("%s %s: SharedWith = %q, want %q", want.Kind, want.ID, got.SharedWith, want.SharedWith)
	}
	eq, err := jsonEqual(got.Doc, want.Doc)
	if err != nil {
		t.Fatalf("%s %s: Doc: %v", want.Kind, want.ID, err)
	}
	if !eq {
		t.Fatalf("%s %s: Doc = %s, want %s", want.Kind, want.ID, got.Doc, want.Doc)
	}
}

func testRoundTrip(t *testing.T, s omi.Store) {
	full := omi.Record{Kind: kindA, ID: "ami-00000001", Owner: "123456789012", Name: "débian 12 [x86_64] 100%_ok",
		Public: true, SharedWith: []string{"222222222222", "111111111111", "333333333333"},
		Doc: []byte(`{"ImageId":"ami-00000001","Tags":[{"Key":"k","Value":"v \"q\" \u00e9"}],"Size":12345678901234567,` +
			`"Ratio":0.5,"Nested":{"a":[1,2,{"b":null}],"t":true},"Empty":""}`)}
	bare := omi.Record{Kind: omi.KindAccount, ID: "123456789012", Doc: []byte(`{}`)}
	dupShares := omi.Record{Kind: kindA, ID: "ami-00000002", Owner: "o", SharedWith: []string{"b", "a", "b", "c", "a"},
		Doc: []byte(`[1,"two",3.25]`)}
	all := []omi.Record{full, bare, dupShares}

	update(t, s, func(tx omi.Tx) error {
		for _, r := range all {
			if err := tx.Insert(r); err != nil {
				return err
			}
		}
		// An Update sees its own writes.
		for _, r := range all {
			got, err := tx.Get(r.Kind, r.ID)
			if err != nil {
				return fmt.Errorf("get own write: %w", err)
			}
			checkRecord(t, got, r)
		}
		return nil
	})
	for _, r := range all {
		got := mustGet(t, s, r.Kind, r.ID)
		checkRecord(t, got, r)
	}
	// Scan returns the same full records as Get.
	got := scan(t, s, omi.Query{Kind: kindA})
	if len(got) != 2 {
		t.Fatalf("scan returned %q, want 2 records", ids(got))
	}
	checkRecord(t, got[0], full)
	checkRecord(t, got[1], dupShares)
	if got := mustGet(t, s, omi.KindAccount, bare.ID); len(got.SharedWith) != 0 {
		t.Fatalf("SharedWith of unshared record = %q, want empty", got.SharedWith)
	}
}

// testDocIsCopied checks that the store keeps its own copy of what it was
// given and hands out copies: callers reuse buffers.
func testDocIsCopied(t *testing.T, s omi.Store) {
	r := rec(kindA, "ami-1", "o", "n")
	r.SharedWith = []string{"x"}
	want := r
	want.Doc = bytes.Clone(r.Doc)
	want.SharedWith = slices.Clone(r.SharedWith)
	update(t, s, func(tx omi.Tx) error {
		if err := tx.Put(r); err != nil {
			return err
		}
		copy(r.Doc, `{"Id":"XXXXX"`)
		r.SharedWith[0] = "y"
		return nil
	})
	got := mustGet(t, s, kindA, "ami-1")
	checkRecord(t, got, want)
	copy(got.Doc, "[[[[[[[[")
	if len(got.SharedWith) > 0 {
		got.SharedWith[0] = "z"
	}
	checkRecord(t, mustGet(t, s, kindA, "ami-1"), want)
}

func testLargeRecord(t *testing.T, s omi.Store) {
	big := make([]string, 0, 20000)
	for i := range 20000 {
		big = append(big, fmt.Sprintf(`{"Key":"key-%d","Value":%q}`, i, strings.Repeat("v", i%50)))
	}
	r := rec(kindA, "ami-big", "o", "big")
	r.Doc = []byte(`{"Tags":[` + strings.Join(big, ",") + `]}`)
	for i := range 200 {
		r.SharedWith = append(r.SharedWith, fmt.Sprintf("%012d", 1000-i))
	}
	putAll(t, s, r)
	checkRecord(t, mustGet(t, s, kindA, r.ID), r)
	for _, acct := range []string{r.SharedWith[0], r.SharedWith[199]} {
		if got := ids(scan(t, s, omi.Query{Kind: kindA, VisibleTo: acct})); !slices.Equal(got, []string{r.ID}) {
			t.Fatalf("VisibleTo %s = %q", acct, got)
		}
	}
}

func testNotFound(t *testing.T, s omi.Store) {
	putAll(t, s, rec(kindA, "ami-1", "o", "n"))
	for _, tc := range []struct {
		kind omi.Kind
		id   string
	}{{kindA, "ami-2"}, {kindB, "ami-1"}, {kindA, ""}, {kindA, "AMI-1"}, {kindA, "ami-1 "}} {
		_, err := get(t, s, tc.kind, tc.id)
		if !errors.Is(err, omi.ErrNotFound) {
			t.Fatalf("Get(%q, %q) error = %v, want ErrNotFound", tc.kind, tc.id, err)
		}
		err = s.Update(bg, func(tx omi.Tx) error { return tx.Delete(tc.kind, tc.id) })
		if !errors.Is(err, omi.ErrNotFound) {
			t.Fatalf("Delete(%q, %q) error = %v, want ErrNotFound", tc.kind, tc.id, err)
		}
	}
	// Delete then Get, inside one Update and after it.
	update(t, s, func(tx omi.Tx) error {
		if err := tx.Delete(kindA, "ami-1"); err != nil {
			return err
		}
		if _, err := tx.Get(kindA, "ami-1"); !errors.Is(err, omi.ErrNotFound) {
			return fmt.Errorf("Get after Delete in same Update: %v, want ErrNotFound", err)
		}
		if err := tx.Delete(kindA, "ami-1"); !errors.Is(err, omi.ErrNotFound) {
			return fmt.Errorf("second Delete: %v, want ErrNotFound", err)
		}
		return nil
	})
	if _, err := get(t, s, kindA, "ami-1"); !errors.Is(err, omi.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if got := scan(t, s, omi.Query{Kind: kindA}); len(got) != 0 {
		t.Fatalf("Scan after Delete = %q", ids(got))
	}
}

func testInsertExists(t *testing.T, s omi.Store) {
	orig := rec(kindA, "ami-1", "o", "first")
	putAll(t, s, orig)
	dup := rec(kindA, "ami-1", "other", "second")
	dup.Public = true
	var insertErr error
	err := s.Update(bg, func(tx omi.Tx) error {
		insertErr = tx.Insert(dup)
		// The failed Insert leaves the Tx usable and the record intact.
		got, err := tx.Get(kindA, "ami-1")
		if err != nil {
			return fmt.Errorf("Get after failed Insert: %w", err)
		}
		checkRecord(t, got, orig)
		return tx.Insert(rec(kindA, "ami-2", "o", "other"))
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if !errors.Is(insertErr, omi.ErrExists) {
		t.Fatalf("Insert of existing id: %v, want ErrExists", insertErr)
	}
	checkRecord(t, mustGet(t, s, kindA, "ami-1"), orig)
	mustGet(t, s, kindA, "ami-2")

	// The same id in another kind is not a clash.
	other := rec(kindB, "ami-1", "x", "y")
	update(t, s, func(tx omi.Tx) error { return tx.Insert(other) })
	checkRecord(t, mustGet(t, s, kindB, "ami-1"), other)

	// An Insert in the same Update as the first one also clashes.
	err = s.Update(bg, func(tx omi.Tx) error {
		if err := tx.Insert(rec(kindA, "ami-3", "o", "n")); err != nil {
			return err
		}
		return tx.Insert(rec(kindA, "ami-3", "o", "n"))
	})
	if !errors.Is(err, omi.ErrExists) {
		t.Fatalf("second Insert in one Update: %v, want ErrExists", err)
	}
	if _, err := get(t, s, kindA, "ami-3"); !errors.Is(err, omi.ErrNotFound) {
		t.Fatalf("rolled back Insert is visible: %v", err)
	}
}

func testPutReplaces(t *testing.T, s omi.Store) {
	v1 := rec(kindA, "ami-1", "owner1", "name1")
	v1.Public = true
	v1.SharedWith = []string{"a", "b"}
	putAll(t, s, v1)
	checkRecord(t, mustGet(t, s, kindA, "ami-1"), v1)

	v2 := omi.Record{Kind: kindA, ID: "ami-1", Owner: "owner2", Name: "name2", SharedWith: []string{"c"},
		Doc: []byte(`{"v":2}`)}
	putAll(t, s, v2)
	checkRecord(t, mustGet(t, s, kindA, "ami-1"), v2)
	for acct, want := range map[string]int{"a": 0, "b": 0, "c": 1, "owner1": 0, "owner2": 1, "z": 0} {
		if got := scan(t, s, omi.Query{Kind: kindA, VisibleTo: acct}); len(got) != want {
			t.Fatalf("after Put, VisibleTo %q sees %q, want %d records", acct, ids(got), want)
		}
	}
	for q, want := range map[string]int{"name1": 0, "name2": 1} {
		if got := scan(t, s, omi.Query{Kind: kindA, Names: []string{q}}); len(got) != want {
			t.Fatalf("after Put, Names %q = %q, want %d records", q, ids(got), want)
		}
	}
	if got := scan(t, s, omi.Query{Kind: kindA, Owners: []string{"owner1"}}); len(got) != 0 {
		t.Fatalf("after Put, old owner still indexed: %q", ids(got))
	}

	// Put with no shares clears them all; Put twice in one Update keeps the last.
	v3 := v2
	v3.SharedWith = nil
	v3.Doc = []byte(`{"v":3}`)
	v4 := v3
	v4.Doc = []byte(`{"v":4}`)
	v4.SharedWith = []string{"d"}
	update(t, s, func(tx omi.Tx) error {
		if err := tx.Put(v3); err != nil {
			return err
		}
		if err := tx.Put(v4); err != nil {
			return err
		}
		got, err := tx.Get(kindA, "ami-1")
		if err != nil {
			return err
		}
		checkRecord(t, got, v4)
		return tx.Put(v3)
	})
	checkRecord(t, mustGet(t, s, kindA, "ami-1"), v3)
	if got := scan(t, s, omi.Query{Kind: kindA, VisibleTo: "c"}); len(got) != 0 {
		t.Fatalf("share survived a Put without shares: %q", ids(got))
	}
	if got := scan(t, s, omi.Query{Kind: kindA, VisibleTo: "d"}); len(got) != 0 {
		t.Fatalf("share of an overwritten Put survived: %q", ids(got))
	}
}

func testDeleteRemovesShares(t *testing.T, s omi.Store) {
	r := rec(kindA, "ami-1", "o", "n")
	r.Public = true
	r.SharedWith = []string{"a"}
	keep := rec(kindA, "ami-2", "o", "n")
	keep.SharedWith = []string{"a"}
	putAll(t, s, r, keep)
	update(t, s, func(tx omi.Tx) error { return tx.Delete(kindA, "ami-1") })
	if got := ids(scan(t, s, omi.Query{Kind: kindA, VisibleTo: "a"})); !slices.Equal(got, []string{"ami-2"}) {
		t.Fatalf("after Delete, VisibleTo a = %q, want [ami-2]", got)
	}
	// A new record under the same id starts with no shares and not public.
	fresh := rec(kindA, "ami-1", "o2", "n2")
	update(t, s, func(tx omi.Tx) error { return tx.Insert(fresh) })
	checkRecord(t, mustGet(t, s, kindA, "ami-1"), fresh)
	if got := ids(scan(t, s, omi.Query{Kind: kindA, VisibleTo: "a"})); !slices.Equal(got, []string{"ami-2"}) {
		t.Fatalf("re-inserted record inherited old shares: VisibleTo a = %q", got)
	}
	checkRecord(t, mustGet(t, s, kindA, "ami-2"), keep)
}

func testKindsIsolated(t *testing.T, s omi.Store) {
	a := rec(kindA, "x-1", "o", "same")
	a.SharedWith = []string{"s"}
	b := rec(kindB, "x-1", "o", "same")
	b.Doc = []byte(`{"kind":"b"}`)
	c := rec(kindB, "x-2", "o", "same")
	c.Public = true
	putAll(t, s, a, b, c)
	checkRecord(t, mustGet(t, s, kindA, "x-1"), a)
	checkRecord(t, mustGet(t, s, kindB, "x-1"), b)
	for _, q := range []omi.Query{
		{Kind: kindA},
		{Kind: kindA, Owners: []string{"o"}},
		{Kind: kindA, Names: []string{"same"}},
		{Kind: kindA, NamePatterns: []string{"*"}},
		{Kind: kindA, VisibleTo: "zz"},
		{Kind: kindA, VisibleTo: "s"},
		{Kind: kindA, IDs: []string{"x-1", "x-2"}},
	} {
		want := []string{"x-1"}
		if q.VisibleTo == "zz" {
			want = nil
		}
		got := scan(t, s, q)
		if !slices.Equal(ids(got), want) {
			t.Fatalf("Scan %+v = %q, want %q", q, ids(got), want)
		}
		for _, r := range got {
			checkRecord(t, r, a)
		}
	}
	if got := ids(scan(t, s, omi.Query{Kind: omi.KindVolume})); len(got) != 0 {
		t.Fatalf("Scan of empty kind = %q", got)
	}
	update(t, s, func(tx omi.Tx) error { return tx.Delete(kindA, "x-1") })
	checkRecord(t, mustGet(t, s, kindB, "x-1"), b)
}

func testScanOrder(t *testing.T, s omi.Store) {
	// Byte order: digits < upper case < lower case < multi-byte UTF-8.
	idList := []string{"ami-b", "ami-a", "AMI-Z", "ami-10", "ami-9", "ami-", "ami-é", "ami-z", "ami-ab", "0", "ami-a0", "~", "ami-\u00ff", "ami-\u4e16"}
	rng := rand.New(rand.NewPCG(1, 2))
	// Enough records that a backend scanning in batches crosses batch edges.
	for range 700 {
		idList = append(idList, fmt.Sprintf("ami-%08x", rng.Uint32()))
	}
	idList = dedup(idList)
	shuffled := slices.Clone(idList)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var recs []omi.Record
	for _, id := range shuffled {
		recs = append(recs, rec(kindA, id, "o", ""))
	}
	putAll(t, s, recs...)
	want := slices.Clone(idList)
	slices.Sort(want)
	got := ids(scan(t, s, omi.Query{Kind: kindA}))
	if !slices.Equal(got, want) {
		t.Fatalf("Scan order:\n got %q\nwant %q", got, want)
	}
	// Scan inside an Update sees the same order, including its own writes.
	rollback := errors.New("roll back")
	err := s.Update(bg, func(tx omi.Tx) error {
		if err := tx.Put(rec(kindA, "ami-0", "o", "")); err != nil {
			return err
		}
		var got []string
		err := tx.Scan(omi.Query{Kind: kindA}, func(r omi.Record) (bool, error) {
			got = append(got, r.ID)
			return true, nil
		})
		if err != nil {
			return err
		}
		w := append(slices.Clone(want), "ami-0")
		slices.Sort(w)
		if !slices.Equal(got, w) {
			return fmt.Errorf("Scan in Update = %q, want %q", got, w)
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatalf("Update: %v", err)
	}
}

// expect returns the ids q should select from recs, in order, with Limit.
func expect(q omi.Query, recs []omi.Record) []string {
	var out []string
	for _, r := range recs {
		if q.Matches(r) {
			out = append(out, r.ID)
		}
	}
	slices.Sort(out)
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// checkQuery runs q and compares with the reference model over recs.
func checkQuery(t *testing.T, s omi.Store, q omi.Query, recs []omi.Record) {
	t.Helper()
	byID := map[string]omi.Record{}
	for _, r := range recs {
		if r.Kind == q.Kind {
			byID[r.ID] = r
		}
	}
	got := scan(t, s, q)
	want := expect(q, recs)
	if !slices.Equal(ids(got), want) {
		t.Fatalf("Scan %+v:\n got %q\nwant %q", q, ids(got), want)
	}
	for _, r := range got {
		checkRecord(t, r, byID[r.ID])
	}
}

// dataset is a small fixed population exercising every query field.
func dataset() []omi.Record {
	mk := func(kind omi.Kind, id, owner, name string, public bool, shared ...string) omi.Record {
		r := rec(kind, id, owner, name)
		r.Public = public
		r.SharedWith = shared
		return r
	}
	return []omi.Record{
		mk(kindA, "ami-01", "alice", "ubuntu-22.04", false),
		mk(kindA, "ami-02", "alice", "ubuntu-24.04", true),
		mk(kindA, "ami-03", "bob", "debian-12", false, "alice"),
		mk(kindA, "ami-04", "bob", "debian-13", false, "carol", "dave"),
		mk(kindA, "ami-05", "carol", "", false),
		mk(kindA, "ami-06", "carol", "Ubuntu-22.04", true, "alice"),
		mk(kindA, "ami-07", "", "orphan", false),
		mk(kindA, "ami-08", "dave", "100%_sure", false, "bob"),
		mk(kindA, "ami-09", "dave", "a[1]", true),
		mk(kindA, "ami-10", "erin", "ubuntu-22.04", false),
		mk(kindB, "ami-01", "zed", "ubuntu-22.04", true, "alice"),
		mk(kindB, "snap-1", "alice", "debian-12", false),
	}
}

func testQueryFields(t *testing.T, s omi.Store) {
	recs := dataset()
	putAll(t, s, recs...)
	queries := []omi.Query{
		{Kind: kindA},
		{Kind: kindB},
		{Kind: kindA, IDs: []string{"ami-03"}},
		{Kind: kindA, IDs: []string{"ami-09", "ami-01", "ami-404", "ami-01"}},
		{Kind: kindA, IDs: []string{}},
		{Kind: kindA, Owners: []string{"bob"}},
		{Kind: kindA, Owners: []string{"dave", "alice", "nobody"}},
		{Kind: kindA, Owners: []string{""}},
		{Kind: kindA, Names: []string{"ubuntu-22.04"}},
		{Kind: kindA, Names: []string{"debian-12", "debian-13", "missing"}},
		{Kind: kindA, Names: []string{""}},
		{Kind: kindA, Names: []string{"UBUNTU-22.04"}},
		{Kind: kindA, NamePatterns: []string{"ubuntu-*"}},
		{Kind: kindA, NamePatterns: []string{"*buntu-22.04"}},
		{Kind: kindA, NamePatterns: []string{"debian-1?"}},
		{Kind: kindA, NamePatterns: []string{"*"}},
		{Kind: kindA, NamePatterns: []string{""}},
		{Kind: kindA, Names: []string{"orphan"}, NamePatterns: []string{"debian-*"}},
		{Kind: kindA, VisibleTo: "alice"},
		{Kind: kindA, VisibleTo: "bob"},
		{Kind: kindA, VisibleTo: "nobody"},
		{Kind: kindA, VisibleTo: "carol"},
		{Kind: kindA, AfterID: "ami-05"},
		{Kind: kindA, AfterID: "ami-055"},
		{Kind: kindA, AfterID: "ami-10"},
		{Kind: kindA, AfterID: "a"},
		{Kind: kindA, Limit: 3},
		{Kind: kindA, Limit: 100},
		{Kind: kindA, Limit: 1, AfterID: "ami-09"},
		// Combinations.
		{Kind: kindA, Owners: []string{"alice", "bob"}, NamePatterns: []string{"*22*", "debian-13"}},
		{Kind: kindA, Owners: []string{"bob"}, VisibleTo: "alice"},
		{Kind: kindA, IDs: []string{"ami-03", "ami-04", "ami-05"}, VisibleTo: "alice"},
		{Kind: kindA, Names: []string{"debian-13"}, VisibleTo: "dave"},
		{Kind: kindA, Names: []string{"debian-13"}, VisibleTo: "alice"},
		{Kind: kindA, NamePatterns: []string{"*u*"}, VisibleTo: "alice", AfterID: "ami-01", Limit: 2},
		{Kind: kindA, IDs: []string{"ami-01", "ami-02", "ami-06", "ami-10"}, Owners: []string{"alice", "erin"},
			Names: []string{"ubuntu-22.04"}, VisibleTo: "alice", AfterID: "ami-00", Limit: 5},
		{Kind: kindA, IDs: []string{"ami-06"}, Owners: []string{"alice"}},
		{Kind: kindB, VisibleTo: "alice"},
		{Kind: kindB, IDs: []string{"ami-01"}, VisibleTo: "bob"},
	}
	for _, q := range queries {
		checkQuery(t, s, q, recs)
	}
}

// testQueryRandom compares many random queries, combining every field, with
// the reference model over a random population.
func testQueryRandom(t *testing.T, s omi.Store) {
	rng := rand.New(rand.NewPCG(7, 11))
	owners := []string{"a1", "a2", "a3", "a4", "a5", ""}
	names := []string{"alpha", "beta", "alp%a", "al_ha", "ALPHA", "", "gamma-1", "gamma-2", "[g]", "alphabet"}
	pick := func(list []string, n int) []string {
		var out []string
		for range n {
			out = append(out, list[rng.IntN(len(list))])
		}
		return out
	}
	var recs []omi.Record
	var allIDs []string
	for i := range 400 {
		kind := kindA
		if i%5 == 0 {
			kind = kindB
		}
		id := fmt.Sprintf("id-%03d", rng.IntN(900))
		r := rec(kind, id, owners[rng.IntN(len(owners))], names[rng.IntN(len(names))])
		r.Public = rng.IntN(10) == 0
		if rng.IntN(4) == 0 {
			r.SharedWith = dedup(pick(owners[:5], 1+rng.IntN(3)))
		}
		recs = append(recs, r)
		allIDs = append(allIDs, id)
	}
	putAll(t, s, recs...)
	// Later Puts of the same kind and id replace earlier ones.
	final := map[omi.Kind]map[string]omi.Record{}
	for _, r := range recs {
		if final[r.Kind] == nil {
			final[r.Kind] = map[string]omi.Record{}
		}
		final[r.Kind][r.ID] = r
	}
	recs = recs[:0]
	for _, m := range final {
		for _, r := range m {
			recs = append(recs, r)
		}
	}
	patterns := []string{"alp*", "*a", "?????", "al?ha", "*%*", "*_*", "[*", "gamma-?", "*", "a*p*", "ALP*", "beta"}
	for i := range 300 {
		q := omi.Query{Kind: kindA}
		if i%7 == 0 {
			q.Kind = kindB
		}
		if rng.IntN(3) == 0 {
			q.IDs = pick(allIDs, 1+rng.IntN(30))
		}
		if rng.IntN(3) == 0 {
			q.Owners = pick(owners, 1+rng.IntN(2))
		}
		if rng.IntN(3) == 0 {
			q.Names = pick(names, 1+rng.IntN(2))
		}
		if rng.IntN(3) == 0 {
			q.NamePatterns = pick(patterns, 1+rng.IntN(2))
		}
		if rng.IntN(2) == 0 {
			q.VisibleTo = owners[rng.IntN(5)]
		}
		if rng.IntN(3) == 0 {
			q.AfterID = fmt.Sprintf("id-%03d", rng.IntN(900))
		}
		if rng.IntN(2) == 0 {
			q.Limit = 1 + rng.IntN(20)
		}
		checkQuery(t, s, q, recs)
	}
}

// testNamePatterns checks wildcard matching against omi.MatchPattern on
// names full of characters that SQL LIKE, GLOB and regular expressions treat
// specially.
func testNamePatterns(t *testing.T, s omi.Store) {
	names := []string{"", "a", "ab", "abc", "a_c", "a%c", "aXc", "a[b]c", "a[c", "ab]", "a\\c", "a\\%c", "a*c", "a?c",
		"a.c", "a^c", "a$c", "a'c", `a"c`, "a-c", "A_C", "abc\n", "café", "cafe", "caf", "ÿ", "日本", "日本語", "100%",
		"%", "_", "[", "]", "*", "?", "\\", "a b c", "{a,b}", "a|c", "(ab)", "a+c", "a\tc"}
	var recs []omi.Record
	for i, n := range names {
		recs = append(recs, rec(kindA, fmt.Sprintf("ami-%03d", i), "o", n))
	}
	putAll(t, s, recs...)
	patterns := []string{"", "*", "?", "??", "a?c", "a_c", "a%c", "a%", "%", "_", "_%", "a[b]c", "a[bc]*", "[", "[*",
		"*]", "a[!b]c", "a\\c", "a\\%c", "a\\_c", "\\*", "a*c", "a\\*c", "a.c", "a.*", "^a", "a$c", "a'c", `a"c`,
		"A_C", "A?C", "caf?", "caf??", "caf*", "caf?\x00", "?本", "??????", "日*", "*語", "100%", "*%", "*_", "**",
		"a**c", "*a*b*c*", "a?*c", "{a,b}", "a|c", "(ab)", "a+c", "a?c\n", "a\tc", "*\n", "%%", "a b*", "*[*]*"}
	for _, p := range patterns {
		checkQuery(t, s, omi.Query{Kind: kindA, NamePatterns: []string{p}}, recs)
		checkQuery(t, s, omi.Query{Kind: kindA, Names: []string{p}}, recs)
	}
	checkQuery(t, s, omi.Query{Kind: kindA, NamePatterns: []string{"a_c", "%", "caf?"}}, recs)
	checkQuery(t, s, omi.Query{Kind: kindA, NamePatterns: []string{"a?c"}, Limit: 3, AfterID: "ami-005"}, recs)
}

func testVisibleTo(t *testing.T, s omi.Store) {
	var recs []omi.Record
	// Enough records per arm (own, public, shared) that a backend paging in
	// batches, or merging the three, has to get ordering right.
	for i := range 300 {
		r := rec(kindA, fmt.Sprintf("ami-%04d", i), fmt.Sprintf("owner-%d", i%7), "n")
		r.Public = i%11 == 0
		if i%5 == 0 {
			r.SharedWith = []string{fmt.Sprintf("owner-%d", (i+1)%7), "guest"}
		}
		if i%13 == 0 {
			// Owned, public and shared with its owner at once.
			r.Public = true
			r.SharedWith = append(r.SharedWith, r.Owner)
		}
		recs = append(recs, r)
	}
	putAll(t, s, recs...)
	for _, v := range []string{"owner-0", "owner-3", "guest", "stranger"} {
		checkQuery(t, s, omi.Query{Kind: kindA, VisibleTo: v}, recs)
		checkQuery(t, s, omi.Query{Kind: kindA, VisibleTo: v, Limit: 50}, recs)
		checkQuery(t, s, omi.Query{Kind: kindA, VisibleTo: v, Limit: 7, AfterID: "ami-0150"}, recs)
		checkQuery(t, s, omi.Query{Kind: kindA, VisibleTo: v, Owners: []string{"owner-1", "owner-0"}}, recs)
		checkQuery(t, s, omi.Query{Kind: kindA, VisibleTo: v, IDs: []string{"ami-0000", "ami-0005", "ami-0006", "ami-0011"}}, recs)
	}
	// A stranger sees exactly the public records, each once.
	got := scan(t, s, omi.Query{Kind: kindA, VisibleTo: "stranger"})
	for _, r := range got {
		if !r.Public {
			t.Fatalf("stranger sees private record %s", r.ID)
		}
	}
}

func testPagination(t *testing.T, s omi.Store) {
	var recs []omi.Record
	for i := range 257 {
		r := rec(kindA, fmt.Sprintf("ami-%05d", i*3), fmt.Sprintf("o%d", i%3), "n")
		r.Public = i%4 == 0
		recs = append(recs, r)
	}
	putAll(t, s, recs...)
	for _, base := range []omi.Query{{Kind: kindA}, {Kind: kindA, VisibleTo: "o1"}, {Kind: kindA, Owners: []string{"o2"}}} {
		for _, limit := range []int{1, 7, 50, 256, 257, 1000} {
			want := expect(base, recs)
			var got []string
			q := base
			q.Limit = limit
			for pages := 0; ; pages++ {
				if pages > len(recs)+1 {
					t.Fatalf("pagination of %+v does not end", base)
				}
				page := ids(scan(t, s, q))
				if len(page) > limit {
					t.Fatalf("page of %d records with Limit %d", len(page), limit)
				}
				got = append(got, page...)
				if len(page) < limit {
					break
				}
				q.AfterID = page[len(page)-1]
			}
			if !slices.Equal(got, want) {
				t.Fatalf("pages of %+v with Limit %d:\n got %q\nwant %q", base, limit, got, want)
			}
		}
	}
}

func testScanStop(t *testing.T, s omi.Store) {
	var recs []omi.Record
	for i := range 600 {
		recs = append(recs, rec(kindA, fmt.Sprintf("ami-%04d", i), "o", "n"))
	}
	putAll(t, s, recs...)
	for _, stopAt := range []int{1, 3, 300, 599} {
		for _, q := range []omi.Query{{Kind: kindA}, {Kind: kindA, VisibleTo: "o"}, {Kind: kindA, Limit: 1000}} {
			var seen []string
			err := s.View(bg, func(tx omi.Tx) error {
				return tx.Scan(q, func(r omi.Record) (bool, error) {
					seen = append(seen, r.ID)
					return len(seen) < stopAt, nil
				})
			})
			if err != nil {
				t.Fatalf("Scan stopped by fn: %v", err)
			}
			if want := expect(q, recs)[:stopAt]; !slices.Equal(seen, want) {
				t.Fatalf("fn returning false after %d records: saw %d (%q...)", stopAt, len(seen), seen[:min(3, len(seen))])
			}
		}
	}
}

func testScanError(t *testing.T, s omi.Store) {
	var recs []omi.Record
	for i := range 300 {
		recs = append(recs, rec(kindA, fmt.Sprintf("ami-%04d", i), "o", "n"))
	}
	putAll(t, s, recs...)
	boom := errors.New("boom")
	for _, failAt := range []int{1, 2, 299} {
		calls := 0
		var scanErr error
		err := s.View(bg, func(tx omi.Tx) error {
			scanErr = tx.Scan(omi.Query{Kind: kindA}, func(r omi.Record) (bool, error) {
				calls++
				if calls == failAt {
					return true, fmt.Errorf("record %s: %w", r.ID, boom)
				}
				return true, nil
			})
			return scanErr
		})
		if !errors.Is(scanErr, boom) || !errors.Is(err, boom) {
			t.Fatalf("Scan error = %v, View error = %v, want both to wrap fn's error", scanErr, err)
		}
		if calls != failAt {
			t.Fatalf("fn called %d times after failing at call %d", calls, failAt)
		}
	}
	// The Tx stays usable after a Scan stopped by fn's error.
	update(t, s, func(tx omi.Tx) error {
		err := tx.Scan(omi.Query{Kind: kindA}, func(omi.Record) (bool, error) { return false, boom })
		if !errors.Is(err, boom) {
			return fmt.Errorf("Scan error = %v", err)
		}
		return tx.Put(rec(kindA, "ami-9999", "o", "n"))
	})
	mustGet(t, s, kindA, "ami-9999")
}

func testScanCallbackUsesTx(t *testing.T, s omi.Store) {
	var recs []omi.Record
	for i := range 400 {
		recs = append(recs, rec(kindA, fmt.Sprintf("ami-%04d", i), "o", "n"))
	}
	putAll(t, s, recs...)
	// Rewrite every record while scanning, and read another kind.
	update(t, s, func(tx omi.Tx) error {
		return tx.Scan(omi.Query{Kind: kindA}, func(r omi.Record) (bool, error) {
			if _, err := tx.Get(kindA, r.ID); err != nil {
				return false, err
			}
			r.Name = "renamed"
			r.Doc = []byte(`{"renamed":true}`)
			if err := tx.Put(r); err != nil {
				return false, err
			}
			if err := tx.Insert(rec(kindB, r.ID, "o", "copy")); err != nil {
				return false, err
			}
			inner := 0
			err := tx.Scan(omi.Query{Kind: kindB, IDs: []string{r.ID}}, func(omi.Record) (bool, error) {
				inner++
				return true, nil
			})
			if err != nil || inner != 1 {
				return false, fmt.Errorf("nested Scan: %d records, %v", inner, err)
			}
			return true, nil
		})
	})
	if got := scan(t, s, omi.Query{Kind: kindA, Names: []string{"renamed"}}); len(got) != len(recs) {
		t.Fatalf("%d records renamed, want %d", len(got), len(recs))
	}
	if got := scan(t, s, omi.Query{Kind: kindB}); len(got) != len(recs) {
		t.Fatalf("%d copies inserted, want %d", len(got), len(recs))
	}
	// Deleting while scanning.
	n := 0
	update(t, s, func(tx omi.Tx) error {
		return tx.Scan(omi.Query{Kind: kindB}, func(r omi.Record) (bool, error) {
			n++
			return true, tx.Delete(kindB, r.ID)
		})
	})
	if n != len(recs) {
		t.Fatalf("scan while deleting saw %d records, want %d", n, len(recs))
	}
	if got := scan(t, s, omi.Query{Kind: kindB}); len(got) != 0 {
		t.Fatalf("%d records left after deleting all", len(got))
	}
}

func testUpdateRollback(t *testing.T, s omi.Store) {
	orig := rec(kindA, "ami-1", "o", "n")
	orig.SharedWith = []string{"a"}
	del := rec(kindA, "ami-2", "o", "n")
	putAll(t, s, orig, del)
	fail := errors.New("fail")
	err := s.Update(bg, func(tx omi.Tx) error {
		changed := orig
		changed.Name = "changed"
		changed.SharedWith = []string{"b"}
		changed.Public = true
		if err := tx.Put(changed); err != nil {
			return err
		}
		if err := tx.Insert(rec(kindA, "ami-3", "o", "n")); err != nil {
			return err
		}
		if err := tx.Delete(kindA, "ami-2"); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", fail)
	})
	if !errors.Is(err, fail) {
		t.Fatalf("Update error = %v, want fn's error", err)
	}
	checkRecord(t, mustGet(t, s, kindA, "ami-1"), orig)
	checkRecord(t, mustGet(t, s, kindA, "ami-2"), del)
	if _, err := get(t, s, kindA, "ami-3"); !errors.Is(err, omi.ErrNotFound) {
		t.Fatalf("rolled back Insert: Get = %v", err)
	}
	if got := scan(t, s, omi.Query{Kind: kindA, VisibleTo: "b"}); len(got) != 0 {
		t.Fatalf("rolled back share visible: %q", ids(got))
	}
	// An error from a store call that fn passes on also rolls back.
	err = s.Update(bg, func(tx omi.Tx) error {
		if err := tx.Put(rec(kindA, "ami-4", "o", "n")); err != nil {
			return err
		}
		return tx.Insert(orig)
	})
	if !errors.Is(err, omi.ErrExists) {
		t.Fatalf("Update error = %v, want ErrExists", err)
	}
	if _, err := get(t, s, kindA, "ami-4"); !errors.Is(err, omi.ErrNotFound) {
		t.Fatalf("write before a failed Insert survived: Get = %v", err)
	}
}

func testUpdatePanic(t *testing.T, s omi.Store) {
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic in fn did not reach the caller")
			}
		}()
		_ = s.Update(bg, func(tx omi.Tx) error {
			if err := tx.Put(rec(kindA, "ami-1", "o", "n")); err != nil {
				return err
			}
			panic("fn panics")
		})
	}()
	// The store is still usable (the transaction was not leaked) and the
	// write was rolled back.
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := s.Update(ctx, func(tx omi.Tx) error { return tx.Put(rec(kindA, "ami-2", "o", "n")) }); err != nil {
		t.Fatalf("Update after a panicking one: %v", err)
	}
	if _, err := get(t, s, kindA, "ami-1"); !errors.Is(err, omi.ErrNotFound) {
		t.Fatalf("write of a panicking Update survived: Get = %v", err)
	}
}

func testViewCannotWrite(t *testing.T, s omi.Store) {
	orig := rec(kindA, "ami-1", "o", "n")
	putAll(t, s, orig)
	changed := orig
	changed.Name = "changed"
	var errs [3]error
	// fn ignores the errors and returns nil: still nothing may be written.
	err := s.View(bg, func(tx omi.Tx) error {
		errs[0] = tx.Put(changed)
		errs[1] = tx.Insert(rec(kindA, "ami-2", "o", "n"))
		errs[2] = tx.Delete(kindA, "ami-1")
		return nil
	})
	if err != nil {
		t.Logf("View returned %v", err)
	}
	for i, e := range errs {
		if e == nil {
			t.Fatalf("write %d in a View returned no error", i)
		}
	}
	checkRecord(t, mustGet(t, s, kindA, "ami-1"), orig)
	if _, err := get(t, s, kindA, "ami-2"); !errors.Is(err, omi.ErrNotFound) {
		t.Fatalf("Insert in a View was written: Get = %v", err)
	}
	// View returns fn's error.
	fail := errors.New("fail")
	if err := s.View(bg, func(omi.Tx) error { return fail }); !errors.Is(err, fail) {
		t.Fatalf("View error = %v, want fn's error", err)
	}
}

func testCancelled(t *testing.T, s omi.Store) {
	ctx, cancel := context.WithCancel(bg)
	cancel()
	err := s.Update(ctx, func(tx omi.Tx) error { return tx.Put(rec(kindA, "ami-1", "o", "n")) })
	if err == nil {
		t.Fatal("Update with a cancelled context returned no error")
	}
	if _, err := get(t, s, kindA, "ami-1"); !errors.Is(err, omi.ErrNotFound) {
		t.Fatalf("Update with a cancelled context committed: Get = %v", err)
	}
	if err := s.View(ctx, func(tx omi.Tx) error {
		_, err := tx.Get(kindA, "ami-1")
		return err
	}); err == nil {
		t.Fatal("View with a cancelled context returned no error")
	}
	// Cancelled while fn runs: the Update must not commit.
	ctx, cancel = context.WithCancel(bg)
	err = s.Update(ctx, func(tx omi.Tx) error {
		if err := tx.Put(rec(kindA, "ami-2", "o", "n")); err != nil {
			return err
		}
		cancel()
		return nil
	})
	if err == nil {
		t.Fatal("Update cancelled during fn returned no error")
	}
	if _, err := get(t, s, kindA, "ami-2"); !errors.Is(err, omi.ErrNotFound) {
		t.Fatalf("Update cancelled during fn committed: Get = %v", err)
	}
	putAll(t, s, rec(kindA, "ami-3", "o", "n"))
}

// counter reads the integer document of a counter record.
func counter(tx omi.Tx, id string) (int, error) {
	r, err := tx.Get(kindA, id)
	if err != nil {
		return 0, err
	}
	var doc struct{ N int }
	if err := json.Unmarshal(r.Doc, &doc); err != nil {
		return 0, err
	}
	return doc.N, nil
}

func setCounter(tx omi.Tx, id string, n int) error {
	return tx.Put(omi.Record{Kind: kindA, ID: id, Owner: "o", Doc: []byte(`{"N":` + strconv.Itoa(n) + `}`)})
}

func testConcurrentCounter(t *testing.T, s omi.Store) {
	update(t, s, func(tx omi.Tx) error { return setCounter(tx, "counter", 0) })
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				err := s.Update(bg, func(tx omi.Tx) error {
					n, err := counter(tx, "counter")
					if err != nil {
						return err
					}
					// Also insert a record, so the counter and the count of
					// inserted records must agree at the end.
					if err := tx.Insert(rec(kindB, fmt.Sprintf("w%d-%d", w, i), "o", "n")); err != nil {
						return err
					}
					return setCounter(tx, "counter", n+1)
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Update failed: %v", err)
	}
	var n int
	if err := s.View(bg, func(tx omi.Tx) error {
		var err error
		n, err = counter(tx, "counter")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n != workers*each {
		t.Fatalf("counter = %d after %d increments: Updates are not serialisable", n, workers*each)
	}
	if got := scan(t, s, omi.Query{Kind: kindB}); len(got) != workers*each {
		t.Fatalf("%d records inserted, want %d", len(got), workers*each)
	}
}

// testSnapshots moves units between two records while Views read both and
// scan a kind that Updates insert into two records at a time: every View must
// see a state that existed between two Updates.
func testSnapshots(t *testing.T, s omi.Store) {
	const total = 100
	update(t, s, func(tx omi.Tx) error {
		if err := setCounter(tx, "left", total); err != nil {
			return err
		}
		return setCounter(tx, "right", 0)
	})
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	var wg sync.WaitGroup
	var updateErr error
	wg.Go(func() {
		defer cancel()
		for i := range 60 {
			err := s.Update(bg, func(tx omi.Tx) error {
				l, err := counter(tx, "left")
				if err != nil {
					return err
				}
				if err := setCounter(tx, "left", l-1); err != nil {
					return err
				}
				for j := range 2 {
					if err := tx.Insert(rec(kindB, fmt.Sprintf("pair-%03d-%d", i, j), "o", "n")); err != nil {
						return err
					}
				}
				r, err := counter(tx, "right")
				if err != nil {
					return err
				}
				return setCounter(tx, "right", r+1)
			})
			if err != nil {
				updateErr = err
				return
			}
		}
	})
	viewErrs := make(chan error, 4)
	var views [2]int
	for v := range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				err := s.View(bg, func(tx omi.Tx) error {
					l, err := counter(tx, "left")
					if err != nil {
						return err
					}
					n := 0
					if err := tx.Scan(omi.Query{Kind: kindB}, func(omi.Record) (bool, error) {
						n++
						return true, nil
					}); err != nil {
						return err
					}
					r, err := counter(tx, "right")
					if err != nil {
						return err
					}
					if l+r != total || n != 2*r {
						return fmt.Errorf("inconsistent View: left %d + right %d != %d, or %d pairs inserted for %d moves", l, r, total, n, r)
					}
					return nil
				})
				if err != nil {
					viewErrs <- err
					return
				}
				views[v]++
			}
		})
	}
	wg.Wait()
	close(viewErrs)
	if updateErr != nil {
		t.Fatalf("Update: %v", updateErr)
	}
	for err := range viewErrs {
		t.Fatal(err)
	}
	if views[0]+views[1] == 0 {
		t.Fatal("no View ran during the Updates")
	}
}

func testPing(t *testing.T, s omi.Store) {
	if err := s.Ping(bg); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	putAll(t, s, rec(kindA, "ami-1", "o", "n"))
	if err := s.Ping(bg); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testTxAfterReturn(t *testing.T, s omi.Store) {
	putAll(t, s, rec(kindA, "ami-1", "o", "n"))
	var viewTx, updateTx omi.Tx
	if err := s.View(bg, func(tx omi.Tx) error { viewTx = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx omi.Tx) error { updateTx = tx; return nil })
	var failedTx omi.Tx
	_ = s.Update(bg, func(tx omi.Tx) error { failedTx = tx; return errors.New("fail") })
	for name, tx := range map[string]omi.Tx{"View": viewTx, "Update": updateTx, "failed Update": failedTx} {
		if _, err := tx.Get(kindA, "ami-1"); err == nil {
			t.Fatalf("Get on a %s Tx after return: no error", name)
		}
		if err := tx.Put(rec(kindA, "ami-2", "o", "n")); err == nil {
			t.Fatalf("Put on a %s Tx after return: no error", name)
		}
		if err := tx.Insert(rec(kindA, "ami-3", "o", "n")); err == nil {
			t.Fatalf("Insert on a %s Tx after return: no error", name)
		}
		if err := tx.Delete(kindA, "ami-1"); err == nil {
			t.Fatalf("Delete on a %s Tx after return: no error", name)
		}
		called := false
		if err := tx.Scan(omi.Query{Kind: kindA}, func(omi.Record) (bool, error) { called = true; return true, nil }); err == nil {
			t.Fatalf("Scan on a %s Tx after return: no error", name)
		}
		if called {
			t.Fatalf("Scan on a %s Tx after return called fn", name)
		}
	}
	// Nothing was written and the store still works.
	got := ids(scan(t, s, omi.Query{Kind: kindA}))
	if !slices.Equal(got, []string{"ami-1"}) {
		t.Fatalf("records after writes on finished Txs: %q", got)
	}
	putAll(t, s, rec(kindA, "ami-4", "o", "n"))
}

func testUseAfterClose(t *testing.T, s omi.Store) {
	putAll(t, s, rec(kindA, "ami-1", "o", "n"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.View(bg, func(omi.Tx) error { return nil }); err == nil {
		t.Fatal("View after Close: no error")
	}
	if err := s.Update(bg, func(omi.Tx) error { return nil }); err == nil {
		t.Fatal("Update after Close: no error")
	}
	if err := s.Ping(bg); err == nil {
		t.Fatal("Ping after Close: no error")
	}
	_ = s.Close() // a second Close must not panic
}
