package main

import (
	"strings"
	"testing"
	"time"
)

// TestCheckRuns guards the checker of task runs that the cluster tests
// rely on: it must reject overlaps, unknown nodes and a second run while
// the first one's node was alive.
func TestCheckRuns(t *testing.T) {
	c := &multiNode{names: []string{"node-1", "node-2"}}
	killed := time.Date(2026, 1, 1, 10, 0, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		runs []taskRun
		died time.Time
		want string // "" for no error, else a part of it
	}{
		{"one run", []taskRun{{"node-1", "2026-01-01T10:00:00Z", "2026-01-01T10:00:03Z"}}, time.Time{}, ""},
		{"running", []taskRun{{"node-2", "2026-01-01T10:00:00.5Z", ""}}, time.Time{}, ""},
		{"unknown node", []taskRun{{"node-9", "2026-01-01T10:00:00Z", ""}}, time.Time{}, "unknown node"},
		{"bad start", []taskRun{{"node-1", "yesterday", ""}}, time.Time{}, "Start"},
		{"ends before it starts", []taskRun{{"node-1", "2026-01-01T10:00:03Z", "2026-01-01T10:00:01Z"}}, time.Time{}, "before it starts"},
		{"sequential", []taskRun{{"node-1", "2026-01-01T10:00:00Z", "2026-01-01T10:00:03Z"}, {"node-2", "2026-01-01T10:00:04Z", "2026-01-01T10:00:09Z"}}, time.Time{}, ""},
		{"overlap", []taskRun{{"node-1", "2026-01-01T10:00:00Z", "2026-01-01T10:00:03Z"}, {"node-2", "2026-01-01T10:00:02Z", ""}}, time.Time{}, "before run 0 ended"},
		{"taken over after the kill", []taskRun{{"node-1", "2026-01-01T10:00:00Z", ""}, {"node-2", "2026-01-01T10:00:07Z", "2026-01-01T10:00:09Z"}}, killed, ""},
		{"taken over before the kill", []taskRun{{"node-1", "2026-01-01T10:00:00Z", ""}, {"node-2", "2026-01-01T10:00:02Z", ""}}, killed, "still alive"},
		{"second run, nobody died", []taskRun{{"node-1", "2026-01-01T10:00:00Z", ""}, {"node-2", "2026-01-01T10:00:07Z", ""}}, time.Time{}, "never ended"},
	} {
		err := checkRuns(c, "export-1", tc.runs, tc.died)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}
