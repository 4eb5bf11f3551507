// Package sqlite is the Store adapter on SQLite (modernc.org/sqlite, no cgo).
//
// It keeps two pools on one file: a write pool of a single connection, so
// writers queue in Go (honouring ctx) instead of spinning on SQLITE_BUSY, and
// a small read-only pool for plain reads, which WAL lets run beside a writer.
//
// The files, one job each: db.go opens the file and its pools; commitqueue.go
// runs every write transaction, several to one commit; repos.go binds the
// repositories to the DB or to one transaction; stmtcache.go prepares
// statements once; recordcache.go keeps records in memory; the rest are the
// repositories, one a file.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"healthrecord/domain"
	"healthrecord/ports"
)

// readConns is the size of the read pool: enough for a 2-core machine.
const readConns = 4

// Every connection of both pools gets these through the DSN, so none can
// miss them. synchronous=FULL: an acknowledged write survives power loss.
// temp_store=MEMORY: the commit queue runs each unit of work in a
// savepoint, whose statement journal otherwise spills to a temporary file
// past 64 KiB, costing a write call per page under load; our sorts and
// temporary tables are bounded by a page's size.
const pragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
	"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=temp_store(MEMORY)"

// DB is the SQLite database. It implements ports.Store.
type DB struct {
	dsn   string  // the pragmas every connection gets
	write *sql.DB // one connection, the commit queue's: every write transaction
	read  *sql.DB // read-only connections for plain reads

	readStmts, writeStmts *stmtCache
	records               *recordCache // nil: records are not cached

	commits *commitQueue

	mu       sync.Mutex
	onOutbox []func()

	log *slog.Logger
	// auditKey keys the audit chain: random from Open until UseAuditKey
	// installs the operator's, so no chain is ever written unkeyed.
	auditKey atomic.Pointer[domain.AuditKey]
}

// Option configures Open.
type Option func(*DB)

// WithLogger is where the database reports what it repaired (file modes,
// username keys); by default slog's default logger.
func WithLogger(l *slog.Logger) Option { return func(db *DB) { db.log = l } }

var _ ports.Store = (*DB)(nil)

// Open opens (creating with mode 0600 if absent) the database at path. It
// does not migrate: call Migrate.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	db := &DB{log: slog.Default()}
	for _, o := range opts {
		o(db)
	}
	// Create the file ourselves so that health data is never world-readable;
	// SQLite gives its -wal and -shm files the database file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	if err := ownerOnly(path, db.log); err != nil {
		return nil, err
	}
	base := "file:" + escapePath(path) + "?" + pragmas
	db.dsn = base
	ephemeral := make(domain.AuditKey, domain.MinAuditKeyLen)
	if _, err := rand.Read(ephemeral); err != nil {
		return nil, fmt.Errorf("sqlite: audit key: %w", err)
	}
	db.auditKey.Store(&ephemeral)
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
	db.readStmts, db.writeStmts = newStmtCache(db.read), newStmtCache(db.write)
	db.records = newRecordCache(defaultCacheBytes)
	db.commits = startCommitQueue(db.write, db.writeStmts, db.outboxCommitted,
		func(t *writeTx) error { return writeAudit(context.Background(), db, t) })
	return db, nil
}

// ownerOnly takes group and other permissions away from the database and
// its -wal and -shm files (an old file, a copy, a restore with the wrong
// umask): health data is never served from a file others can read. Done
// before SQLite opens them, since it gives new -wal and -shm files the
// database file's mode.
func ownerOnly(path string, log *slog.Logger) error {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		mode := st.Mode().Perm()
		if mode&0o077 == 0 {
			continue
		}
		if err := os.Chmod(p, mode&0o700); err != nil {
			return fmt.Errorf("sqlite: make %s owner-only: %w", p, err)
		}
		log.Warn("database file was readable by others; made owner-only",
			"file", p, "was", fmt.Sprintf("%#o", mode), "now", fmt.Sprintf("%#o", mode&0o700))
	}
	return nil
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

// Close stops the commit queue, after the transactions already queued,
// and closes both pools.
func (db *DB) Close() error {
	if db.commits.close() {
		db.readStmts.close()
		db.writeStmts.close()
	}
	err := errors.Join(db.read.Close(), db.write.Close())
	if db.records != nil { // after the pools: see walHeader
		err = errors.Join(err, db.records.close())
	}
	return err
}
