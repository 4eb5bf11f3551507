// Package app holds healthrecord's use cases: each method tells one
// request's story by combining domain rules with the ports.
package app

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"healthrecord/domain"
	"healthrecord/ports"
)

// Config holds the application's settings. A zero field takes its
// default (setDefaults); New does not check the values: cmd/healthrecord
// validates what an operator sets before it gets here.
type Config struct {
	AccessTTL          time.Duration
	RefreshTTL         time.Duration
	AutoApproveDoctors bool
	// MailHost names this server in email Message-IDs.
	MailHost string
	// Sign-in throttling: failures allowed per username and per client
	// address within ThrottleWindow.
	ThrottleUser   int
	ThrottleAddr   int
	ThrottleWindow time.Duration
	// AuditFlushInterval bounds how long a read's audit entry may wait in
	// memory before it is written.
	AuditFlushInterval time.Duration
	// AuditHeadInterval is how often the background work logs the audit
	// chain's head, a copy kept outside the database.
	AuditHeadInterval time.Duration
	// Email delivery retries: back-off from OutboxBackoff doubling up to
	// OutboxMaxBackoff; a transient failure is given up (dead) once the
	// delivery is OutboxMaxAge old.
	OutboxBackoff    time.Duration
	OutboxMaxBackoff time.Duration
	OutboxMaxAge     time.Duration
	// QuotaBytes bounds the stored bytes of a patient's records and
	// comments; 0 is no limit.
	QuotaBytes int64
	// HashConcurrency is how many password hashes run at once, shared
	// round-robin between client addresses; match the hasher's own bound.
	HashConcurrency int
}

func (c *Config) setDefaults() {
	if c.AccessTTL == 0 {
		c.AccessTTL = 5 * time.Minute
	}
	if c.RefreshTTL == 0 {
		c.RefreshTTL = 24 * time.Hour
	}
	if c.MailHost == "" {
		c.MailHost = "healthrecord.localhost"
	}
	if c.ThrottleUser == 0 {
		c.ThrottleUser = 10
	}
	if c.ThrottleAddr == 0 {
		c.ThrottleAddr = 100
	}
	if c.ThrottleWindow == 0 {
		c.ThrottleWindow = 15 * time.Minute
	}
	if c.AuditFlushInterval == 0 {
		c.AuditFlushInterval = 50 * time.Millisecond
	}
	if c.AuditHeadInterval == 0 {
		c.AuditHeadInterval = time.Hour
	}
	if c.OutboxBackoff == 0 {
		c.OutboxBackoff = 2 * time.Second
	}
	if c.OutboxMaxBackoff == 0 {
		c.OutboxMaxBackoff = 15 * time.Minute
	}
	if c.OutboxMaxAge == 0 {
		c.OutboxMaxAge = 72 * time.Hour
	}
	if c.HashConcurrency == 0 {
		c.HashConcurrency = 2
	}
}

// Deps are the ports the application uses.
type Deps struct {
	Store  ports.Store
	Tokens ports.TokenIssuer
	Hasher ports.PasswordHasher
	Clock  ports.Clock
	// Random returns n random bytes (token ids, session ids).
	Random func(n int) []byte
	// UsernameKey maps a username to the form the store compares for
	// uniqueness and sign-in (Unicode NFKC and case folding), so that the
	// throttle counts every spelling of one account together; nil
	// lower-cases only.
	UsernameKey func(string) string
	Log         *slog.Logger
	// Mailer sends the assignment emails; nil: no email.
	Mailer ports.Mailer
	// Observer, when set, hears every delivery attempt's outcome.
	Observer ports.DeliveryObserver
	// Attempts counts sign-in attempts for the throttle where every
	// instance sees them; nil counts in this process's memory.
	Attempts ports.Attempts
}

// App is the application: every use case is a method.
type App struct {
	store  ports.Store
	tokens ports.TokenIssuer
	hasher ports.PasswordHasher
	clock  ports.Clock
	random func(int) []byte
	// usernameKey is Deps.UsernameKey.
	usernameKey func(string) string
	log         *slog.Logger
	cfg         Config

	mailer   ports.Mailer
	observer ports.DeliveryObserver
	retry    domain.RetryPolicy

	// attempts counts sign-in attempts for the throttle; memThrottle is
	// it when it is the in-memory default (RunBackground prunes it), nil
	// otherwise.
	attempts    ports.Attempts
	memThrottle *throttle

	hashing  *fairHash
	revoked  *revocations
	audit    *auditBatcher
	notified broadcast // this process stored a notification
	// dummyHash is verified for unknown usernames, so a sign-in takes as
	// long whether or not the account exists.
	dummyHash string
}

// New builds the application. Call Start before serving requests and Close
// on shutdown, so buffered audit entries are written.
func New(d Deps, cfg Config) *App {
	cfg.setDefaults()
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.UsernameKey == nil {
		d.UsernameKey = strings.ToLower
	}
	a := &App{
		store: d.Store, tokens: d.Tokens, hasher: d.Hasher, clock: d.Clock, random: d.Random, log: d.Log, cfg: cfg,
		usernameKey: d.UsernameKey,
		mailer:      d.Mailer, observer: d.Observer,
		retry:    domain.RetryPolicy{BaseBackoff: cfg.OutboxBackoff, MaxBackoff: cfg.OutboxMaxBackoff, MaxAge: cfg.OutboxMaxAge},
		attempts: d.Attempts,
		hashing:  newFairHash(cfg.HashConcurrency),
		revoked:  newRevocations(),
	}
	if a.attempts == nil {
		a.memThrottle = newThrottle()
		a.attempts = a.memThrottle
	}
	a.audit = newAuditBatcher(d.Store, d.Log, cfg.AuditFlushInterval)
	return a
}

// Start loads the revoked sign-ins and computes the dummy hash. It must
// run before the first request.
func (a *App) Start(ctx context.Context) error {
	h, err := a.hasher.Hash(ctx, "healthrecord-dummy-password-for-timing")
	if err != nil {
		return err
	}
	a.dummyHash = h
	return a.SyncRevocations(ctx)
}

// Close writes the audit entries still buffered; the store must still be
// open.
func (a *App) Close(ctx context.Context) error { return a.audit.Close(ctx) }

// RunBackground flushes buffered audit entries, polls revocations made
// by other processes (the CLI) and logs the audit head, until ctx ends.
func (a *App) RunBackground(ctx context.Context) {
	go a.audit.Run(ctx)
	a.logAuditHead(ctx)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastPrune := time.Now()
	head := time.NewTicker(a.cfg.AuditHeadInterval)
	defer head.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-head.C:
			a.logAuditHead(ctx)
		case now := <-t.C:
			if err := a.SyncRevocations(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("sync revocations", "err", err)
			}
			// Throttle memory returns on its own, not only at the next
			// failure.
			if now.Sub(lastPrune) >= time.Minute && a.memThrottle != nil {
				a.memThrottle.prune(a.cfg.ThrottleWindow, a.clock.Now())
				lastPrune = now
			}
		}
	}
}

// pageQuery asks the store for one more item than the page holds, to know
// whether a next page exists.
func pageQuery(p domain.Page) domain.Page {
	return domain.Page{Limit: p.Size() + 1, After: p.After}
}

// trimPage cuts items to the requested page and returns the cursor of the
// next page, nil on the last one.
func trimPage[T any](items []T, p domain.Page, cursor func(T) domain.Cursor) ([]T, *domain.Cursor) {
	limit := p.Size()
	if len(items) <= limit {
		return items, nil
	}
	items = items[:limit]
	c := cursor(items[limit-1])
	return items, &c
}
