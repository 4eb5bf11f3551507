package ports

import (
	"context"
	"time"
)

// The throttles' counts live behind these ports so that several instances
// on one database count together. By default the app and the HTTP adapter
// count in memory (one process serves); a shared implementation keeps the
// counts where every instance sees them. The policy (limits, window, rate)
// is the caller's and travels with each call; implementations only count,
// keep keys as hashes (never a username or address in clear) and bound
// what they keep.

// AttemptLimits is the sign-in throttle's policy: attempts allowed per
// username and per client address within Window.
type AttemptLimits struct {
	PerUser, PerAddr int
	Window           time.Duration
}

// Attempts counts sign-in attempts per username and per client address in
// a sliding window.
type Attempts interface {
	// Reserve counts an attempt at `at` by user (a canonical username, ""
	// for none) from addr ("" for none), unless either already holds its
	// limit of attempts within the window before at: then it counts nothing
	// and returns how long until it would. Concurrent calls never count
	// past a limit, whichever instance makes them.
	Reserve(ctx context.Context, lim AttemptLimits, user, addr string, at time.Time) (time.Duration, error)
	// Release forgets the attempt Reserve counted at `at` for user and
	// addr: it succeeded, or no guess was checked.
	Release(ctx context.Context, user, addr string, at time.Time) error
}

// Rates enforces request rates of n per `per` per key with the generic
// cell rate algorithm (a burst of n, then one every per/n).
type Rates interface {
	// Allow counts a request under key at now and returns 0, or how long
	// until the rate would allow it, counting nothing. Keys of different
	// rates must differ (the caller prefixes them).
	Allow(ctx context.Context, key string, n int, per time.Duration, now time.Time) (time.Duration, error)
}
