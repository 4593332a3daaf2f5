package omi

import (
	"strings"
	"time"
)

// Kind names a type of stored resource. It is also the ResourceType that
// ReadTags reports, so the values follow the OUTSCALE tag vocabulary.
type Kind string

// Kinds of stored resources.
const (
	KindAccount   Kind = "account"
	KindAccessKey Kind = "accesskey"
	KindImage     Kind = "image"
	KindSnapshot  Kind = "snapshot"
	KindVolume    Kind = "volume"
	KindVm        Kind = "instance"
	KindTask      Kind = "task"
	// KindRetired records the ids of deleted resources, so that an id is
	// never handed out twice (a client holding an old id must not reach a
	// new resource through it).
	KindRetired Kind = "retired"
	// KindWork records a resource with a transition to run (a persistent
	// work queue for the reconciler).
	KindWork Kind = "work"
	// KindSnapshotUse records that an OMI uses a snapshot, one record per
	// pair, id "<snapshot id>/<image id>": registering the thousandth OMI
	// of a snapshot then writes one small record instead of rewriting a
	// list of a thousand ids in the snapshot's document.
	KindSnapshotUse Kind = "snapuse"
)

// KindOfID tells which kind of taggable resource an id names, from its prefix.
func KindOfID(id string) (Kind, bool) {
	if k, ok := netgwKindOfID(id); ok {
		return k, true
	}
	switch {
	case ValidID(id, PrefixImage):
		return KindImage, true
	case ValidID(id, PrefixSnapshot):
		return KindSnapshot, true
	case ValidID(id, PrefixVolume):
		return KindVolume, true
	case ValidID(id, PrefixVm):
		return KindVm, true
	case ValidID(id, PrefixImageExport), ValidID(id, PrefixSnapExport):
		return KindTask, true
	case ValidID(id, PrefixSecurityGroup):
		return KindSecurityGroup, true
	case ValidID(id, PrefixPublicIp):
		return KindPublicIp, true
	case ValidKeypairID(id):
		return KindKeypair, true
	case ValidID(id, PrefixNet):
		return KindNet, true
	case ValidID(id, PrefixSubnet):
		return KindSubnet, true
	case ValidID(id, PrefixNic):
		return KindNic, true
	}
	return "", false
}

// Resource is implemented by every stored resource type. The store indexes
// the values these methods return, and keeps the rest as an opaque document.
type Resource interface {
	Kind() Kind
	ResourceID() string
	// Owner is the id of the owning account ("" for accounts themselves).
	Owner() string
	// IndexName is an optional name the store indexes for lookups (image
	// names, account emails).
	IndexName() string
	// Visibility reports whether the resource is public and which other
	// accounts it is shared with.
	Visibility() (public bool, sharedWith []string)
}

// TimeFormat is how the API writes dates: ISO 8601 with milliseconds and Z,
// the form every OUTSCALE client parses.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime formats t in UTC with TimeFormat.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Tag is a key/value label on a resource (ResourceTag in the API).
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// Permissions says who besides the owner may use a resource: launch
// permissions of an image, create-volume permissions of a snapshot.
type Permissions struct {
	AccountIds       []string `json:"AccountIds"`
	GlobalPermission bool     `json:"GlobalPermission"`
}

// PermissionsChange is the Additions/Removals pair of UpdateImage and
// UpdateSnapshot (PermissionsOnResourceCreation in the API).
type PermissionsChange struct {
	Additions *Permissions `json:"Additions,omitempty"`
	Removals  *Permissions `json:"Removals,omitempty"`
}

// Apply returns p changed by c: additions first, then removals, with account
// ids kept unique and sorted in insertion order.
func (p Permissions) Apply(c PermissionsChange) Permissions {
	out := Permissions{AccountIds: append([]string{}, p.AccountIds...), GlobalPermission: p.GlobalPermission}
	if a := c.Additions; a != nil {
		for _, id := range a.AccountIds {
			if !contains(out.AccountIds, id) {
				out.AccountIds = append(out.AccountIds, id)
			}
		}
		if a.GlobalPermission {
			out.GlobalPermission = true
		}
	}
	if r := c.Removals; r != nil {
		kept := out.AccountIds[:0]
		for _, id := range out.AccountIds {
			if !contains(r.AccountIds, id) {
				kept = append(kept, id)
			}
		}
		out.AccountIds = kept
		if r.GlobalPermission {
			out.GlobalPermission = false
		}
	}
	return out
}

// Allows reports whether account may use a resource owned by owner under p.
func (p Permissions) Allows(owner, account string) bool {
	return owner == account || p.GlobalPermission || contains(p.AccountIds, account)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// SetTag sets key to value in tags, replacing an existing value.
func SetTag(tags []Tag, key, value string) []Tag {
	for i := range tags {
		if tags[i].Key == key {
			tags[i].Value = value
			return tags
		}
	}
	return append(tags, Tag{Key: key, Value: value})
}

// RemoveTag removes key from tags; when value is non-nil only an exact
// key/value match is removed (DeleteTags semantics).
func RemoveTag(tags []Tag, key string, value *string) []Tag {
	out := tags[:0]
	for _, t := range tags {
		if t.Key == key && (value == nil || *value == t.Value) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// MatchPattern reports whether s matches pattern, where '*' matches any run
// of characters and '?' any single one (the wildcards of name filters).
func MatchPattern(pattern, s string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return pattern == s
	}
	// Iterative wildcard matching with backtracking on the last '*'.
	p, i, star, mark := 0, 0, -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Caller is the authenticated identity behind an API request.
type Caller struct {
	Account     *Account
	AccessKeyID string // "" when authenticated by login/password
}

// AccountID is the caller's account id.
func (c *Caller) AccountID() string { return c.Account.AccountId }

// Tagged is a resource that carries tags (CreateTags, DeleteTags, ReadTags).
type Tagged interface {
	Resource
	// TagList points at the resource's tags so they can be changed in place.
	TagList() *[]Tag
}
