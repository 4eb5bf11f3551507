// Package outbox runs the background dispatcher that delivers committed
// outbox events to their sinks (the in-API notification, the email), at least
// once, with retries and back-off, and sets aside events that keep failing.
package outbox

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

// Config tunes the dispatcher. Zero fields take the defaults below.
type Config struct {
	// Owner names this dispatcher in the leases it takes; two dispatchers
	// must have different owners. Default: hostname-pid-random.
	Owner string
	// BatchSize bounds how many events are claimed, and held in memory, at once.
	BatchSize int
	// Concurrency is how many events of a batch are attempted at once:
	// their bookkeeping writes then share commits (8: ~2,800 events/s,
	// 32: ~6,000/s on a 2-core machine). It is also the most SMTP
	// connections opened at once.
	Concurrency int
	// Lease is how long a claimed event stays reserved to this dispatcher.
	// It must exceed AttemptTimeout, so a lease never runs out mid-attempt.
	Lease time.Duration
	// PollInterval is how long the dispatcher sleeps when idle and not woken.
	PollInterval time.Duration
	// AttemptTimeout bounds one delivery attempt of one event (all its sinks).
	AttemptTimeout time.Duration
	// BaseBackoff and MaxBackoff shape the delay between failed attempts.
	BaseBackoff, MaxBackoff time.Duration
	// MaxAttempts is how many failed attempts make an event dead.
	MaxAttempts int
	// Now tells the time; tests pass a fake clock.
	Now func() time.Time
	// Rand returns a value in [0, 1) for back-off jitter.
	Rand func() float64
	// Observer is told of every attempt and delivery (metrics); nil
	// observes nothing.
	Observer Observer
}

// Observer receives the dispatcher's outcomes, for metrics. Its methods
// must be safe for concurrent use and must not block.
type Observer interface {
	// ObserveAttempt is called once per attempt of an event on a sink,
	// with outcome ok or failed.
	ObserveAttempt(sink, outcome string)
	// ObserveDelivery is called when an event is delivered to every sink,
	// with the time since its commit.
	ObserveDelivery(d time.Duration)
}

type nopObserver struct{}

func (nopObserver) ObserveAttempt(string, string) {}
func (nopObserver) ObserveDelivery(time.Duration) {}

// Defaults.
const (
	DefaultBatchSize      = 100
	DefaultConcurrency    = 32
	DefaultLease          = time.Minute
	DefaultPollInterval   = 2 * time.Second
	DefaultAttemptTimeout = 30 * time.Second
	DefaultBaseBackoff    = 2 * time.Second
	DefaultMaxBackoff     = 15 * time.Minute
	DefaultMaxAttempts    = 8
)

func (c *Config) setDefaults() {
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Owner == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		c.Owner = fmt.Sprintf("%s-%d-%08x", host, os.Getpid(), rand.Uint32())
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.BaseBackoff == 0 {
		c.BaseBackoff = DefaultBaseBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Owner == "" {
		bad("outbox: Owner is empty")
	}
	if c.BatchSize < 1 {
		bad("outbox: BatchSize %d < 1", c.BatchSize)
	}
	if c.Concurrency < 1 {
		bad("outbox: Concurrency %d < 1", c.Concurrency)
	}
	if c.PollInterval <= 0 {
		bad("outbox: PollInterval %v <= 0", c.PollInterval)
	}
	if c.AttemptTimeout <= 0 {
		bad("outbox: AttemptTimeout %v <= 0", c.AttemptTimeout)
	}
	// A lease shorter than an attempt would let another dispatcher claim
	// the event while this one is still delivering it.
	if c.Lease <= c.AttemptTimeout {
		bad("outbox: Lease %v must exceed AttemptTimeout %v", c.Lease, c.AttemptTimeout)
	}
	if c.BaseBackoff <= 0 {
		bad("outbox: BaseBackoff %v <= 0", c.BaseBackoff)
	}
	if c.MaxBackoff < c.BaseBackoff {
		bad("outbox: MaxBackoff %v < BaseBackoff %v", c.MaxBackoff, c.BaseBackoff)
	}
	if c.MaxAttempts < 1 {
		bad("outbox: MaxAttempts %d < 1", c.MaxAttempts)
	}
	if c.Now == nil {
		bad("outbox: Now is nil")
	}
	if c.Rand == nil {
		bad("outbox: Rand is nil")
	}
	return errors.Join(errs...)
}
