package postgres

import (
	"context"
	"os"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/postgres/pgtest"
	"github.com/omiproject/omi/storetest"
)

var bg = context.Background()

func TestMain(m *testing.M) {
	code := m.Run()
	dropBenchSchema()
	pgtest.Shutdown()
	os.Exit(code)
}

// openT opens a store in a fresh schema, closed at cleanup.
func openT(t testing.TB) *Store {
	t.Helper()
	s, err := Open(bg, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) omi.Store { return openT(t) })
}
