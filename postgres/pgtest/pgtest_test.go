package pgtest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestWithSearchPath(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u:p@h:5/db?sslmode=disable", "postgres://u:p@h:5/db?search_path=s1&sslmode=disable"},
		{"postgresql://h/db?search_path=old", "postgresql://h/db?search_path=s1"},
		{"host=/tmp dbname=x", "host=/tmp dbname=x search_path='s1'"},
	} {
		got, err := WithSearchPath(tc.dsn, "s1")
		if err != nil || got != tc.want {
			t.Errorf("WithSearchPath(%q) = %q, %v; want %q", tc.dsn, got, err, tc.want)
		}
	}
}

// TestDSN checks that each DSN names its own, empty schema.
func TestDSN(t *testing.T) {
	ctx := context.Background()
	var schemas []string
	for range 2 {
		conn, err := pgx.Connect(ctx, DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var schema string
		var tables int
		if err := conn.QueryRow(ctx, "SELECT current_schema(), (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema())").Scan(&schema, &tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Fatalf("schema %s holds %d tables", schema, tables)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
		schemas = append(schemas, schema)
	}
	if schemas[0] == schemas[1] {
		t.Fatalf("two DSNs share schema %s", schemas[0])
	}
}

// TestNoServer runs this test binary again with no server available: the
// test using DSN must skip, or fail when CI=true.
func TestNoServer(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "1" {
		DSN(t)
		t.Log("got a database")
		return
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvDSN+"=") && !strings.HasPrefix(kv, "CI=") && !strings.HasPrefix(kv, EnvBinDir+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PGTEST_CHILD=1", EnvBinDir+"="+t.TempDir())
	for _, ci := range []string{"true", "false"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNoServer$", "-test.v", "-test.count=1")
		cmd.Env = append(env, "CI="+ci)
		out, err := cmd.CombinedOutput()
		switch {
		case ci == "true" && (err == nil || !strings.Contains(string(out), "--- FAIL: TestNoServer")):
			t.Fatalf("CI=true: want a failure, got %v:\n%s", err, out)
		case ci != "true" && (err != nil || !strings.Contains(string(out), "--- SKIP: TestNoServer")):
			t.Fatalf("CI=%s: want a skip, got %v:\n%s", ci, err, out)
		}
	}
}
