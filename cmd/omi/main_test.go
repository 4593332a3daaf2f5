package main

import (
	"os"
	"testing"

	"github.com/omiproject/omi/postgres/pgtest"
)

// TestMain stops the throw-away PostgreSQL server that pgtest may start.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
