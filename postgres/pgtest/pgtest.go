// Package pgtest gives tests a real PostgreSQL database to run against.
//
// When the environment variable OMI_TEST_POSTGRES holds a DSN, tests use
// that server. Otherwise the first test that asks starts a throw-away server
// for the whole test binary from the PostgreSQL binaries installed on the
// machine (Debian's postgresql package puts them in
// /usr/lib/postgresql/<version>/bin): initdb into a temporary directory,
// then postgres listening only on a Unix socket in that directory. Running
// as root, both run as the postgres user (or nobody), since PostgreSQL
// refuses to run as root. When neither is possible, tests skip, or fail
// when CI=true so that CI cannot pass without having run them.
//
// Every call of DSN creates a fresh schema on the server, named in the
// returned DSN's search_path and dropped when the test ends, so tests are
// isolated from each other without the cost of a database each.
//
// A package using DSN stops the server from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the variable holding the DSN of an existing server to test
// against. Its user needs the CREATE privilege on the database.
const EnvDSN = "OMI_TEST_POSTGRES"

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
	adminDSN   string
	schemaSeq  atomic.Int64
)

// Main runs the tests of m, then Shutdown, and returns the exit code for
// os.Exit.
func Main(m *testing.M) int {
	code := m.Run()
	Shutdown()
	return code
}

// Shutdown stops the server that Admin or DSN started, if any. A TestMain
// that does more than Main calls it after m.Run.
func Shutdown() {
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
		shared = nil
	}
}

// Admin returns the DSN of the test server's maintenance connection
// (started on first use), skipping or failing tb as the package doc says
// when no server is available.
func Admin(tb testing.TB) string {
	tb.Helper()
	sharedOnce.Do(func() {
		if dsn := os.Getenv(EnvDSN); dsn != "" {
			adminDSN = dsn
			return
		}
		var dir string
		dir, sharedErr = os.MkdirTemp("", "omi-pgtest-")
		if sharedErr != nil {
			return
		}
		shared, sharedErr = Start(context.Background(), dir)
		if sharedErr != nil {
			os.RemoveAll(dir)
			return
		}
		adminDSN = shared.DSN("postgres")
	})
	if sharedErr != nil {
		if errors.Is(sharedErr, ErrNoBinaries) && os.Getenv("CI") != "true" {
			tb.Skipf("no PostgreSQL server: %v (set %s or install the postgresql package)", sharedErr, EnvDSN)
		}
		tb.Fatalf("PostgreSQL test server: %v", sharedErr)
	}
	return adminDSN
}

// DSN returns the DSN of a new, empty schema on the test server, dropped
// (with everything in it) when tb's test ends.
func DSN(tb testing.TB) string {
	tb.Helper()
	admin := Admin(tb)
	schema := fmt.Sprintf("omitest_%d_%d", os.Getpid(), schemaSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := execSQL(ctx, admin, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := execSQL(ctx, admin, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	dsn, err := WithSearchPath(admin, schema)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// WithSearchPath returns dsn with its search_path set to schema, in either
// DSN syntax (URL or keyword/value).
func WithSearchPath(dsn, schema string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse DSN: %w", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	// In keyword/value form a later keyword overrides an earlier one.
	return dsn + " search_path='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(schema) + "'", nil
}

// execSQL runs one statement on a connection of its own.
func execSQL(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}
