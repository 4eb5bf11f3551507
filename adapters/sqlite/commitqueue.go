package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// commitQueue runs every write transaction on the write pool's one
// connection (group commit): a caller submits a unit of work and waits;
// one goroutine, commitLoop, takes the units waiting together and runs
// them in one SQLite transaction, each in its own savepoint, so they share
// one commit and one fsync. A unit's failure or panic undoes only its own
// savepoint.
type commitQueue struct {
	pool  *sql.DB    // the write pool: one connection
	stmts *stmtCache // its statements, prepared between batches
	// outboxCommitted runs after a batch that changed the outbox commits,
	// before its callers hear: a caller may count on the wake.
	outboxCommitted func()
	// beforeCommit writes what the batch's units left for the end (their
	// audit rows and head); its error rolls the batch back.
	beforeCommit func(t *writeTx) error

	jobs      chan *writeJob
	batches   atomic.Int64 // transactions begun, for tests
	quit      chan struct{}
	loopDone  chan struct{}
	closeOnce sync.Once

	// loopID is commitLoop's goroutine, where every unit's function runs;
	// running numbers the unit running now (0: none). Together they tell a
	// submission that comes from inside a unit: it would wait for itself.
	loopID  atomic.Uint64
	running atomic.Uint64
	units   uint64 // units started, commitLoop's own
}

// writeTx is the transaction a batch of units shares, and what must
// happen once it commits.
type writeTx struct {
	*sql.Tx
	outboxChanged bool
	audit         *auditPending        // nil: no audit in this transaction yet
	bound         map[string]*sql.Stmt // statements bound to it (see preparedTx)
}

// writeJob is one unit of work waiting in the queue.
type writeJob struct {
	ctx  context.Context
	fn   func(t *writeTx) error
	done chan jobResult
	// state moves from jobQueued to jobStarted (by commitLoop) or to
	// jobAbandoned (by a caller whose ctx ended first); whoever moves it
	// first decides whether the unit runs.
	state atomic.Int32
}

// The states of a writeJob.
const (
	jobQueued int32 = iota
	jobStarted
	jobAbandoned
)

// jobResult is a unit's outcome, carried back to its caller's goroutine.
type jobResult struct {
	err      error
	panicked bool
	panicVal any
}

// maxBatch bounds how many units of work share one commit.
const maxBatch = 128

var errClosed = errors.New("sqlite: database is closed")

// errWriteInsideTx refuses a write through the DB (not through the tx
// WithinTx hands over) from inside a unit of work: it would queue behind
// the very transaction it is called from, and wait for ever.
var errWriteInsideTx = errors.New("sqlite: a write through the DB inside WithinTx would wait for its own transaction; use the tx")

// startCommitQueue starts commitLoop on pool, which must have exactly one
// connection.
func startCommitQueue(pool *sql.DB, stmts *stmtCache, outboxCommitted func(), beforeCommit func(t *writeTx) error) *commitQueue {
	q := &commitQueue{
		pool: pool, stmts: stmts, outboxCommitted: outboxCommitted, beforeCommit: beforeCommit,
		jobs: make(chan *writeJob, maxBatch), quit: make(chan struct{}), loopDone: make(chan struct{}),
	}
	started := make(chan struct{})
	go func() {
		q.loopID.Store(goroutineID())
		close(started)
		q.commitLoop()
	}()
	<-started
	return q
}

// close stops commitLoop after the units already queued and reports
// whether this call did (later calls do nothing).
func (q *commitQueue) close() (first bool) {
	q.closeOnce.Do(func() {
		first = true
		close(q.quit)
		<-q.loopDone
	})
	return first
}

// submit runs fn as a unit of work and returns once its transaction has
// committed (or fn failed): an acknowledged write is durable. fn's panic
// is re-raised here, on the caller's goroutine.
func (q *commitQueue) submit(ctx context.Context, fn func(t *writeTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// A caller inside a unit finds that unit running, and it stays
	// running while the caller waits. Any other caller soon sees that
	// unit end, which clears it without reading its goroutine's number (a
	// stack trace, costly under load, when a unit is nearly always
	// running).
	unit := q.running.Load()
	var suspect <-chan time.Time
	if unit != 0 {
		t := time.NewTimer(selfCheckAfter)
		defer t.Stop()
		suspect = t.C
	}
	// self settles the suspicion: true if the caller is the unit itself.
	self := func() bool {
		suspect = nil
		return q.running.Load() == unit && q.insideUnit()
	}
	j := &writeJob{ctx: ctx, fn: fn, done: make(chan jobResult, 1)}
	select {
	case <-q.quit:
		return errClosed
	default:
	}
send:
	for {
		select {
		case q.jobs <- j:
			break send
		case <-q.quit:
			return errClosed
		case <-ctx.Done():
			return ctx.Err()
		case <-suspect:
			if self() {
				return errWriteInsideTx
			}
		}
	}
	var r jobResult
wait:
	for {
		select {
		case r = <-j.done:
			break wait
		case <-suspect:
			if self() && j.state.CompareAndSwap(jobQueued, jobAbandoned) {
				return errWriteInsideTx // the loop will skip it
			}
		case <-ctx.Done():
			// A unit not started yet is abandoned; one that started may be
			// committing now, and its caller must learn whether it did.
			if j.state.CompareAndSwap(jobQueued, jobAbandoned) {
				return ctx.Err()
			}
			r = <-j.done
			break wait
		case <-q.loopDone:
			// Queued as close finished draining: it will never run.
			if j.state.CompareAndSwap(jobQueued, jobAbandoned) {
				return errClosed
			}
			r = <-j.done
			break wait
		}
	}
	if r.panicked {
		panic(r.panicVal)
	}
	return r.err
}

// selfCheckAfter is how long a submission made while a unit runs waits
// before asking whether it comes from inside that unit: long enough that
// a unit slowed down by a busy machine rarely outlasts it (every caller
// waiting would pay for a stack trace), short enough that a caller inside
// a unit still fails at once for a person.
const selfCheckAfter = 50 * time.Millisecond

// insideUnit reports whether the caller is a unit's function, running on
// commitLoop. Outside a unit it costs one atomic load; inside, it reads
// the goroutine's number from its stack header, the only place the
// runtime tells it.
func (q *commitQueue) insideUnit() bool {
	if q.running.Load() == 0 {
		return false // no unit runs, so the caller is not in one
	}
	id := q.loopID.Load()
	return id != 0 && goroutineID() == id
}

// goroutineID is the running goroutine's number from the first line of its
// stack trace ("goroutine 7 [running]:"), or 0 if that cannot be read.
func goroutineID() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		if id, err := strconv.ParseUint(string(b[:i]), 10, 64); err == nil {
			return id
		}
	}
	return 0
}

// commitLoop runs queued units in batches until close, then drains the
// queue.
func (q *commitQueue) commitLoop() {
	defer close(q.loopDone)
	for {
		var first *writeJob
		select {
		case first = <-q.jobs:
		case <-q.quit:
			for {
				select {
				case j := <-q.jobs:
					q.runBatch([]*writeJob{j})
				default:
					return
				}
			}
		}
		batch := []*writeJob{first}
	gather:
		for len(batch) < maxBatch {
			select {
			case j := <-q.jobs:
				batch = append(batch, j)
			default:
				break gather
			}
		}
		q.runBatch(batch)
		q.stmts.prepareWished(context.Background())
	}
}

// runBatch runs jobs in one transaction. With several jobs each runs in a
// savepoint, so one job's failure rolls back only its own writes; the jobs
// that succeeded learn the commit's outcome.
func (q *commitQueue) runBatch(jobs []*writeJob) {
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
	sqlTx, err := q.pool.BeginTx(context.Background(), nil)
	if err != nil {
		for _, j := range live {
			j.done <- jobResult{err: fmt.Errorf("sqlite: begin: %w", err)}
		}
		return
	}
	q.batches.Add(1)
	t := &writeTx{Tx: sqlTx, bound: map[string]*sql.Stmt{}}
	savepoints := len(live) > 1
	// The savepoint statements run once per unit: prepared, like the
	// units' own.
	stmts := preparedTx{tx: sqlTx, c: q.stmts, bound: t.bound}
	bg := context.Background()
	var ok []*writeJob
	for i, j := range live {
		var audit *auditPending // the pending audit as the unit found it
		if savepoints {
			if _, err := stmts.ExecContext(bg, "SAVEPOINT job"); err != nil {
				abort(sqlTx, append(ok, live[i:]...), err)
				return
			}
			audit = t.audit.snapshot()
		}
		r := q.runJob(j, t)
		if r.err == nil && !r.panicked {
			if savepoints {
				if _, err := stmts.ExecContext(bg, "RELEASE job"); err != nil {
					abort(sqlTx, append(ok, live[i:]...), err)
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
			abort(sqlTx, append(ok, live[i+1:]...), err)
			return
		}
		t.audit = audit
		j.done <- r
	}
	if len(ok) == 0 {
		_ = sqlTx.Rollback() // every unit failed: nothing to keep
		return
	}
	if err := q.beforeCommit(t); err != nil {
		abort(sqlTx, ok, err)
		return
	}
	err = sqlTx.Commit()
	if err != nil {
		err = fmt.Errorf("sqlite: commit: %w", err)
	}
	if err == nil && t.outboxChanged {
		q.outboxCommitted()
	}
	for _, j := range ok {
		j.done <- jobResult{err: err}
	}
}

// abort rolls the batch back after SQLite refused a savepoint statement
// (the transaction may be gone already); every job not yet answered fails.
func abort(sqlTx *sql.Tx, jobs []*writeJob, cause error) {
	_ = sqlTx.Rollback()
	for _, j := range jobs {
		j.done <- jobResult{err: fmt.Errorf("sqlite: batch rolled back: %w", cause)}
	}
}

// runJob runs one job's function, turning a panic into a result for its
// caller's goroutine to re-panic.
func (q *commitQueue) runJob(j *writeJob, t *writeTx) (r jobResult) {
	q.units++
	q.running.Store(q.units)
	defer func() {
		q.running.Store(0)
		if v := recover(); v != nil {
			r = jobResult{panicked: true, panicVal: v}
		}
	}()
	return jobResult{err: j.fn(t)}
}
