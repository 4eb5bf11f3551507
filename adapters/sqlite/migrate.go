package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"time"

	"github.com/pressly/goose/v3"

	"healthrecord/migrations"
)

// MigrationStatus is one embedded migration and whether it is applied.
type MigrationStatus struct {
	Version   int64
	Name      string // file name, e.g. 00001_init.sql
	Applied   bool
	AppliedAt time.Time // zero when pending
}

// provider is goose over pool with the embedded migrations; goose logs
// through the process's default slog logger.
func provider(pool *sql.DB) (*goose.Provider, error) {
	p, err := goose.NewProvider(goose.DialectSQLite3, pool, migrations.FS, goose.WithSlog(slog.Default()))
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrations: %w", err)
	}
	return p, nil
}

// Migrate applies every pending migration, each in its own transaction.
func (db *DB) Migrate(ctx context.Context) error {
	_, err := db.ApplyMigrations(ctx)
	return err
}

// ErrNewerDatabase is returned for a database that has a migration this
// binary does not know: a newer healthrecord wrote it, and this one
// could misread it.
var ErrNewerDatabase = errors.New("the database was written by a newer healthrecord")

// ApplyMigrations applies every pending migration and returns the file
// names of those it applied. It refuses a database that has a migration
// it does not know (ErrNewerDatabase), before changing anything.
func (db *DB) ApplyMigrations(ctx context.Context) ([]string, error) {
	if db.commits.insideUnit() {
		return nil, errWriteInsideTx // the write pool's connection is that transaction's
	}
	p, err := provider(db.write)
	if err != nil {
		return nil, err
	}
	if err := db.checkKnown(ctx, p); err != nil {
		return nil, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	// One transaction for the whole backfill: one commit, not one per
	// account of an old database.
	var clashes []string
	tx, err := db.write.BeginTx(ctx, nil)
	if err == nil {
		clashes, err = backfillKeys(ctx, tx)
		if err == nil {
			err = tx.Commit()
		} else {
			_ = tx.Rollback()
		}
	}
	if err != nil {
		return nil, err
	}
	if len(clashes) > 0 {
		db.log.Warn("usernames that differ only in case or Unicode form; they sign in by their exact names until renamed",
			"count", len(clashes))
	}
	names := make([]string, 0, len(res))
	for _, r := range res {
		names = append(names, path.Base(r.Source.Path))
	}
	return names, nil
}

// checkKnown compares the highest applied migration with the embedded ones.
func (db *DB) checkKnown(ctx context.Context, p *goose.Provider) error {
	var n int
	if err := db.write.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, goose.DefaultTablename).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if n == 0 {
		return nil // a new database
	}
	var applied int64
	if err := db.write.QueryRowContext(ctx,
		`SELECT coalesce(max(version_id), 0) FROM `+goose.DefaultTablename+` WHERE is_applied`).Scan(&applied); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	var known int64
	for _, s := range p.ListSources() {
		known = max(known, s.Version)
	}
	if applied > known {
		return fmt.Errorf("%w (its migration %05d is unknown to this binary, which knows up to %05d): "+
			"run the newer healthrecord, or restore a backup made by this version", ErrNewerDatabase, applied, known)
	}
	return nil
}

// MigrationStatus lists the embedded migrations in version order. It uses
// the write pool: on a new database goose creates its version table.
func (db *DB) MigrationStatus(ctx context.Context) ([]MigrationStatus, error) {
	if db.commits.insideUnit() {
		return nil, errWriteInsideTx
	}
	p, err := provider(db.write)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: migration status: %w", err)
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
var errPending = errors.New("sqlite: migrations pending")

// Ready reports whether the database answers and has every migration
// applied. It only reads, so /readyz never waits for a writer.
func (db *DB) Ready(ctx context.Context) error {
	var n int
	// Check first: goose would try to create its table, which the read-only
	// pool refuses (and goose retries for seconds).
	err := db.read.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, goose.DefaultTablename).Scan(&n)
	if err != nil {
		return fmt.Errorf("sqlite: not ready: %w", err)
	}
	if n == 0 {
		return errPending
	}
	p, err := provider(db.read)
	if err != nil {
		return err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: not ready: %w", err)
	}
	if pending {
		return errPending
	}
	return nil
}
