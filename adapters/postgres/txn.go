package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// txn is a batch's write transaction as one unit of work sees it, and
// what must happen once it commits.
//
// A unit's statements run on its batch's connection. A context that ends
// during a statement makes pgx close the connection, which would fail
// every unit of the batch; so each statement checks the unit's context
// before it is sent and runs without its cancellation.
type txn struct {
	conn *pgxpool.Conn
	txnState
	// ahead are the savepoint statements (commitqueue.go) that go with the
	// unit's first statement, in its round trip; nil once sent.
	ahead []string
	// failed is the first error PostgreSQL answered the running unit with:
	// the transaction stays failed until the unit is undone, whatever the
	// unit returns.
	failed error
	// broken is a savepoint statement's error: the batch cannot go on.
	broken error
	// deferred are the running unit's writes that return nothing the
	// unit needs at once: they go with its next statement, or at its end,
	// in that round trip.
	deferred []deferredWrite
	// unitsLeft counts the batch's units from the running one on: how many
	// record ids to reserve at once.
	unitsLeft int
	// recordIDs are record ids reserved for the batch (next to last); see
	// nextRecordID.
	recordIDs idBlock
}

// deferredWrite is a statement a unit's next round trip carries; what
// names it in its error.
type deferredWrite struct {
	sql  string
	args []any
	what string
}

// idBlock is a run of reserved ids: next to last, and the last handed out.
type idBlock struct{ next, last, handed int64 }

// txnState is what the units of a batch leave besides their statements; a
// unit undone to its savepoint restores the state it found.
type txnState struct {
	outboxChanged bool
	// revoked and notified: sign-ins revoked, in-API notifications stored.
	revoked, notified bool
	audit             *auditPending // nil: no audit in this transaction yet
}

func (t *txn) snapshot() txnState {
	s := t.txnState
	s.audit = s.audit.snapshot()
	return s
}

func (t *txn) restore(s txnState) {
	t.txnState = s
	t.audit = s.audit.snapshot() // s stays as it was, should it be restored again
}

// saw notes err if PostgreSQL refused a statement, and returns it.
func (t *txn) saw(err error) error {
	var pe *pgconn.PgError
	if t.failed == nil && errors.As(err, &pe) {
		t.failed = err
	}
	return err
}

// pending reports whether statements wait to go with the next one.
func (t *txn) pending() bool { return len(t.ahead) > 0 || len(t.deferred) > 0 }

// queuePending queues the savepoint statements and the deferred writes
// in b, and forgets them; run reads their results.
func (t *txn) queuePending(b *pgx.Batch) (run func(br pgx.BatchResults) error) {
	ahead, deferred := t.ahead, t.deferred
	t.ahead, t.deferred = nil, nil
	for _, s := range ahead {
		b.Queue(s)
	}
	for _, d := range deferred {
		b.Queue(d.sql, d.args...)
	}
	return func(br pgx.BatchResults) error {
		for range ahead {
			if _, err := br.Exec(); err != nil {
				t.broken = err
				return err
			}
		}
		for _, d := range deferred {
			if _, err := br.Exec(); err != nil {
				return t.saw(fmt.Errorf("postgres: %s: %w", d.what, err))
			}
		}
		return nil
	}
}

// sendAhead sends what is pending and sql in one batch and returns the
// batch's results at sql's.
func (t *txn) sendAhead(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	run := t.queuePending(b)
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, b)
	if err := run(br); err != nil {
		_ = br.Close()
		return nil, err
	}
	return br, nil
}

// flushPending sends what is pending on its own: before a batch of the
// unit's, or at the unit's end.
func (t *txn) flushPending(ctx context.Context) error {
	if !t.pending() {
		return nil
	}
	b := &pgx.Batch{}
	run := t.queuePending(b)
	br := t.conn.SendBatch(ctx, b)
	err := run(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = t.saw(cerr)
	}
	return err
}

// deferWrite queues sql to go with the unit's next round trip.
func (t *txn) deferWrite(what, sql string, args ...any) {
	t.deferred = append(t.deferred, deferredWrite{sql: sql, args: args, what: what})
}

// reserveRecordIDs takes as many record ids as the batch has units left
// (at least minReserve) from the records' sequence. Every write takes its
// ids under the writer lock, so they come in commit order, and the ones
// left over are given back before the batch commits (releaseRecordIDs).
const reserveRecordIDs = `SELECT min(v), max(v) FROM (
    SELECT nextval(pg_get_serial_sequence('records', 'id')) AS v FROM generate_series(1, $1)) s`

const minReserve = 4

// nextRecordID hands out a record id reserved for the batch.
func (t *txn) nextRecordID(ctx context.Context) (int64, error) {
	if t.recordIDs.next == 0 || t.recordIDs.next > t.recordIDs.last {
		var first, last int64
		if err := t.QueryRow(ctx, reserveRecordIDs, max(t.unitsLeft, minReserve)).Scan(&first, &last); err != nil {
			return 0, err
		}
		t.recordIDs.next, t.recordIDs.last = first, last
	}
	id := t.recordIDs.next
	t.recordIDs.next++
	t.recordIDs.handed = id
	return id, nil
}

// queueReleaseRecordIDs gives the record ids reserved and not handed out
// back to the sequence, for the batch's commit.
func (t *txn) queueReleaseRecordIDs(b *pgx.Batch) {
	if t.recordIDs.next != 0 && t.recordIDs.next <= t.recordIDs.last {
		b.Queue(`SELECT setval(pg_get_serial_sequence('records', 'id'), $1)`, t.recordIDs.handed)
	}
}

func (t *txn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := ctx.Err(); err != nil {
		return pgconn.CommandTag{}, err
	}
	ctx = context.WithoutCancel(ctx)
	if !t.pending() {
		tag, err := t.conn.Exec(ctx, sql, args...)
		return tag, t.saw(err)
	}
	br, err := t.sendAhead(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, t.saw(err)
}

func (t *txn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	if !t.pending() {
		rows, err := t.conn.Query(ctx, sql, args...)
		if err != nil {
			return nil, t.saw(err)
		}
		return &txnRows{Rows: rows, t: t}, nil
	}
	br, err := t.sendAhead(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, t.saw(err)
	}
	return &txnRows{Rows: rows, t: t, br: br}, nil
}

func (t *txn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := ctx.Err(); err != nil {
		return errRow{err}
	}
	ctx = context.WithoutCancel(ctx)
	if !t.pending() {
		return &txnRow{t: t, row: t.conn.QueryRow(ctx, sql, args...)}
	}
	br, err := t.sendAhead(ctx, sql, args)
	if err != nil {
		return errRow{err}
	}
	return &txnRow{t: t, row: br.QueryRow(), br: br}
}

// SendBatch sends b's statements in one round trip; the results must be
// closed before the next statement.
func (t *txn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := ctx.Err(); err != nil {
		return errBatch{err}
	}
	ctx = context.WithoutCancel(ctx)
	if err := t.flushPending(ctx); err != nil {
		return errBatch{err}
	}
	return txnBatch{BatchResults: t.conn.SendBatch(ctx, b), t: t}
}

// CopyFrom copies rows into table with COPY, after what is pending.
func (t *txn) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ctx = context.WithoutCancel(ctx)
	if err := t.flushPending(ctx); err != nil {
		return 0, err
	}
	n, err := t.conn.CopyFrom(ctx, table, columns, rows)
	return n, t.saw(err)
}

// txnRow is a unit's row: its error is noted, and the batch it came in
// closed once it is read.
type txnRow struct {
	t   *txn
	row pgx.Row
	br  pgx.BatchResults
}

func (r *txnRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if r.br != nil {
		if cerr := r.br.Close(); err == nil {
			err = cerr
		}
	}
	return r.t.saw(err)
}

// txnRows are a unit's rows: their error is noted, and the batch they
// came in closed once they are read.
type txnRows struct {
	pgx.Rows
	t  *txn
	br pgx.BatchResults
}

func (r *txnRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.finish()
	return false
}

func (r *txnRows) Close() {
	r.Rows.Close()
	r.finish()
}

func (r *txnRows) finish() {
	if r.br != nil {
		_ = r.br.Close()
		r.br = nil
	}
	r.t.saw(r.Rows.Err())
}

// txnBatch is a unit's batch: its errors are noted.
type txnBatch struct {
	pgx.BatchResults
	t *txn
}

func (b txnBatch) Exec() (pgconn.CommandTag, error) {
	tag, err := b.BatchResults.Exec()
	return tag, b.t.saw(err)
}

func (b txnBatch) Query() (pgx.Rows, error) {
	rows, err := b.BatchResults.Query()
	if err != nil {
		return nil, b.t.saw(err)
	}
	return &txnRows{Rows: rows, t: b.t}, nil
}

func (b txnBatch) QueryRow() pgx.Row { return &txnRow{t: b.t, row: b.BatchResults.QueryRow()} }

func (b txnBatch) Close() error { return b.t.saw(b.BatchResults.Close()) }

// errRow is a row that was never asked for.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// errBatch is a batch that was never sent.
type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return errRow(b) }
func (b errBatch) Close() error                     { return b.err }
func (b errBatch) Tx() pgx.Tx                       { return nil }
