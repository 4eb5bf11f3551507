// Package sqlite is the Store adapter on SQLite (modernc.org/sqlite, no cgo).
//
// It keeps two pools on one file: a write pool of a single connection, so
// writers queue in Go (honouring ctx) instead of spinning on SQLITE_BUSY, and
// a small read-only pool for plain reads, which WAL lets run beside a writer.
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
// temp_store=MEMORY: group commit runs each unit in a savepoint, whose
// statement journal otherwise spills to a temporary file past 64 KiB
// (4 % of the server's CPU under a read load, in pwrite calls); our sorts
// and temporary tables are bounded by a page's size.
const pragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
	"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=temp_store(MEMORY)"

// DB is the SQLite database. It implements ports.Store.
type DB struct {
	dsn   string  // the pragmas every connection gets
	write *sql.DB // one connection: every write and every transaction
	read  *sql.DB // read-only connections for plain reads

	readStmts, writeStmts *stmtCache
	records               *recordCache

	// Group commit: every write transaction is a job for one writer
	// goroutine, which runs the jobs waiting together in one SQLite
	// transaction (each in its own savepoint) and one fsync.
	jobs       chan *writeJob
	batches    atomic.Int64 // transactions the writer ran, for tests
	quit       chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once

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
	db.jobs, db.quit, db.writerDone = make(chan *writeJob, maxBatch), make(chan struct{}), make(chan struct{})
	go db.writer()
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

// Close stops the writer, after the transactions already queued, and
// closes both pools.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.quit)
		<-db.writerDone
		db.readStmts.close()
		db.writeStmts.close()
	})
	return errors.Join(db.read.Close(), db.write.Close())
}

// UseAuditKey keys the audit chain with key from now on; call it before
// the store is used. When rekey is set (the key was just made, so no chain
// can have been keyed under it before), a chain written before the chain
// was keyed is verified as revision 1's SHA-256 chain and re-keyed from
// its first entry, in one transaction; one that does not verify is
// refused with a *LegacyChainError instead of being laundered. Without
// rekey a chain not keyed yet is left alone, and fails verification.
func (db *DB) UseAuditKey(ctx context.Context, key domain.AuditKey, rekey bool) error {
	if len(key) < domain.MinAuditKeyLen {
		return fmt.Errorf("sqlite: audit key of %d bytes, at least %d needed", len(key), domain.MinAuditKeyLen)
	}
	k := append(domain.AuditKey(nil), key...)
	db.auditKey.Store(&k)
	if !rekey {
		return nil
	}
	return db.withTx(ctx, func(t *txn) error { return rekeyAudit(ctx, scope{db: db, tx: t}, db.auditHasher()) })
}

// auditHasher hashes under the current key; one per call, since a hasher
// is not safe for concurrent use.
func (db *DB) auditHasher() *domain.AuditHasher { return domain.NewAuditHasher(*db.auditKey.Load()) }

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
func (db *DB) WithinTx(ctx context.Context, fn func(tx ports.Repos) error) error {
	return db.withTx(ctx, func(t *txn) error { return fn(scope{db: db, tx: t}) })
}

// txn is one write transaction and what must happen after it commits.
type txn struct {
	*sql.Tx
	outboxChanged bool
}

// writeJob is one unit of work waiting for the writer.
type writeJob struct {
	ctx  context.Context
	fn   func(t *txn) error
	done chan jobResult
	// state moves from queued to started (by the writer) or abandoned (by
	// a caller whose ctx ended first); whoever moves it first decides.
	state atomic.Int32
}

const (
	jobQueued int32 = iota
	jobStarted
	jobAbandoned
)

type jobResult struct {
	err      error
	panicked bool
	panicVal any
}

// maxBatch bounds how many units of work share one commit.
const maxBatch = 128

var errClosed = errors.New("sqlite: database is closed")

// withTx runs fn in a write transaction and returns once that transaction
// has committed (or fn failed): an acknowledged write is durable. Units of
// work submitted together share one commit; fn's error or panic undoes
// only its own savepoint.
func (db *DB) withTx(ctx context.Context, fn func(t *txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &writeJob{ctx: ctx, fn: fn, done: make(chan jobResult, 1)}
	select {
	case <-db.quit:
		return errClosed
	default:
	}
	select {
	case db.jobs <- j:
	case <-db.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	var r jobResult
	select {
	case r = <-j.done:
	case <-ctx.Done():
		// A job not started yet is abandoned; one that started may be
		// committing now, and its caller must learn whether it did.
		if j.state.CompareAndSwap(jobQueued, jobAbandoned) {
			return ctx.Err()
		}
		r = <-j.done
	case <-db.writerDone:
		// Queued as Close finished draining: it will never run.
		if j.state.CompareAndSwap(jobQueued, jobAbandoned) {
			return errClosed
		}
		r = <-j.done
	}
	if r.panicked {
		panic(r.panicVal)
	}
	return r.err
}

// writer runs queued jobs in batches until Close, then drains the queue.
func (db *DB) writer() {
	defer close(db.writerDone)
	for {
		var first *writeJob
		select {
		case first = <-db.jobs:
		case <-db.quit:
			for {
				select {
				case j := <-db.jobs:
					db.runBatch([]*writeJob{j})
				default:
					return
				}
			}
		}
		batch := []*writeJob{first}
	gather:
		for len(batch) < maxBatch {
			select {
			case j := <-db.jobs:
				batch = append(batch, j)
			default:
				break gather
			}
		}
		db.runBatch(batch)
		db.writeStmts.prepareWished(context.Background())
	}
}

// runBatch runs jobs in one transaction. With several jobs each runs in a
// savepoint, so one job's failure rolls back only its own writes; the jobs
// that succeeded learn the commit's outcome.
func (db *DB) runBatch(jobs []*writeJob) {
	live := jobs[:0]
	for _, j := range jobs {
		if !j.state.CompareAndSwap(jobQueued, jobStarted) {
			continue // its caller has gone
		}
		if err := j.ctx.Err(); err != nil {
			j.done <- jobResult{err: err}
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	// The transaction outlives any one job's context; each job's queries
	// still use its own.
	sqlTx, err := db.write.BeginTx(context.Background(), nil)
	if err != nil {
		for _, j := range live {
			j.done <- jobResult{err: fmt.Errorf("sqlite: begin: %w", err)}
		}
		return
	}
	db.batches.Add(1)
	t := &txn{Tx: sqlTx}
	savepoints := len(live) > 1
	var ok []*writeJob
	for i, j := range live {
		if savepoints {
			if _, err := sqlTx.Exec("SAVEPOINT job"); err != nil {
				db.abort(sqlTx, append(ok, live[i:]...), err)
				return
			}
		}
		r := runJob(j, t)
		if r.err == nil && !r.panicked {
			if savepoints {
				if _, err := sqlTx.Exec("RELEASE job"); err != nil {
					db.abort(sqlTx, append(ok, live[i:]...), err)
					return
				}
			}
			ok = append(ok, j)
			continue
		}
		if !savepoints {
			_ = sqlTx.Rollback()
			j.done <- r
			return
		}
		if _, err := sqlTx.Exec("ROLLBACK TO job; RELEASE job"); err != nil {
			j.done <- r
			db.abort(sqlTx, append(ok, live[i+1:]...), err)
			return
		}
		j.done <- r
	}
	err = sqlTx.Commit()
	if err != nil {
		err = fmt.Errorf("sqlite: commit: %w", err)
	}
	if err == nil && t.outboxChanged {
		db.outboxCommitted() // before answering: a caller may count on the wake
	}
	for _, j := range ok {
		j.done <- jobResult{err: err}
	}
}

// abort rolls the batch back after SQLite refused a savepoint statement
// (the transaction may be gone already); every job not yet answered fails.
func (db *DB) abort(sqlTx *sql.Tx, jobs []*writeJob, cause error) {
	_ = sqlTx.Rollback()
	for _, j := range jobs {
		j.done <- jobResult{err: fmt.Errorf("sqlite: batch rolled back: %w", cause)}
	}
}

// runJob runs one job's function, turning a panic into a result for its
// caller's goroutine to re-panic.
func runJob(j *writeJob, t *txn) (r jobResult) {
	defer func() {
		if v := recover(); v != nil {
			r = jobResult{panicked: true, panicVal: v}
		}
	}()
	return jobResult{err: j.fn(t)}
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

// querier is what *sql.DB, *sql.Tx and the cached queriers share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// reader is for plain reads: the transaction (to see its own writes) or
// the read pool.
func (s scope) reader() querier {
	if s.tx != nil {
		return txQuerier{tx: s.tx.Tx, c: s.db.writeStmts}
	}
	return poolQuerier{c: s.db.readStmts}
}

// cache is the record cache, for reads outside a transaction only (see
// recordCache).
func (s scope) cache() *recordCache {
	if s.tx != nil {
		return nil
	}
	return s.db.records
}

// execer runs one statement.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// writer is for single-statement writes: in the transaction, or as a unit
// of work of its own, so that it shares a commit with others.
func (s scope) writer() execer {
	if s.tx != nil {
		return txQuerier{tx: s.tx.Tx, c: s.db.writeStmts}
	}
	return batchedExec{db: s.db}
}

// batchedExec runs each statement as its own unit of work.
type batchedExec struct{ db *DB }

func (b batchedExec) ExecContext(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	err = b.db.withTx(ctx, func(t *txn) error {
		res, err = txQuerier{tx: t.Tx, c: b.db.writeStmts}.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
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
