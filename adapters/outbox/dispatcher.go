package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"healthrecord/domain"
	"healthrecord/ports"
)

const (
	// storeTimeout bounds one bookkeeping write (mark done, delivered,
	// failed, release), which runs detached from a cancelled Run context.
	storeTimeout = 5 * time.Second
	// maxErrorLen bounds the last error kept on an event.
	maxErrorLen = 500
	// Store errors are retried after a delay growing from minErrDelay to maxErrDelay.
	minErrDelay = 100 * time.Millisecond
	maxErrDelay = 5 * time.Second
)

// Dispatcher delivers outbox events to sinks. Events are claimed under a
// lease, so several dispatchers on one store never run the same attempt.
type Dispatcher struct {
	store ports.Outbox
	sinks []ports.Sink
	cfg   Config
	log   *slog.Logger
	wake  chan struct{}
	// nextRetry is the earliest retry scheduled since the last sleep.
	mu        sync.Mutex
	nextRetry time.Time
}

// New builds a dispatcher delivering store's events to sinks, in order.
// Sink names must be unique and non-empty: they record which sinks are done.
func New(store ports.Outbox, sinks []ports.Sink, cfg Config, log *slog.Logger) (*Dispatcher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("outbox: nil store")
	}
	seen := map[string]bool{}
	for _, s := range sinks {
		if s == nil || s.Name() == "" || seen[s.Name()] {
			return nil, errors.New("outbox: sinks must be non-nil with unique, non-empty names")
		}
		seen[s.Name()] = true
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{
		store: store,
		sinks: append([]ports.Sink(nil), sinks...),
		cfg:   cfg,
		log:   log.With("owner", cfg.Owner),
		// One buffered slot: a wake sent while the dispatcher is busy is
		// kept, and more wakes than one add nothing.
		wake: make(chan struct{}, 1),
	}, nil
}

// noteRetry remembers the earliest retry time scheduled since the last
// sleep.
func (d *Dispatcher) noteRetry(at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nextRetry.IsZero() || at.Before(d.nextRetry) {
		d.nextRetry = at
	}
}

func (d *Dispatcher) takeNextRetry() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	at := d.nextRetry
	d.nextRetry = time.Time{}
	return at
}

// Owner is the name this dispatcher leases events under.
func (d *Dispatcher) Owner() string { return d.cfg.Owner }

// Wake asks the dispatcher to look for due events now rather than at the
// next poll; call it after committing an event. It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers events until ctx is done, then finishes the attempt in
// flight, releases the rest of its batch and returns nil. Store errors are
// logged and retried; they never end Run.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.log.Info("outbox dispatcher started", "batch_size", d.cfg.BatchSize, "poll_interval", d.cfg.PollInterval)
	defer d.log.Info("outbox dispatcher stopped")
	errDelay := time.Duration(0)
	for {
		_, again, err := d.runBatch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			errDelay = min(max(2*errDelay, minErrDelay), maxErrDelay)
			d.log.Error("outbox: claiming events failed", "err", err, "retry_in", errDelay)
			if !sleep(ctx, errDelay, nil) {
				return nil
			}
			continue
		}
		errDelay = 0
		if again {
			continue // a backlog: drain it batch by batch
		}
		// Sleep until the poll, or sooner when an attempt of this batch is
		// due for a retry before it, so back-off is kept to, not rounded up.
		wait := d.cfg.PollInterval
		if retry := d.takeNextRetry(); !retry.IsZero() {
			wait = min(wait, max(retry.Sub(d.cfg.Now()), 0))
		}
		if !sleep(ctx, wait, d.wake) {
			return nil
		}
	}
}

// RunOnce claims one batch and attempts each of its events, returning how
// many it attempted. It serves tests and the CLI.
func (d *Dispatcher) RunOnce(ctx context.Context) (processed int, err error) {
	processed, _, err = d.runBatch(ctx)
	return processed, err
}

// sleep waits for d, a wake, or ctx; it reports false when ctx is done.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

// runBatch claims one batch and attempts its events in order. again reports
// that more events may be due at once (a full batch, or a batch cut short).
func (d *Dispatcher) runBatch(ctx context.Context) (processed int, again bool, err error) {
	if ctx.Err() != nil {
		return 0, false, nil
	}
	claimedAt := d.cfg.Now()
	batch, err := d.store.Claim(ctx, d.cfg.Owner, claimedAt, d.cfg.Lease, d.cfg.BatchSize)
	if err != nil {
		return 0, false, fmt.Errorf("outbox: claim: %w", err)
	}
	leaseEnd := claimedAt.Add(d.cfg.Lease)
	// Events are attempted Concurrency at a time: their bookkeeping writes
	// then share commits, so delivery keeps up with a burst of assignments.
	slots := make(chan struct{}, d.cfg.Concurrency)
	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	for i, e := range batch {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil { // shutting down: start nothing more
			inFlight.Wait()
			d.release(ctx, batch[i:])
			return processed, false, nil
		}
		// An attempt must end before the lease does, or another dispatcher
		// could claim the event and deliver it alongside this one. Give the
		// rest back and claim them again with a fresh lease.
		if d.cfg.Now().Add(d.cfg.AttemptTimeout).After(leaseEnd) {
			<-slots
			inFlight.Wait()
			d.release(ctx, batch[i:])
			return processed, true, nil
		}
		inFlight.Add(1)
		go func() {
			defer func() { <-slots; inFlight.Done() }()
			d.attempt(ctx, e)
		}()
		processed++
	}
	return processed, len(batch) >= d.cfg.BatchSize, nil
}

// write runs one bookkeeping write detached from ctx, so that the result
// of an attempt is recorded even during shutdown, but bounded in time.
func (d *Dispatcher) write(ctx context.Context, fn func(context.Context) error) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	return fn(sctx)
}

// release gives back leases on events not attempted, so that they are
// delivered at once by the next dispatcher rather than when the lease ends.
func (d *Dispatcher) release(ctx context.Context, events []domain.OutboxEvent) {
	for _, e := range events {
		err := d.write(ctx, func(sctx context.Context) error {
			return d.store.Release(sctx, d.cfg.Owner, e.ID)
		})
		if err != nil {
			d.log.Warn("outbox: releasing event failed", "event", e.ID, "err", err)
		}
	}
}

// attempt delivers e to every sink that has not delivered it yet and
// records the outcome. A failing sink does not stop the others: each sink's
// success is recorded at once, so a retry repeats only the failed ones.
func (d *Dispatcher) attempt(ctx context.Context, e domain.OutboxEvent) {
	attempt := e.Attempts + 1
	// The attempt runs to its end even when ctx is cancelled (shutdown), so
	// a delivery is never cut halfway; AttemptTimeout bounds it instead.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.AttemptTimeout)
	defer cancel()

	var failures []string
	pending := 0
	for _, s := range d.sinks {
		if !e.DeliveredTo(s.Name()) {
			pending++
		}
	}
	for _, s := range d.sinks {
		name := s.Name()
		if e.DeliveredTo(name) {
			continue
		}
		pending--
		if err := s.Deliver(actx, e); err != nil {
			d.cfg.Observer.ObserveAttempt(name, "failed")
			d.log.Warn("outbox: delivery failed", "event", e.ID, "sink", name, "attempt", attempt, "err", err)
			failures = append(failures, name+": "+err.Error())
			continue
		}
		d.cfg.Observer.ObserveAttempt(name, "ok")
		// A success is recorded at once when another sink follows (so a
		// retry skips it, and a lost lease stops the next sink) or when one
		// failed; after the last sink of a clean attempt, the one Delivered
		// write below says it all: a write less per event.
		if pending == 0 && len(failures) == 0 {
			continue
		}
		err := d.write(ctx, func(sctx context.Context) error {
			return d.store.MarkSinkDone(sctx, d.cfg.Owner, e.ID, name)
		})
		if err != nil {
			if d.leaseLost(e, err) {
				return
			}
			d.log.Error("outbox: recording delivery failed", "event", e.ID, "sink", name, "attempt", attempt, "err", err)
			failures = append(failures, name+": recording delivery: "+err.Error())
		}
	}

	now := d.cfg.Now()
	if len(failures) == 0 {
		err := d.write(ctx, func(sctx context.Context) error {
			return d.store.Delivered(sctx, d.cfg.Owner, e.ID, now)
		})
		if err != nil {
			if !d.leaseLost(e, err) {
				d.log.Error("outbox: marking event delivered failed", "event", e.ID, "attempt", attempt, "err", err)
			}
			return
		}
		d.cfg.Observer.ObserveDelivery(now.Sub(e.CreatedAt))
		d.log.Debug("outbox: event delivered", "event", e.ID, "attempt", attempt)
		return
	}

	next := now.Add(domain.Backoff(attempt, d.cfg.BaseBackoff, d.cfg.MaxBackoff, d.cfg.Rand()))
	dead := attempt >= d.cfg.MaxAttempts
	msg := truncate(strings.Join(failures, "; "), maxErrorLen)
	err := d.write(ctx, func(sctx context.Context) error {
		return d.store.Failed(sctx, d.cfg.Owner, e.ID, msg, next, dead)
	})
	if err != nil {
		if !d.leaseLost(e, err) {
			d.log.Error("outbox: recording failed attempt failed", "event", e.ID, "attempt", attempt, "err", err)
		}
		return
	}
	if !dead {
		d.noteRetry(next)
	}
	if dead {
		d.log.Error("outbox: event is dead after its last attempt", "event", e.ID, "attempt", attempt, "err", msg)
	} else {
		d.log.Warn("outbox: attempt failed, will retry", "event", e.ID, "attempt", attempt, "next_attempt_at", next)
	}
}

// leaseLost reports (and logs) an EConflict: another dispatcher holds the
// event now and will deliver it, so this one moves on.
func (d *Dispatcher) leaseLost(e domain.OutboxEvent, err error) bool {
	if domain.ErrorCode(err) != domain.EConflict {
		return false
	}
	d.log.Warn("outbox: lease lost, leaving event to its new owner", "event", e.ID, "attempt", e.Attempts+1)
	return true
}

// truncate makes s one line of at most n bytes, cut on a rune boundary.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
