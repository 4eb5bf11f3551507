package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"healthrecord/migrations"
)

// MigrationStatus is one embedded migration and whether it is applied.
type MigrationStatus struct {
	Version   int64
	Name      string // file name, e.g. 00001_init.sql
	Applied   bool
	AppliedAt time.Time // zero when pending
}

// provider is goose over a database/sql view of the pool with the
// embedded PostgreSQL migrations. The session lock makes instances that
// start together migrate one after the other.
func (db *DB) provider() (*goose.Provider, *sql.DB, error) {
	fsys, err := fs.Sub(migrations.PostgresFS, "postgres")
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(db.pool)
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		_ = sqlDB.Close()
		return nil, nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	return p, sqlDB, nil
}

// Migrate applies every pending migration, each in its own transaction.
func (db *DB) Migrate(ctx context.Context) error {
	_, err := db.ApplyMigrations(ctx)
	return err
}

// ErrNewerDatabase is returned for a database that has a migration this
// binary does not know: a newer healthrecord wrote it.
var ErrNewerDatabase = errors.New("the database was written by a newer healthrecord")

// ApplyMigrations applies every pending migration and returns the file
// names of those it applied. It refuses a database that has a migration
// it does not know (ErrNewerDatabase), before changing anything.
func (db *DB) ApplyMigrations(ctx context.Context) ([]string, error) {
	p, sqlDB, err := db.provider()
	if err != nil {
		return nil, err
	}
	defer sqlDB.Close()
	if err := db.checkKnown(ctx, p); err != nil {
		return nil, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	names := make([]string, 0, len(res))
	for _, r := range res {
		names = append(names, path.Base(r.Source.Path))
	}
	return names, nil
}

// checkKnown compares the highest applied migration with the embedded ones.
func (db *DB) checkKnown(ctx context.Context, p *goose.Provider) error {
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, goose.DefaultTablename).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if !exists {
		return nil // a new database
	}
	var applied int64
	if err := db.pool.QueryRow(ctx,
		`SELECT coalesce(max(version_id), 0) FROM `+goose.DefaultTablename+` WHERE is_applied`).Scan(&applied); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	var known int64
	for _, s := range p.ListSources() {
		known = max(known, s.Version)
	}
	if applied > known {
		return fmt.Errorf("%w (its migration %05d is unknown to this binary, which knows up to %05d)",
			ErrNewerDatabase, applied, known)
	}
	return nil
}

// MigrationStatus lists the embedded migrations in version order.
func (db *DB) MigrationStatus(ctx context.Context) ([]MigrationStatus, error) {
	p, sqlDB, err := db.provider()
	if err != nil {
		return nil, err
	}
	defer sqlDB.Close()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: migration status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		out = append(out, MigrationStatus{
			Version:   s.Source.Version,
			Name:      path.Base(s.Source.Path),
			Applied:   s.State == goose.StateApplied,
			AppliedAt: s.AppliedAt,
		})
	}
	return out, nil
}

// errPending is Ready's answer while migrations are missing.
var errPending = errors.New("postgres: migrations pending")

// Ready reports whether the database answers and has every migration
// applied.
func (db *DB) Ready(ctx context.Context) error {
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, goose.DefaultTablename).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: not ready: %w", err)
	}
	if !exists {
		return errPending
	}
	p, sqlDB, err := db.provider()
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("postgres: not ready: %w", err)
	}
	if pending {
		return errPending
	}
	return nil
}
