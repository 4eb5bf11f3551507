package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// commitQueue runs this process's write transactions (group commit): a
// caller submits a unit of work and waits; one goroutine, commitLoop, takes
// the units waiting together and runs them in one transaction, each in its
// own savepoint, under one advisory lock and with one commit, so they
// share one WAL flush and the round trips of BEGIN, the lock, the audit
// head and COMMIT. A unit's failure or panic undoes only its savepoint.
//
// Units of one process wait in Go (honouring their context) instead of
// each holding a pooled connection while waiting for the advisory lock,
// which would starve the readers of connections. The lock is still taken
// once per batch, so batches of every process on the database run one at
// a time and every invariant that needs one writer holds across them.
type commitQueue struct {
	db *DB

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

// writeJob is one unit of work waiting in the queue.
type writeJob struct {
	ctx  context.Context
	fn   func(t *txn) error
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

var errClosed = errors.New("postgres: database is closed")

// errWriteInsideTx refuses a write through the DB (not through the tx
// WithinTx hands over) from inside a unit of work: it would queue behind
// the very transaction it is called from, and wait for ever.
var errWriteInsideTx = errors.New("postgres: a write through the DB inside WithinTx would wait for its own transaction; use the tx")

// beginLocked opens a batch's transaction and takes the writer lock in
// one round trip.
var beginLocked = "BEGIN; SELECT pg_advisory_xact_lock(" + strconv.FormatInt(writerLock, 10) + ")"

func startCommitQueue(db *DB) *commitQueue {
	q := &commitQueue{db: db, jobs: make(chan *writeJob, maxBatch), quit: make(chan struct{}), loopDone: make(chan struct{})}
	started := make(chan struct{})
	go func() {
		q.loopID.Store(goroutineID())
		close(started)
		q.commitLoop()
	}()
	<-started
	return q
}

// close stops commitLoop after the units already queued.
func (q *commitQueue) close() {
	q.closeOnce.Do(func() {
		close(q.quit)
		<-q.loopDone
	})
}

// submit runs fn as a unit of work and returns once its transaction has
// committed (or fn failed): an acknowledged write is durable. fn's panic
// is re-raised here, on the caller's goroutine.
func (q *commitQueue) submit(ctx context.Context, fn func(t *txn) error) error {
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
// commitLoop.
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
	}
}

// spState is where a batch's savepoint stands.
type spState int

const (
	spNone  spState = iota // not set
	spClean                // set, and nothing done since: the next unit can use it as it is
	spUsed                 // a unit succeeded after it: release it before the next
)

// savepointAhead are the statements that set a unit's savepoint from
// where the batch's stands; they go with the unit's first statement
// (txn.ahead), so a unit that sends none has nothing to undo.
var savepointAhead = map[spState][]string{
	spNone: {"SAVEPOINT u"},
	spUsed: {"RELEASE SAVEPOINT u", "SAVEPOINT u"},
}

// runBatch runs jobs in one transaction. With several jobs each runs in a
// savepoint, so one job's failure rolls back only its own writes; the jobs
// that succeeded learn the commit's outcome.
func (q *commitQueue) runBatch(jobs []*writeJob) {
	jobs = waiting(jobs)
	if len(jobs) == 0 {
		return
	}
	// The transaction outlives any one job's context; each job's
	// statements are checked against its own (txn's methods).
	bg := context.Background()
	conn, err := q.db.pool.Acquire(bg)
	if err != nil {
		fail(start(jobs), fmt.Errorf("postgres: begin: %w", err))
		return
	}
	defer conn.Release()
	if _, err := conn.Exec(bg, beginLocked); err != nil {
		rollback(conn)
		fail(start(jobs), fmt.Errorf("postgres: begin: %w", err))
		return
	}
	q.batches.Add(1)
	// Only now: a caller that gave up while the lock was held elsewhere
	// is not run.
	live := start(jobs)
	if len(live) == 0 {
		rollback(conn)
		return
	}
	t := &txn{conn: conn}
	savepoints := len(live) > 1
	sp := spNone
	var ok []*writeJob // succeeded, committed with the batch
	for i, j := range live {
		if savepoints {
			t.ahead = savepointAhead[sp]
		}
		set := sp == spClean // the unit's savepoint is set
		t.failed, t.broken, t.deferred, t.unitsLeft = nil, nil, nil, len(live)-i
		snap := t.snapshot()
		r := q.runJob(j, t)
		if r.err == nil && !r.panicked && len(t.deferred) > 0 {
			// Its last writes, and its savepoint if it sent nothing before.
			r.err = t.flushPending(bg)
		}
		t.deferred = nil
		if t.broken != nil {
			if r.err == nil && !r.panicked {
				r.err = fmt.Errorf("postgres: savepoint: %w", t.broken)
			}
			j.done <- r
			abort(conn, append(ok, live[i+1:]...), t.broken)
			return
		}
		set = set || (savepoints && t.ahead == nil)
		if r.err == nil && !r.panicked && t.failed != nil {
			// The unit went on past a refused statement: the transaction
			// is failed, and the unit is undone.
			r.err = fmt.Errorf("postgres: %w", t.failed)
		}
		if r.err == nil && !r.panicked {
			ok = append(ok, j)
			if set {
				sp = spUsed
			}
			continue
		}
		if !savepoints {
			rollback(conn)
			j.done <- r
			return
		}
		if set {
			if _, err := conn.Exec(bg, "ROLLBACK TO SAVEPOINT u"); err != nil {
				j.done <- r
				abort(conn, append(ok, live[i+1:]...), err)
				return
			}
			sp = spClean
		} // else it sent no statement: nothing to undo in the database
		t.restore(snap)
		j.done <- r
	}
	t.ahead = nil
	if len(ok) == 0 {
		rollback(conn) // every unit failed: nothing to keep
		return
	}
	err = q.commit(t)
	if err != nil {
		rollback(conn)
	}
	if err == nil && t.outboxChanged {
		q.db.outboxCommitted() // before answering: a caller may count on the wake
	}
	for _, j := range ok {
		j.done <- jobResult{err: err}
	}
}

// commit writes what the batch's units left for the end (the audit rows
// and head, the notifications to other processes) and commits, in one
// round trip.
func (q *commitQueue) commit(t *txn) error {
	b := &pgx.Batch{}
	q.db.queueAudit(b, t)
	q.db.queueNotify(b, t)
	t.queueReleaseRecordIDs(b)
	b.Queue("COMMIT")
	br := t.conn.SendBatch(context.Background(), b)
	var err error
	var tag pgconn.CommandTag
	for range b.Len() {
		if tag, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil && tag.String() == "ROLLBACK" {
		// COMMIT of a transaction that had failed: nothing was kept.
		err = pgx.ErrTxCommitRollback
	}
	if err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// waiting are the jobs whose callers still wait.
func waiting(jobs []*writeJob) []*writeJob {
	out := jobs[:0]
	for _, j := range jobs {
		if j.state.Load() == jobQueued {
			out = append(out, j)
		}
	}
	return out
}

// start marks the jobs started and returns those whose callers still wait;
// a caller whose context has ended hears so without its unit running.
func start(jobs []*writeJob) []*writeJob {
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
	return live
}

// fail answers every job with err.
func fail(jobs []*writeJob, err error) {
	for _, j := range jobs {
		j.done <- jobResult{err: err}
	}
}

// rollback ends the batch's transaction, if any; a connection that cannot
// is closed by the pool on release.
func rollback(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	_, _ = conn.Exec(ctx, "ROLLBACK")
}

// rollbackTimeout bounds a rollback on a connection that may be gone.
const rollbackTimeout = 5 * time.Second

// abort rolls the batch back after PostgreSQL refused a savepoint
// statement; every job not yet answered fails.
func abort(conn *pgxpool.Conn, jobs []*writeJob, cause error) {
	rollback(conn)
	fail(jobs, fmt.Errorf("postgres: batch rolled back: %w", cause))
}

// runJob runs one job's function, turning a panic into a result for its
// caller's goroutine to re-panic.
func (q *commitQueue) runJob(j *writeJob, t *txn) (r jobResult) {
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
