package outbox

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"healthrecord/domain"
)

// Store errors are retried after a delay growing from minErrDelay to maxErrDelay.
const (
	minErrDelay = 100 * time.Millisecond
	maxErrDelay = 5 * time.Second
)

// Deliverer is the application's delivery use cases (app.App).
type Deliverer interface {
	// DeliverNotifications delivers up to limit due in-API notifications
	// in one transaction and returns how many.
	DeliverNotifications(ctx context.Context, owner string, limit int) (int, error)
	// ClaimEmails leases up to limit due email deliveries to owner.
	ClaimEmails(ctx context.Context, owner string, lease time.Duration, limit int) ([]domain.OutboxEvent, error)
	// DeliverEmail attempts one claimed email delivery and records its
	// outcome.
	DeliverEmail(ctx context.Context, owner string, e domain.OutboxEvent) (string, error)
}

// Dispatcher runs one loop per sink. The in-API loop delivers batches as
// soon as they are due; the email loop keeps up to EmailConcurrency
// attempts in flight, claiming more as each one ends, so no event waits
// for another's email and no notification waits for any email.
type Dispatcher struct {
	app       Deliverer
	cfg       Config
	log       *slog.Logger
	wakeInApp chan struct{}
	wakeEmail chan struct{}
}

// New builds a dispatcher calling app's delivery use cases.
func New(app Deliverer, cfg Config, log *slog.Logger) (*Dispatcher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if app == nil {
		return nil, errors.New("outbox: nil application")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{
		app: app, cfg: cfg, log: log.With("owner", cfg.Owner),
		// One buffered slot each: a wake sent while a loop is busy is
		// kept, and more wakes than one add nothing.
		wakeInApp: make(chan struct{}, 1),
		wakeEmail: make(chan struct{}, 1),
	}, nil
}

// Wake asks both loops to look for due deliveries now rather than at the
// next poll; call it after committing an event. It never blocks.
func (d *Dispatcher) Wake() {
	for _, ch := range []chan struct{}{d.wakeInApp, d.wakeEmail} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Run delivers until ctx is done, then lets the email attempts in flight
// finish for up to ShutdownGrace (cutting the rest short, to be retried)
// and returns nil. Store errors are logged and retried; they never end Run.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.log.Info("outbox dispatcher started", "email", d.cfg.Email, "email_concurrency", d.cfg.EmailConcurrency,
		"poll_interval", d.cfg.PollInterval)
	defer d.log.Info("outbox dispatcher stopped")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.runInApp(ctx) }()
	if d.cfg.Email {
		wg.Add(1)
		go func() { defer wg.Done(); d.runEmail(ctx) }()
	}
	wg.Wait()
	return nil
}

// backoff is the delay before retrying after a store error.
type backoff time.Duration

func (b *backoff) next() time.Duration {
	*b = backoff(min(max(2*time.Duration(*b), minErrDelay), maxErrDelay))
	return time.Duration(*b)
}

func (d *Dispatcher) runInApp(ctx context.Context) {
	var errDelay backoff
	for {
		n, err := d.app.DeliverNotifications(ctx, d.cfg.Owner, d.cfg.BatchSize)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			delay := errDelay.next()
			d.log.Error("outbox: delivering notifications failed", "err", err, "retry_in", delay)
			if !sleep(ctx, delay, nil) {
				return
			}
			continue
		}
		errDelay = 0
		if n >= d.cfg.BatchSize {
			continue // a backlog: drain it batch by batch
		}
		if !sleep(ctx, d.cfg.PollInterval, d.wakeInApp) {
			return
		}
	}
}

func (d *Dispatcher) runEmail(ctx context.Context) {
	// Attempts outlive ctx by up to ShutdownGrace, so a message being
	// sent at shutdown usually completes rather than being repeated.
	attempts, cancelAttempts := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAttempts()
	var wg sync.WaitGroup
	ended := make(chan struct{}, d.cfg.EmailConcurrency)
	inFlight := 0
	claim, more := true, false
	var errDelay backoff
	for ctx.Err() == nil {
		wait := d.cfg.PollInterval
		if free := d.cfg.EmailConcurrency - inFlight; claim && free > 0 {
			claim = false
			events, err := d.app.ClaimEmails(ctx, d.cfg.Owner, d.cfg.Lease, free)
			switch {
			case ctx.Err() != nil:
			case err != nil:
				wait = errDelay.next()
				d.log.Error("outbox: claiming emails failed", "err", err, "retry_in", wait)
			default:
				errDelay = 0
				more = len(events) == free
				for _, e := range events {
					inFlight++
					wg.Add(1)
					go func() {
						defer func() { ended <- struct{}{}; wg.Done() }()
						d.attempt(attempts, e)
					}()
				}
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-ended:
			inFlight--
			// A free slot: claim again if the last claim may have left
			// due deliveries behind.
			claim = claim || more
		case <-d.wakeEmail:
			claim = true
		case <-t.C:
			claim = true
		}
		t.Stop()
	}
	grace := time.AfterFunc(d.cfg.ShutdownGrace, cancelAttempts)
	defer grace.Stop()
	wg.Wait()
}

// attempt runs one email attempt, bounded by AttemptTimeout.
func (d *Dispatcher) attempt(ctx context.Context, e domain.OutboxEvent) {
	actx, cancel := context.WithTimeout(ctx, d.cfg.AttemptTimeout)
	defer cancel()
	if _, err := d.app.DeliverEmail(actx, d.cfg.Owner, e); err != nil {
		// The lease runs out and the delivery is attempted again.
		d.log.Error("outbox: recording an email attempt failed", "event", e.ID, "err", err)
	}
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
