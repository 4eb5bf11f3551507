// Package postgres is the Store adapter on PostgreSQL (github.com/jackc/pgx/v5
// with pgxpool). It keeps the contract the SQLite adapter keeps, with the
// same schema in PostgreSQL's terms (migrations/postgres).
//
// Times are BIGINT unix nanoseconds in UTC, as on SQLite: timestamptz keeps
// microseconds, and a keyset cursor (created_at, id) taken from a time
// with nanoseconds must name exactly the row it came from.
//
// Writes run one batch at a time across every process on the database, as
// on SQLite: a process's write transactions are grouped (commitqueue.go)
// and each batch first takes a transaction-scoped advisory lock. The
// contract asks for it (a write waits for an open transaction; revocation
// numbers commit in their order; the audit chain has one head), and it
// keeps every invariant the SQLite adapter relies on true with several
// instances. Reads never wait for it. The outbox is still claimed with
// FOR UPDATE SKIP LOCKED, so it stays right on its own.
package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"healthrecord/domain"
	"healthrecord/ports"
)

// writerLock is the advisory lock key every write transaction holds.
const writerLock int64 = 0x68725f7772697465 // "hr_write"

// DB is the PostgreSQL database. It implements ports.Store.
type DB struct {
	pool *pgxpool.Pool
	// commits runs every write transaction of this process.
	commits *commitQueue

	mu       sync.Mutex
	onOutbox []func()

	// connConfig is the pool's, for the listening connection (Listen).
	connConfig *pgx.ConnConfig
	// instance names this process in its notifications (listen.go).
	instance string
	// listenKeepalive is how long the listening connection may be quiet
	// before it is checked.
	listenKeepalive time.Duration

	log *slog.Logger
	// tracer, if set, hears the pool's statements (tests count round
	// trips with it).
	tracer pgx.QueryTracer
	// auditKey keys the audit chain: random from Open until UseAuditKey
	// installs the operator's, so no chain is ever written unkeyed.
	auditKey atomic.Pointer[domain.AuditKey]
}

// Option configures Open.
type Option func(*DB)

// WithLogger is where the database reports what it did (migrations); by
// default slog's default logger.
func WithLogger(l *slog.Logger) Option { return func(db *DB) { db.log = l } }

var _ ports.Store = (*DB)(nil)

// Open connects to the database at url (postgres://…) and checks that it
// answers and stores text as UTF-8 (the storage quota counts UTF-8 bytes).
// It does not migrate: call Migrate.
func Open(ctx context.Context, url string, opts ...Option) (*DB, error) {
	db := &DB{log: slog.Default(), listenKeepalive: defaultListenKeepalive}
	for _, o := range opts {
		o(db)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parser's message may quote the URL, password included.
		return nil, errors.New("postgres: the database URL does not parse")
	}
	ephemeral := make(domain.AuditKey, domain.MinAuditKeyLen)
	if _, err := rand.Read(ephemeral); err != nil {
		return nil, fmt.Errorf("postgres: audit key: %w", err)
	}
	db.auditKey.Store(&ephemeral)
	db.connConfig = cfg.ConnConfig.Copy()
	if db.tracer != nil {
		cfg.ConnConfig.Tracer = db.tracer
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("postgres: instance id: %w", err)
	}
	db.instance = fmt.Sprintf("%x", id)
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	var enc string
	if err := db.pool.QueryRow(ctx, `SHOW server_encoding`).Scan(&enc); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if enc != "UTF8" {
		db.pool.Close()
		return nil, fmt.Errorf("postgres: the database's encoding is %s; healthrecord needs UTF8", enc)
	}
	db.commits = startCommitQueue(db)
	return db, nil
}

// Close closes the pool, after the calls in progress and the writes
// queued; later writes fail.
func (db *DB) Close() {
	db.commits.close()
	db.pool.Close()
}

// UseAuditKey keys the audit chain with key from now on; call it before
// the store is used. With rekey (the key was just made), an empty chain's
// head is keyed at once. PostgreSQL databases never held an unkeyed chain,
// so there is nothing older to re-key.
func (db *DB) UseAuditKey(ctx context.Context, key domain.AuditKey, rekey bool) error {
	if len(key) < domain.MinAuditKeyLen {
		return fmt.Errorf("postgres: audit key of %d bytes, at least %d needed", len(key), domain.MinAuditKeyLen)
	}
	k := append(domain.AuditKey(nil), key...)
	db.auditKey.Store(&k)
	if !rekey {
		return nil
	}
	return db.withTx(ctx, func(t *txn) error {
		if err := releaseAudit(ctx, t); err != nil {
			return err
		}
		_, err := t.Exec(ctx, `UPDATE audit_head SET head_mac = $1 WHERE one = 1 AND last_id = 0 AND head_mac = ''`,
			db.auditHasher().Head(0, ""))
		return err
	})
}

// auditHasher hashes under the current key; one per call, since a hasher
// is not safe for concurrent use.
func (db *DB) auditHasher() *domain.AuditHasher { return domain.NewAuditHasher(*db.auditKey.Load()) }

// OnOutboxCommit registers fn to be called after a transaction of this
// process that added (or re-queued) outbox events has committed, never
// before, so the dispatcher it wakes always finds them. fn runs on the
// committing goroutine and must not block. Other processes' commits are
// announced through Listen.
func (db *DB) OnOutboxCommit(fn func()) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.onOutbox = append(db.onOutbox, fn)
}

func (db *DB) outboxCommitted() {
	db.mu.Lock()
	fns := append([]func(){}, db.onOutbox...)
	db.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// WithinTx runs fn in one write transaction and returns the commit error;
// fn's error or panic rolls it back. Inside fn, use only tx: a write
// through the DB would wait for this transaction to end.
func (db *DB) WithinTx(ctx context.Context, fn func(tx ports.Repos) error) error {
	return db.withTx(ctx, func(t *txn) error { return fn(scope{db: db, tx: t}) })
}

// withTx runs fn as a unit of work of a write transaction (commitqueue.go).
func (db *DB) withTx(ctx context.Context, fn func(t *txn) error) error {
	return db.commits.submit(ctx, fn)
}

// readTx runs fn in one read-only snapshot: the scope's transaction, or a
// repeatable-read one on the pool, which takes no lock.
func (db *DB) readTx(ctx context.Context, t *txn, fn func(q querier) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t != nil {
		return fn(t)
	}
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return ctxErr(ctx, err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only: nothing to lose
	return ctxErr(ctx, fn(tx))
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
// transaction. It implements ports.Repos.
type scope struct {
	db *DB
	tx *txn
}

var _ ports.Repos = scope{}

func (s scope) Users() ports.Users                 { return users{s} }
func (s scope) Records() ports.Records             { return records{s} }
func (s scope) Comments() ports.Comments           { return comments{s} }
func (s scope) Notifications() ports.Notifications { return notifications{s} }
func (s scope) Outbox() ports.Outbox               { return outbox{s} }
func (s scope) Audit() ports.Audit                 { return audit{s} }
func (s scope) Sessions() ports.Sessions           { return sessions{s} }

// querier is what the pool and a transaction share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// reader is for plain reads: the transaction (to see its own writes) or
// the pool (committed data).
func (s scope) reader() querier {
	if s.tx != nil {
		return s.tx
	}
	return s.db.pool
}

// write runs fn in the scope's transaction, or in a write transaction of
// its own.
func (s scope) write(ctx context.Context, fn func(t *txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.tx != nil {
		return ctxErr(ctx, fn(s.tx))
	}
	return s.db.withTx(ctx, fn)
}

// outboxChanged wakes the dispatcher once the transaction commits.
func (t *txn) changedOutbox() { t.outboxChanged = true }
