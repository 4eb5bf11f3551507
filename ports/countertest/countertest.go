// Package countertest is the contract suite of the throttle counters
// (ports.Attempts, ports.Rates): every implementation, in memory or
// shared, runs it from its tests.
package countertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/ports"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// RunAttempts runs the suite on fresh, empty counters from open.
func RunAttempts(t *testing.T, open func(t *testing.T) ports.Attempts) {
	ctx := context.Background()
	lim := ports.AttemptLimits{PerUser: 3, PerAddr: 5, Window: 15 * time.Minute}
	reserve := func(t *testing.T, a ports.Attempts, user, addr string, at time.Time) time.Duration {
		t.Helper()
		wait, err := a.Reserve(ctx, lim, user, addr, at)
		require.NoError(t, err)
		return wait
	}

	t.Run("sliding_window_per_user", func(t *testing.T) {
		a := open(t)
		for i := range 3 {
			require.Zero(t, reserve(t, a, "alice", "", t0.Add(time.Duration(i)*time.Minute)))
		}
		assert.Equal(t, 13*time.Minute, reserve(t, a, "alice", "", t0.Add(2*time.Minute)), "until the oldest ages out")
		assert.Zero(t, reserve(t, a, "bob", "", t0.Add(2*time.Minute)), "another user is not affected")
		assert.Zero(t, reserve(t, a, "alice", "", t0.Add(15*time.Minute+time.Second)))
		assert.Equal(t, time.Minute-time.Second, reserve(t, a, "alice", "", t0.Add(15*time.Minute+time.Second)))
	})

	t.Run("per_address_whatever_the_users", func(t *testing.T) {
		a := open(t)
		for i := range 5 {
			require.Zero(t, reserve(t, a, fmt.Sprintf("user%d", i), "203.0.113.9", t0))
		}
		assert.Equal(t, 15*time.Minute, reserve(t, a, "other", "203.0.113.9", t0))
		assert.Zero(t, reserve(t, a, "other", "198.51.100.1", t0))
	})

	t.Run("a_refused_attempt_counts_nowhere", func(t *testing.T) {
		a := open(t)
		for range 3 {
			require.Zero(t, reserve(t, a, "alice", "", t0))
		}
		for range 10 {
			require.Positive(t, reserve(t, a, "alice", "203.0.113.9", t0))
		}
		for i := range 5 {
			require.Zero(t, reserve(t, a, fmt.Sprintf("user%d", i), "203.0.113.9", t0), "attempt %d", i)
		}
	})

	t.Run("release_forgets_the_attempt", func(t *testing.T) {
		a := open(t)
		for i := range 10 {
			at := t0.Add(time.Duration(i) * time.Second)
			require.Zero(t, reserve(t, a, "alice", "203.0.113.9", at))
			require.NoError(t, a.Release(ctx, "alice", "203.0.113.9", at))
		}
		for range 3 {
			require.Zero(t, reserve(t, a, "alice", "203.0.113.9", t0))
		}
		// Two attempts at one time: releasing one keeps the other.
		require.NoError(t, a.Release(ctx, "alice", "203.0.113.9", t0))
		require.Zero(t, reserve(t, a, "alice", "203.0.113.9", t0))
		assert.Equal(t, 15*time.Minute, reserve(t, a, "alice", "203.0.113.9", t0))
	})

	t.Run("none_counts_nothing", func(t *testing.T) {
		a := open(t)
		for range 10 {
			require.Zero(t, reserve(t, a, "", "", t0))
		}
		require.NoError(t, a.Release(ctx, "", "", t0))
	})

	t.Run("concurrent_reserves_never_pass_the_limit", func(t *testing.T) {
		a := open(t)
		allowed := Concurrently(30, func(int) bool { return reserve(t, a, "alice", "", t0) == 0 })
		assert.Equal(t, 3, allowed)
	})
}

// RunRates runs the suite on fresh, empty counters from open.
func RunRates(t *testing.T, open func(t *testing.T) ports.Rates) {
	ctx := context.Background()
	allow := func(t *testing.T, r ports.Rates, key string, n int, per time.Duration, at time.Time) time.Duration {
		t.Helper()
		wait, err := r.Allow(ctx, key, n, per, at)
		require.NoError(t, err)
		return wait
	}

	t.Run("burst_then_steady", func(t *testing.T) {
		r := open(t)
		for range 4 {
			require.Zero(t, allow(t, r, "user:1", 4, time.Minute, t0))
		}
		assert.Equal(t, 15*time.Second, allow(t, r, "user:1", 4, time.Minute, t0))
		assert.Zero(t, allow(t, r, "user:2", 4, time.Minute, t0), "another key is not affected")
		assert.Equal(t, 5*time.Second, allow(t, r, "user:1", 4, time.Minute, t0.Add(10*time.Second)))
		assert.Zero(t, allow(t, r, "user:1", 4, time.Minute, t0.Add(15*time.Second)))
		assert.Equal(t, 15*time.Second, allow(t, r, "user:1", 4, time.Minute, t0.Add(15*time.Second)))
		assert.Zero(t, allow(t, r, "user:1", 1, time.Minute, t0.Add(time.Hour)), "back to a full allowance")
	})

	t.Run("refused_requests_do_not_count", func(t *testing.T) {
		r := open(t)
		require.Zero(t, allow(t, r, "anon:a", 1, time.Second, t0))
		for range 100 {
			require.Positive(t, allow(t, r, "anon:a", 1, time.Second, t0.Add(500*time.Millisecond)))
		}
		assert.Zero(t, allow(t, r, "anon:a", 1, time.Second, t0.Add(time.Second)))
	})

	t.Run("concurrent_requests_never_pass_the_rate", func(t *testing.T) {
		r := open(t)
		allowed := Concurrently(40, func(int) bool { return allow(t, r, "user:1", 10, time.Hour, t0) == 0 })
		assert.Equal(t, 10, allowed)
	})
}

// Concurrently runs n copies of fn at once and counts those that return
// true.
func Concurrently(n int, fn func(i int) bool) int {
	var mu sync.Mutex
	count := 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if fn(i) {
				mu.Lock()
				count++
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	return count
}
