// Package sqlite is the Store adapter on SQLite (modernc.org/sqlite, no cgo).
//
// It keeps two pools on one file: a write pool of a single connection, so
// writers queue in Go (honouring ctx) instead of spinning on SQLITE_BUSY, and
// a small read-only pool for plain reads, which WAL lets run beside a writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"healthrecord/ports"
)

// readConns is the size of the read pool: enough for a 2-core machine.
const readConns = 4

// Every connection of both pools gets these through the DSN, so none can
// miss them. synchronous=FULL: an acknowledged write survives power loss.
const pragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
	"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"

// DB is the SQLite database. It implements ports.Store.
type DB struct {
	dsn   string  // the pragmas every connection gets
	write *sql.DB // one connection: every write and every transaction
	read  *sql.DB // read-only connections for plain reads

	mu       sync.Mutex
	onOutbox []func()
}

var _ ports.Store = (*DB)(nil)

// Open opens (creating with mode 0600 if absent) the database at path. It
// does not migrate: call Migrate.
func Open(ctx context.Context, path string) (*DB, error) {
	// Create the file ourselves so that health data is never world-readable;
	// SQLite gives its -wal and -shm files the database file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	base := "file:" + escapePath(path) + "?" + pragmas
	db := &DB{dsn: base}
	// _txlock=immediate: a write transaction takes the write lock at BEGIN,
	// so it can never fail to upgrade a read lock halfway through.
	if db.write, err = openPool(ctx, base+"&_txlock=immediate", 1); err != nil {
		return nil, err
	}
	// The write pool has set WAL mode by now; query_only makes a stray write
	// through the read pool fail loudly instead of contending for the lock.
	if db.read, err = openPool(ctx, base+"&_pragma=query_only(1)", readConns); err != nil {
		_ = db.write.Close()
		return nil, err
	}
	return db, nil
}

// openPool opens and pings a pool of at most n connections.
func openPool(ctx context.Context, dsn string, n int) (*sql.DB, error) {
	p, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	p.SetMaxOpenConns(n)
	p.SetMaxIdleConns(n)
	if err := p.PingContext(ctx); err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	return p, nil
}

// escapePath makes path safe inside a file: URI.
func escapePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// Close closes both pools.
func (db *DB) Close() error {
	return errors.Join(db.read.Close(), db.write.Close())
}

// OnOutboxCommit registers fn to be called after a transaction that added
// (or re-queued) outbox events has committed, never before, so the
// dispatcher it wakes always finds them. fn runs on the committing
// goroutine and must not block.
func (db *DB) OnOutboxCommit(fn func()) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.onOutbox = append(db.onOutbox, fn)
}

// outboxCommitted calls the OnOutboxCommit functions.
func (db *DB) outboxCommitted() {
	db.mu.Lock()
	fns := append([]func(){}, db.onOutbox...)
	db.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// WithinTx runs fn in one immediate write transaction and returns the commit
// error; fn's error or panic rolls it back. Inside fn, use only tx: the
// write pool has one connection, so a write through the DB would wait for
// this transaction to end.
func (db *DB) WithinTx(ctx context.Context, fn func(tx ports.Tx) error) error {
	return db.withTx(ctx, func(t *txn) error { return fn(scope{db: db, tx: t}) })
}

// txn is one write transaction and what must happen after it commits.
type txn struct {
	*sql.Tx
	outboxChanged bool
}

func (db *DB) withTx(ctx context.Context, fn func(t *txn) error) error {
	sqlTx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	t := &txn{Tx: sqlTx}
	committed := false
	defer func() {
		if !committed {
			_ = sqlTx.Rollback() // on error and on panic, which goes on up
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	committed = true
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	if t.outboxChanged {
		db.outboxCommitted()
	}
	return nil
}

// The repositories on the DB run each call on its own.

// Users returns the account repository.
func (db *DB) Users() ports.Users { return scope{db: db}.Users() }

// Records returns the health record repository.
func (db *DB) Records() ports.Records { return scope{db: db}.Records() }

// Comments returns the comment repository.
func (db *DB) Comments() ports.Comments { return scope{db: db}.Comments() }

// Notifications returns the notification repository.
func (db *DB) Notifications() ports.Notifications { return scope{db: db}.Notifications() }

// Outbox returns the outbox repository.
func (db *DB) Outbox() ports.Outbox { return scope{db: db}.Outbox() }

// Audit returns the audit trail.
func (db *DB) Audit() ports.Audit { return scope{db: db}.Audit() }

// Sessions returns the sign-in repository.
func (db *DB) Sessions() ports.Sessions { return scope{db: db}.Sessions() }

// scope is where a repository call runs: on the DB (tx nil) or in a
// transaction. It implements ports.Tx.
type scope struct {
	db *DB
	tx *txn
}

var _ ports.Tx = scope{}

func (s scope) Users() ports.Users                 { return users{s} }
func (s scope) Records() ports.Records             { return records{s} }
func (s scope) Comments() ports.Comments           { return comments{s} }
func (s scope) Notifications() ports.Notifications { return notifications{s} }
func (s scope) Outbox() ports.Outbox               { return outbox{s} }
func (s scope) Audit() ports.Audit                 { return audit{s} }
func (s scope) Sessions() ports.Sessions           { return sessions{s} }

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// reader is for plain reads: the transaction (to see its own writes) or
// the read pool.
func (s scope) reader() querier {
	if s.tx != nil {
		return s.tx
	}
	return s.db.read
}

// writer is for single-statement writes.
func (s scope) writer() querier {
	if s.tx != nil {
		return s.tx
	}
	return s.db.write
}

// atomic runs fn in the scope's transaction, or in a new one.
func (s scope) atomic(ctx context.Context, fn func(s scope) error) error {
	if s.tx != nil {
		return fn(s)
	}
	return s.db.withTx(ctx, func(t *txn) error { return fn(scope{db: s.db, tx: t}) })
}

// outboxChanged wakes the dispatcher after commit; outside a transaction
// the statement has committed already.
func (s scope) outboxChanged() {
	if s.tx != nil {
		s.tx.outboxChanged = true
		return
	}
	s.db.outboxCommitted()
}
