package omi

import "testing"

// TestQueryMatches pins the selection rules that every store's Scan and
// the by-id readers share (storetest checks each backend against
// Query.Matches, so the rules themselves are checked here, case by case).
func TestQueryMatches(t *testing.T) {
	rec := Record{Kind: KindImage, ID: "ami-00000002", Owner: "111", Name: "web-2024",
		SharedWith: []string{"222"}}
	pub := rec
	pub.Owner, pub.Public, pub.SharedWith = "999", true, nil
	cases := []struct {
		name string
		q    Query
		r    Record
		want bool
	}{
		{"kind only", Query{Kind: KindImage}, rec, true},
		{"other kind", Query{Kind: KindSnapshot}, rec, false},
		{"id listed", Query{Kind: KindImage, IDs: []string{"ami-00000001", "ami-00000002"}}, rec, true},
		{"id not listed", Query{Kind: KindImage, IDs: []string{"ami-00000001"}}, rec, false},
		{"owner listed", Query{Kind: KindImage, Owners: []string{"111"}}, rec, true},
		{"owner not listed", Query{Kind: KindImage, Owners: []string{"222"}}, rec, false},
		{"exact name", Query{Kind: KindImage, Names: []string{"web-2024"}}, rec, true},
		{"exact name differs", Query{Kind: KindImage, Names: []string{"web"}}, rec, false},
		{"pattern", Query{Kind: KindImage, NamePatterns: []string{"web-*"}}, rec, true},
		{"pattern one char", Query{Kind: KindImage, NamePatterns: []string{"web-202?"}}, rec, true},
		{"pattern is case-sensitive", Query{Kind: KindImage, NamePatterns: []string{"WEB-*"}}, rec, false},
		{"name or pattern", Query{Kind: KindImage, Names: []string{"x"}, NamePatterns: []string{"*2024"}}, rec, true},
		{"visible to owner", Query{Kind: KindImage, VisibleTo: "111"}, rec, true},
		{"visible to a shared account", Query{Kind: KindImage, VisibleTo: "222"}, rec, true},
		{"hidden from a stranger", Query{Kind: KindImage, VisibleTo: "333"}, rec, false},
		{"public visible to a stranger", Query{Kind: KindImage, VisibleTo: "333"}, pub, true},
		{"after a smaller id", Query{Kind: KindImage, AfterID: "ami-00000001"}, rec, true},
		{"not after itself", Query{Kind: KindImage, AfterID: "ami-00000002"}, rec, false},
		{"limit is ignored", Query{Kind: KindImage, Limit: 1}, rec, true},
	}
	for _, c := range cases {
		if got := c.q.Matches(c.r); got != c.want {
			t.Errorf("%s: Matches = %v, want %v", c.name, got, c.want)
		}
	}
}
