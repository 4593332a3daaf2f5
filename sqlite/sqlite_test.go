package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/storetest"
)

// openT opens a store in a fresh temporary directory, closed at cleanup.
func openT(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "omi.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) omi.Store { return openT(t) })
}
