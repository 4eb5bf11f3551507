// Package outbox runs the background dispatcher: a thin loop per sink that
// claims due deliveries of committed outbox events, leases them, wakes on
// commit and calls the application's delivery use cases, which hold the
// policy (what is due, back-off, dead).
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
	// BatchSize bounds how many in-API notifications are delivered in one
	// write transaction.
	BatchSize int
	// Email runs the email loop; without it only in-API notifications are
	// delivered.
	Email bool
	// EmailConcurrency bounds the email attempts in flight at once; set
	// it to the SMTP pool's size, so no attempt waits for a connection.
	EmailConcurrency int
	// Lease is how long a claimed email delivery stays reserved to this
	// dispatcher. It must exceed AttemptTimeout, so a lease never runs out
	// mid-attempt; after a crash, delivery resumes when it ends.
	Lease time.Duration
	// PollInterval is how long a loop sleeps when idle and not woken; it
	// is also how late a retry may be noticed after it falls due.
	PollInterval time.Duration
	// AttemptTimeout bounds one email attempt.
	AttemptTimeout time.Duration
	// ShutdownGrace is how long attempts in flight may go on after Run's
	// context ends before they are cut short (and retried later).
	ShutdownGrace time.Duration
}

// Defaults.
const (
	DefaultBatchSize        = 100
	DefaultEmailConcurrency = 4
	DefaultLease            = time.Minute
	DefaultPollInterval     = time.Second
	DefaultAttemptTimeout   = 30 * time.Second
	DefaultShutdownGrace    = 3 * time.Second
)

func (c *Config) setDefaults() {
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
	if c.EmailConcurrency == 0 {
		c.EmailConcurrency = DefaultEmailConcurrency
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
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
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
	if c.EmailConcurrency < 1 {
		bad("outbox: EmailConcurrency %d < 1", c.EmailConcurrency)
	}
	if c.PollInterval <= 0 {
		bad("outbox: PollInterval %v <= 0", c.PollInterval)
	}
	if c.AttemptTimeout <= 0 {
		bad("outbox: AttemptTimeout %v <= 0", c.AttemptTimeout)
	}
	if c.ShutdownGrace <= 0 {
		bad("outbox: ShutdownGrace %v <= 0", c.ShutdownGrace)
	}
	// A lease shorter than an attempt would let another dispatcher claim
	// the delivery while this one is still attempting it.
	if c.Lease <= c.AttemptTimeout {
		bad("outbox: Lease %v must exceed AttemptTimeout %v", c.Lease, c.AttemptTimeout)
	}
	return errors.Join(errs...)
}
