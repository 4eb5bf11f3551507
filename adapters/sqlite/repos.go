package sqlite

import (
	"context"
	"database/sql"

	"healthrecord/ports"
)

// WithinTx runs fn in one immediate write transaction and returns the commit
// error; fn's error or panic rolls it back. Inside fn, use only tx: a write
// through the DB there would wait for this very transaction, so it fails
// at once with errWriteInsideTx (a read through the DB sees committed data
// only, not this transaction's writes).
func (db *DB) WithinTx(ctx context.Context, fn func(tx ports.Repos) error) error {
	return db.commits.submit(ctx, func(t *writeTx) error { return fn(repos{db: db, tx: t}) })
}

// The repositories on the DB run each call on its own.

// Users returns the account repository.
func (db *DB) Users() ports.Users { return repos{db: db}.Users() }

// Records returns the health record repository.
func (db *DB) Records() ports.Records { return repos{db: db}.Records() }

// Comments returns the comment repository.
func (db *DB) Comments() ports.Comments { return repos{db: db}.Comments() }

// Notifications returns the notification repository.
func (db *DB) Notifications() ports.Notifications { return repos{db: db}.Notifications() }

// Outbox returns the outbox repository.
func (db *DB) Outbox() ports.Outbox { return repos{db: db}.Outbox() }

// Audit returns the audit trail.
func (db *DB) Audit() ports.Audit { return repos{db: db}.Audit() }

// Sessions returns the sign-in repository.
func (db *DB) Sessions() ports.Sessions { return repos{db: db}.Sessions() }

// repos are the repositories bound to where their calls run: the DB (tx
// nil: reads on the read pool, each write a unit of work of its own) or
// one write transaction (every call in it). Each repository keeps it as
// its field in. It implements ports.Repos.
type repos struct {
	db *DB
	tx *writeTx
}

var _ ports.Repos = repos{}

func (in repos) Users() ports.Users { return users{in} }

// Records is cached only on the DB: a read inside a write transaction
// could see a change that is later rolled back (see recordCache).
func (in repos) Records() ports.Records {
	if in.tx == nil && in.db.records != nil {
		return cachedRecords{records: records{in}, cache: in.db.records}
	}
	return records{in}
}

func (in repos) Comments() ports.Comments           { return comments{in} }
func (in repos) Notifications() ports.Notifications { return notifications{in} }
func (in repos) Outbox() ports.Outbox               { return outbox{in} }
func (in repos) Audit() ports.Audit                 { return audit{in} }
func (in repos) Sessions() ports.Sessions           { return sessions{in} }

// sqlRunner runs statements and queries: a pool, a transaction, or
// either through its prepared statements (preparedPool, preparedTx).
type sqlRunner interface {
	sqlExecer
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sqlExecer runs one statement.
type sqlExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// reads is where plain reads run: in the transaction (to see its own
// writes) or on the read pool.
func (in repos) reads() sqlRunner {
	if in.tx != nil {
		return preparedTx{tx: in.tx.Tx, c: in.db.writeStmts, bound: in.tx.bound}
	}
	return preparedPool{c: in.db.readStmts}
}

// writes is where single-statement writes run: in the transaction, or
// each as a unit of work of its own (autocommit).
func (in repos) writes() sqlExecer {
	if in.tx != nil {
		return preparedTx{tx: in.tx.Tx, c: in.db.writeStmts, bound: in.tx.bound}
	}
	return autocommit{db: in.db}
}

// autocommit runs each statement as a unit of work of its own in the
// commit queue, so that it shares a commit with the others waiting.
type autocommit struct{ db *DB }

func (a autocommit) ExecContext(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	err = a.db.commits.submit(ctx, func(t *writeTx) error {
		res, err = preparedTx{tx: t.Tx, c: a.db.writeStmts, bound: t.bound}.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// atomic runs fn with the repositories bound to one transaction: this
// one's, or a new unit of work.
func (in repos) atomic(ctx context.Context, fn func(in repos) error) error {
	if in.tx != nil {
		return fn(in)
	}
	return in.db.commits.submit(ctx, func(t *writeTx) error { return fn(repos{db: in.db, tx: t}) })
}

// outboxChanged wakes the dispatcher after commit; outside a transaction
// the statement has committed already.
func (in repos) outboxChanged() {
	if in.tx != nil {
		in.tx.outboxChanged = true
		return
	}
	in.db.outboxCommitted()
}
