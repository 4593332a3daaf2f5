package omi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Record is the unit the metadata store keeps: a resource document plus the
// few fields the store indexes for lookups and access control.
type Record struct {
	Kind  Kind
	ID    string
	Owner string // owning account id; "" for accounts
	Name  string // indexed name (image name, account email); may be ""
	// Public and SharedWith decide visibility to other accounts.
	Public     bool
	SharedWith []string
	Doc        []byte // JSON document of the resource
}

// Query selects records of one kind. Empty fields do not constrain. Results
// come in ascending ID order, which is what pagination tokens rely on.
type Query struct {
	Kind   Kind
	IDs    []string
	Owners []string
	// Names are exact names; NamePatterns may hold '*' (any run of
	// characters) and '?' (one character) wildcards, matched case-sensitively
	// as MatchPattern does. A record matches if it matches any entry of
	// Names or of NamePatterns.
	Names        []string
	NamePatterns []string
	// VisibleTo, when set, keeps records owned by that account, public
	// ones, and those shared with it.
	VisibleTo string
	// AfterID keeps records whose ID sorts after it (pagination).
	AfterID string
	// Limit caps the number of records scanned out; 0 means no limit.
	Limit int
}

// Tx is one transaction on the metadata store. A Tx obtained from Update sees
// its own writes and commits atomically; one from View is read-only.
type Tx interface {
	// Get returns the record of that kind and id, or an error wrapping
	// ErrNotFound.
	Get(kind Kind, id string) (Record, error)
	// Put inserts or replaces a record.
	Put(rec Record) error
	// Insert adds a record and fails with an error wrapping ErrExists if
	// one with that kind and id is already stored.
	Insert(rec Record) error
	// Delete removes a record; deleting a missing one wraps ErrNotFound.
	Delete(kind Kind, id string) error
	// Scan calls fn for each record matching q, in ascending ID order,
	// until fn returns false or an error.
	Scan(q Query, fn func(Record) (bool, error)) error
}

// ErrExists is returned by Tx.Insert when the id is taken.
var ErrExists = errors.New("already exists")

// Store is the metadata store: SQLite embedded by default, PostgreSQL when
// scaled out. Every API write runs in one Update, so it commits whole or not
// at all. Implementations pass the conformance suite in package storetest.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction, committed if fn returns
	// nil and rolled back otherwise. Updates are serialisable: two
	// concurrent Updates behave as if run one after the other.
	Update(ctx context.Context, fn func(Tx) error) error
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	Close() error
}

// ownerSetter is implemented by resources whose API object does not carry
// the owner, so the store restores it from the record.
type ownerSetter interface{ SetOwner(string) }

// RecordOf builds the store record of a resource.
func RecordOf(r Resource) (Record, error) {
	doc, err := json.Marshal(r)
	if err != nil {
		return Record{}, fmt.Errorf("encode %s %s: %w", r.Kind(), r.ResourceID(), err)
	}
	pub, shared := r.Visibility()
	return Record{Kind: r.Kind(), ID: r.ResourceID(), Owner: r.Owner(), Name: r.IndexName(),
		Public: pub, SharedWith: shared, Doc: doc}, nil
}

// Decode fills r from a record's document.
func Decode[T any, PT interface {
	*T
	Resource
}](rec Record) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(rec.Doc, v); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", rec.Kind, rec.ID, err)
	}
	if o, ok := any(v).(ownerSetter); ok {
		o.SetOwner(rec.Owner)
	}
	return v, nil
}

// Get loads a typed resource by id.
func Get[T any, PT interface {
	*T
	Resource
}](tx Tx, id string) (*T, error) {
	kind := PT(new(T)).Kind()
	rec, err := tx.Get(kind, id)
	if err != nil {
		return nil, err
	}
	return Decode[T, PT](rec)
}

// Put stores a typed resource, inserting or replacing it.
func Put(tx Tx, r Resource) error {
	rec, err := RecordOf(r)
	if err != nil {
		return err
	}
	return tx.Put(rec)
}

// Insert stores a new typed resource, failing with ErrExists on an id clash.
func Insert(tx Tx, r Resource) error {
	rec, err := RecordOf(r)
	if err != nil {
		return err
	}
	return tx.Insert(rec)
}

// Scan iterates typed resources matching q (q.Kind is set from T).
func Scan[T any, PT interface {
	*T
	Resource
}](tx Tx, q Query, fn func(*T) (bool, error)) error {
	q.Kind = PT(new(T)).Kind()
	return tx.Scan(q, func(rec Record) (bool, error) {
		v, err := Decode[T, PT](rec)
		if err != nil {
			return false, err
		}
		return fn(v)
	})
}

// Matches reports whether r is selected by q, ignoring Limit: the
// semantics every backend's Scan implements (the conformance suite in
// package storetest checks them against its own model). Readers that
// fetch records by id outside Scan filter them with it.
func (q Query) Matches(r Record) bool {
	if r.Kind != q.Kind {
		return false
	}
	if len(q.IDs) > 0 && !slices.Contains(q.IDs, r.ID) {
		return false
	}
	if len(q.Owners) > 0 && !slices.Contains(q.Owners, r.Owner) {
		return false
	}
	if len(q.Names) > 0 || len(q.NamePatterns) > 0 {
		ok := slices.Contains(q.Names, r.Name)
		for _, p := range q.NamePatterns {
			ok = ok || MatchPattern(p, r.Name)
		}
		if !ok {
			return false
		}
	}
	if q.VisibleTo != "" && r.Owner != q.VisibleTo && !r.Public && !slices.Contains(r.SharedWith, q.VisibleTo) {
		return false
	}
	return q.AfterID == "" || r.ID > q.AfterID
}

// MaxGetIDs bounds the ids of one IDReader.GetIDs call.
const MaxGetIDs = 64

// IDReader is implemented by stores that read records by id in one
// statement outside an explicit transaction. A single statement reads one
// consistent snapshot in SQLite and in PostgreSQL alike, so the result is
// what a View doing the same lookup would see, without the BEGIN and
// ROLLBACK that cost as much as the lookup itself. Reads by id are most of
// the API's reads (a client polling a resource's state).
type IDReader interface {
	// GetIDs returns the records of kind among ids (at most MaxGetIDs;
	// repeats allowed) that exist, each once, in no particular order. The
	// records may be shared with a cache (package recordcache): callers
	// must not modify their Doc or SharedWith.
	GetIDs(ctx context.Context, kind Kind, ids []string) ([]Record, error)
}

// ChangeFeed is implemented by stores that other processes write too
// (PostgreSQL shared by several nodes), so that what a process keeps in
// memory about records can follow their writes.
type ChangeFeed interface {
	// WatchChanges runs until ctx ends. It calls live(true) once every
	// record written by a committed Update of any process is reported to
	// changed (soon after its commit), and live(false) whenever that stops
	// holding (the connection that receives them failed: some may have
	// been lost), before trying again.
	WatchChanges(ctx context.Context, live func(bool), changed func(kind Kind, id string))
}
