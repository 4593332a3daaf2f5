package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"github.com/omiproject/omi/internal/migration"
	"io/fs"
	"time"
)

// migrationFS holds the schema, one file per version. A released migration
// is never edited: changes go into a new, higher-numbered file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrate applies the migrations of fsys that db has not recorded yet, all in
// one transaction: a failure leaves the schema as it was. db must be the
// writer, whose transactions begin IMMEDIATE, so two processes opening the
// same new file do not both apply the same migration.
func migrate(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	ms, err := migration.Load(fsys)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if len(ms) > 0 && current > ms[len(ms)-1].Version {
		return fmt.Errorf("database schema version %d is newer than this program's %d", current, ms[len(ms)-1].Version)
	}
	for _, m := range ms {
		if m.Version <= current {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
			m.Version, m.Name, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("migration %s: record: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
