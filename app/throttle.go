package app

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"healthrecord/domain"
	"healthrecord/ports"
)

// Throttle state is bounded whatever clients send: keys are 64-bit hashes
// (never the username or address itself), each key keeps at most its
// limit of attempt times, and each table holds at most this many keys.
// Beyond it, expired keys are dropped first and then arbitrary ones: an
// attacker able to fill the table from enough addresses to evict a
// victim's entry could already guess from each of those addresses.
const (
	maxThrottleUsers = 20000
	maxThrottleAddrs = 5000
)

// throttle is the in-memory ports.Attempts, the default: it counts
// failed sign-ins per username and per client address in a sliding window
// (one process serves the clinic). The app reserves an attempt when it
// arrives, before its password is hashed, so concurrent guesses cannot all
// slip under the limit; a success releases it.
type throttle struct {
	mu    sync.Mutex
	seed  maphash.Seed
	users map[uint64][]int64 // unix nanos of attempts, oldest first
	addrs map[uint64][]int64
}

var _ ports.Attempts = (*throttle)(nil)

func newThrottle() *throttle {
	return &throttle{seed: maphash.MakeSeed(), users: map[uint64][]int64{}, addrs: map[uint64][]int64{}}
}

// Reserve implements ports.Attempts; it never fails.
func (t *throttle) Reserve(_ context.Context, lim ports.AttemptLimits, user, addr string, at time.Time) (time.Duration, error) {
	uk, ak := t.keys(user, addr)
	ns := at.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	if user != "" {
		wait = t.wait(t.users, uk, lim.PerUser, lim.Window, at)
	}
	if addr != "" {
		wait = max(wait, t.wait(t.addrs, ak, lim.PerAddr, lim.Window, at))
	}
	if wait > 0 {
		return wait, nil
	}
	if user != "" {
		t.add(t.users, uk, ns, lim.PerUser, maxThrottleUsers, lim.Window, at)
	}
	if addr != "" {
		t.add(t.addrs, ak, ns, lim.PerAddr, maxThrottleAddrs, lim.Window, at)
	}
	return 0, nil
}

// Release implements ports.Attempts; it never fails.
func (t *throttle) Release(_ context.Context, user, addr string, at time.Time) error {
	uk, ak := t.keys(user, addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	if user != "" {
		forget(t.users, uk, at.UnixNano())
	}
	if addr != "" {
		forget(t.addrs, ak, at.UnixNano())
	}
	return nil
}

func (t *throttle) keys(user, addr string) (uint64, uint64) {
	var uk, ak uint64
	if user != "" {
		uk = maphash.String(t.seed, user)
	}
	if addr != "" {
		ak = maphash.String(t.seed, addr)
	}
	return uk, ak
}

// wait drops key's aged-out attempts and returns how long until it is
// under limit again, 0 when it is.
func (t *throttle) wait(m map[uint64][]int64, key uint64, limit int, window time.Duration, now time.Time) time.Duration {
	ts, ok := m[key]
	if !ok {
		return 0
	}
	ts = live(ts, now.Add(-window).UnixNano())
	if len(ts) == 0 {
		delete(m, key)
		return 0
	}
	m[key] = ts
	if len(ts) < limit {
		return 0
	}
	// Free again when the oldest attempt that keeps it at the limit ages out.
	return time.Unix(0, ts[len(ts)-limit]).Add(window).Sub(now)
}

func (t *throttle) add(m map[uint64][]int64, key uint64, at int64, limit, maxKeys int, window time.Duration, now time.Time) {
	ts, ok := m[key]
	if !ok && len(m) >= maxKeys {
		// Down to seven eighths, so that new keys pay for this scan only
		// once in a while.
		t.pruneMap(m, now.Add(-window).UnixNano())
		for k := range m {
			if len(m) <= maxKeys*7/8 {
				break
			}
			delete(m, k)
		}
	}
	if ts == nil {
		ts = make([]int64, 0, limit)
	}
	m[key] = append(ts, at)
}

func forget(m map[uint64][]int64, key uint64, at int64) {
	ts := m[key]
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i] == at {
			ts = append(ts[:i], ts[i+1:]...)
			break
		}
	}
	if len(ts) == 0 {
		delete(m, key)
	} else {
		m[key] = ts
	}
}

// prune drops every key whose attempts have all aged out; the app runs it
// on a timer, so memory returns even when no one fails a sign-in again.
func (t *throttle) prune(window time.Duration, now time.Time) {
	cutoff := now.Add(-window).UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneMap(t.users, cutoff)
	t.pruneMap(t.addrs, cutoff)
}

func (t *throttle) pruneMap(m map[uint64][]int64, cutoff int64) {
	for k, ts := range m {
		if ts = live(ts, cutoff); len(ts) == 0 {
			delete(m, k)
		} else {
			m[k] = ts
		}
	}
}

// live drops the times at or before cutoff (times are appended in order),
// moving the rest to the front so the slice's array is reused, not grown.
func live(ts []int64, cutoff int64) []int64 {
	i := 0
	for i < len(ts) && ts[i] <= cutoff {
		i++
	}
	if i == 0 {
		return ts
	}
	return append(ts[:0], ts[i:]...)
}

// attempt is a sign-in attempt the throttle counted, to release when it
// succeeds or when no guess was checked.
type attempt struct {
	user, addr string
	at         time.Time
}

// reserveAttempt counts an attempt by user from addr at now, or returns
// EThrottled with how long to wait.
func (a *App) reserveAttempt(ctx context.Context, user, addr string, now time.Time) (attempt, error) {
	lim := ports.AttemptLimits{PerUser: a.cfg.ThrottleUser, PerAddr: a.cfg.ThrottleAddr, Window: a.cfg.ThrottleWindow}
	wait, err := a.attempts.Reserve(ctx, lim, user, addr, now)
	if err != nil {
		return attempt{}, err
	}
	if wait > 0 {
		return attempt{}, domain.Throttled(wait)
	}
	return attempt{user: user, addr: addr, at: now}, nil
}

// releaseAttempt forgets at, even when the request's ctx has ended: a
// success left counted would count as a failure.
func (a *App) releaseAttempt(ctx context.Context, at attempt) {
	if err := a.attempts.Release(context.WithoutCancel(ctx), at.user, at.addr, at.at); err != nil {
		a.log.Error("release a sign-in attempt", "err", err)
	}
}
