package postgres

import (
	"context"
	"embed"
	"fmt"
	"github.com/omiproject/omi/internal/migration"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFS holds the schema, one file per version. A released migration
// is never edited: changes go into a new, higher-numbered file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockKey is the pg_advisory_xact_lock key that serialises
// migrations, so omi nodes started together against a new database do not
// race to create the same tables. It is one key per database (not per
// schema): unrelated schemas only wait for each other during Open.
const migrateLockKey int64 = 0x6f6d695f736368 // "omi_sch"

// migrate applies the migrations of fsys that the current schema has not
// recorded yet, all in one transaction (PostgreSQL DDL is transactional, so
// a failure leaves the schema as it was). The transaction first takes an
// advisory lock, so concurrent callers apply each migration once: the
// second one waits, then finds it recorded.
//
// It returns the schema the tables are in.
func migrate(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) (string, error) {
	ms, err := migration.Load(fsys)
	if err != nil {
		return "", fmt.Errorf("load migrations: %w", err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
		return "", fmt.Errorf("migrate: lock: %w", err)
	}
	// Unqualified names land in the first schema of search_path; without
	// one, every CREATE would fail with a less helpful message.
	var schema *string
	if err := tx.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return "", fmt.Errorf("migrate: current schema: %w", err)
	}
	if schema == nil {
		return "", fmt.Errorf("migrate: no schema of search_path exists (create it first)")
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return "", fmt.Errorf("migrate: create schema_migrations in %s: %w", *schema, err)
	}
	var current int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return "", fmt.Errorf("migrate: read version: %w", err)
	}
	if len(ms) > 0 && current > ms[len(ms)-1].Version {
		return "", fmt.Errorf("database schema %s version %d is newer than this program's %d", *schema, current, ms[len(ms)-1].Version)
	}
	for _, m := range ms {
		if m.Version <= current {
			continue
		}
		// Simple protocol: a migration file holds several statements.
		if _, err := tx.Exec(ctx, m.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
			return "", fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			return "", fmt.Errorf("migration %s: record: %w", m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("migrate: commit: %w", err)
	}
	return *schema, nil
}
