package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/omiproject/omi/postgres/pgtest"
)

// TestMain stops the throw-away PostgreSQL server that pgtest may start,
// and removes the omi binary the tests share.
func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
	buildOut  []byte
)

// buildOmi builds the omi binary once for all the tests and benchmarks
// that run it as a real process.
func buildOmi(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "omi-test-bin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "omi")
		buildOut, buildErr = exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	})
	if buildErr != nil {
		tb.Fatalf("build omi: %v\n%s", buildErr, buildOut)
	}
	return binPath
}
