package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"healthrecord/adapters/metrics"
	"healthrecord/adapters/postgres"
	"healthrecord/adapters/sqlite"
	"healthrecord/domain"
	"healthrecord/ports"
)

// isPostgres reports whether db names a PostgreSQL database (by its URL
// scheme) rather than a SQLite file.
func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// dbName is db as messages show it: a PostgreSQL URL without its password.
func dbName(db string) string {
	if !isPostgres(db) {
		return db
	}
	return redactURL(db)
}

// store is what the commands need of a database, whichever adapter.
type store interface {
	ports.Store
	metrics.Stats
	Ready(ctx context.Context) error
	OnOutboxCommit(fn func())
	ApplyMigrations(ctx context.Context) ([]string, error)
	Migrate(ctx context.Context) error
	UseAuditKey(ctx context.Context, key domain.AuditKey, rekey bool) error
	MigrationStates(ctx context.Context) ([]migrationState, error)
	// SharedCounters are the counters of the sign-in throttle and the
	// request rates that every instance on the database shares; nil when
	// one process serves it and the app and the server count in memory.
	SharedCounters(ctx context.Context) (sharedCounters, error)
	Close() error
}

// sharedCounters count throttles and rates across instances; Run prunes
// them until ctx ends.
type sharedCounters interface {
	ports.Attempts
	ports.Rates
	Run(ctx context.Context)
}

// migrationState is one embedded migration and whether it is applied.
type migrationState struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt time.Time
}

// sqliteStore and pgStore adapt the two adapters to store.
type sqliteStore struct{ *sqlite.DB }

func (s sqliteStore) MigrationStates(ctx context.Context) ([]migrationState, error) {
	st, err := s.MigrationStatus(ctx)
	out := make([]migrationState, len(st))
	for i, m := range st {
		out[i] = migrationState(m)
	}
	return out, err
}

// SharedCounters implements store: none, a SQLite file has one process.
func (sqliteStore) SharedCounters(context.Context) (sharedCounters, error) { return nil, nil }

type pgStore struct{ *postgres.DB }

// SharedCounters implements store: several instances may serve one
// PostgreSQL database, so they count in it.
func (s pgStore) SharedCounters(ctx context.Context) (sharedCounters, error) {
	c, err := s.Counters(ctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (s pgStore) MigrationStates(ctx context.Context) ([]migrationState, error) {
	st, err := s.MigrationStatus(ctx)
	out := make([]migrationState, len(st))
	for i, m := range st {
		out[i] = migrationState(m)
	}
	return out, err
}

// Close implements store.
func (s pgStore) Close() error { s.DB.Close(); return nil }

// openStore opens the database c.DB names without migrating it.
func openStore(ctx context.Context, c config, log *slog.Logger) (store, error) {
	if isPostgres(c.DB) {
		var opts []postgres.Option
		if log != nil {
			opts = append(opts, postgres.WithLogger(log))
		}
		db, err := postgres.Open(ctx, c.DB, opts...)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", dbName(c.DB), err)
		}
		return pgStore{db}, nil
	}
	var opts []sqlite.Option
	if log != nil {
		opts = append(opts, sqlite.WithLogger(log))
	}
	db, err := sqlite.Open(ctx, c.DB, opts...)
	if err != nil {
		return nil, inFile("database", c.DB, err)
	}
	return sqliteStore{db}, nil
}

// errPostgresBackup answers `backup` on PostgreSQL: its own tools do it.
var errPostgresBackup = errors.New("backup copies a SQLite database; back up PostgreSQL with pg_dump " +
	"(e.g. pg_dump --format=custom --file=healthrecord.dump DBNAME) and keep HEALTHRECORD_KEY_FILE and its .audit key beside it")

// errPostgresKeyFile refuses PostgreSQL without an explicit key file: the
// default lives beside a SQLite file, and every instance must read the same
// signing and audit keys.
var errPostgresKeyFile = errors.New("--key-file (HEALTHRECORD_KEY_FILE) is required with a PostgreSQL database: " +
	"every instance reads the same signing keys from it, and the audit key from it + .audit")

// redactURL hides a password in a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return u.Redacted()
}
