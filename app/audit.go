package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"healthrecord/domain"
	"healthrecord/ports"
)

// entry builds the audit entry for actor doing action on r (r zero for a
// list).
func (a *App) entry(actor domain.Actor, action string, r domain.Record, outcome string, now time.Time) domain.AuditEntry {
	return domain.AuditEntry{
		At: now.UTC(), ActorID: actor.ID, ActorRole: actor.Role, Action: action,
		RecordID: r.ID, PatientID: r.PatientID, Outcome: outcome,
		RequestID: actor.RequestID, RemoteAddr: actor.RemoteAddr,
	}
}

// event is the entry of a security event: no record, no patient.
func (a *App) event(actor domain.Actor, action, outcome string) domain.AuditEntry {
	return a.entry(actor, action, domain.Record{}, outcome, a.clock.Now())
}

// operator is who acts from the command line: no account, named by its
// request id.
var operator = domain.Actor{RequestID: "cli"}

// auditRead queues a read's entry: reads are written in batches shortly
// after, so a read costs no write transaction of its own.
func (a *App) auditRead(actor domain.Actor, action string, r domain.Record, outcome string) {
	a.audit.add(a.entry(actor, action, r, outcome, a.clock.Now()))
}

// logAuditHead logs the chain's head, so that the logs (kept apart from the
// database) hold a head to check the chain against with `audit verify
// --head`.
func (a *App) logAuditHead(ctx context.Context) {
	h, err := a.store.Audit().Head(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Error("audit head", "err", err)
		}
		return
	}
	a.log.Info("audit head", "id", h.ID, "hash", h.Hash)
}

// auditShown queues a list's entries: one per record it showed, so that
// each record's access log names every list that displayed it. An empty
// page leaves one entry naming no record: the list is still on file.
func (a *App) auditShown(actor domain.Actor, action string, shown []domain.Record) {
	now := a.clock.Now()
	if len(shown) == 0 {
		a.audit.add(a.entry(actor, action, domain.Record{}, domain.OutcomeAllowed, now))
		return
	}
	a.audit.addEach(len(shown), func(i int) domain.AuditEntry {
		return a.entry(actor, action, shown[i], domain.OutcomeAllowed, now)
	})
}

// auditBatcher buffers read entries and appends them in one transaction
// per flush. Close flushes what is left, so a clean shutdown loses none;
// a crash can lose at most one flush interval of reads.
type auditBatcher struct {
	store    ports.Store
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	pending []domain.AuditEntry
	// spare is the last flushed batch, emptied, to be the next pending:
	// a busy server's buffer holds hundreds of large entries, and growing
	// a new one from nothing after every flush costs reads their CPU.
	spare   []domain.AuditEntry
	flushMu sync.Mutex // one flush at a time keeps entries in order
	kick    chan struct{}
}

// maxPendingAudit triggers an early flush. maxBufferedAudit bounds the
// buffer: past it the reader that adds waits for a flush, so reads that
// outrun the writer slow down instead of growing memory without end.
const (
	maxPendingAudit  = 1000
	maxBufferedAudit = 16 * maxPendingAudit
)

func newAuditBatcher(s ports.Store, log *slog.Logger, interval time.Duration) *auditBatcher {
	return &auditBatcher{store: s, log: log, interval: interval, kick: make(chan struct{}, 1)}
}

func (b *auditBatcher) add(es ...domain.AuditEntry) {
	b.mu.Lock()
	b.pending = append(b.pending, es...)
	n := len(b.pending)
	b.mu.Unlock()
	b.added(n)
}

// addEach queues entry(0) … entry(n-1), made straight into the buffer.
func (b *auditBatcher) addEach(n int, entry func(i int) domain.AuditEntry) {
	b.mu.Lock()
	for i := range n {
		b.pending = append(b.pending, entry(i))
	}
	n = len(b.pending)
	b.mu.Unlock()
	b.added(n)
}

// added kicks a flush, or waits for one, now that n entries are buffered.
func (b *auditBatcher) added(n int) {
	if n >= maxPendingAudit {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	if n < maxBufferedAudit {
		return
	}
	// Backpressure: wait for the flush under way, which takes the whole
	// buffer, or make one when none is (the loop may not run). Readers
	// waiting together share one flush instead of each committing its
	// own, and leave the CPU to it meanwhile.
	if b.flushMu.TryLock() {
		err := b.flushLocked(context.Background())
		b.flushMu.Unlock()
		if err != nil {
			b.log.Error("audit flush", "err", err)
		}
		return
	}
	b.flushMu.Lock()
	//lint:ignore SA2001 an empty critical section: waiting for the flush under way is the point
	b.flushMu.Unlock()
}

// buffered is how many entries wait for a flush.
func (b *auditBatcher) buffered() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// Run flushes every interval (or when the buffer fills) until ctx ends.
func (b *auditBatcher) Run(ctx context.Context) {
	t := time.NewTicker(b.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.kick:
		}
		if err := b.Flush(context.WithoutCancel(ctx)); err != nil {
			b.log.Error("audit flush", "err", err)
		}
	}
}

// Flush writes the buffered entries. On failure they go back to the front
// of the buffer to be tried again: an audit entry is never dropped.
func (b *auditBatcher) Flush(ctx context.Context) error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	return b.flushLocked(ctx)
}

// flushLocked is Flush with flushMu held.
func (b *auditBatcher) flushLocked(ctx context.Context) error {
	b.mu.Lock()
	batch := b.pending
	b.pending, b.spare = b.spare, nil
	b.mu.Unlock()
	if len(batch) == 0 {
		b.mu.Lock()
		b.spare = batch
		b.mu.Unlock()
		return nil
	}
	err := b.store.WithinTx(ctx, func(tx ports.Repos) error { return tx.Audit().Append(ctx, batch...) })
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.pending = append(batch, b.pending...)
		return err
	}
	if cap(batch) <= maxPendingAudit*2 { // not what a backlog grew it to
		clear(batch) // let go of the entries' strings
		b.spare = batch[:0]
	}
	return nil
}

// Close flushes what is left.
func (b *auditBatcher) Close(ctx context.Context) error { return b.Flush(ctx) }
