package app

import (
	"hash/maphash"
	"sync"
	"time"
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

// throttle counts failed sign-ins per username and per client address in a
// sliding window, in memory (one process serves the clinic). An attempt is
// reserved when it arrives, before its password is hashed, so concurrent
// guesses cannot all slip under the limit; a success releases it.
type throttle struct {
	mu      sync.Mutex
	perUser int
	perAddr int
	window  time.Duration
	seed    maphash.Seed
	users   map[uint64][]int64 // unix nanos of attempts, oldest first
	addrs   map[uint64][]int64
}

func newThrottle(perUser, perAddr int, window time.Duration) *throttle {
	return &throttle{perUser: perUser, perAddr: perAddr, window: window, seed: maphash.MakeSeed(),
		users: map[uint64][]int64{}, addrs: map[uint64][]int64{}}
}

// reservation is an attempt counted by reserve, to release on success.
type reservation struct {
	user, addr       uint64
	hasUser, hasAddr bool
	at               int64
}

// reserve counts an attempt by user (a canonical username; "" for none)
// from addr ("" for none) at now, unless either is at its limit: then it
// returns how long until it may try again, and counts nothing.
func (t *throttle) reserve(user, addr string, now time.Time) (reservation, time.Duration) {
	r := reservation{at: now.UnixNano(), hasUser: user != "", hasAddr: addr != ""}
	if r.hasUser {
		r.user = maphash.String(t.seed, user)
	}
	if r.hasAddr {
		r.addr = maphash.String(t.seed, addr)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	if r.hasUser {
		wait = t.wait(t.users, r.user, t.perUser, now)
	}
	if r.hasAddr {
		wait = max(wait, t.wait(t.addrs, r.addr, t.perAddr, now))
	}
	if wait > 0 {
		return reservation{}, wait
	}
	if r.hasUser {
		t.add(t.users, r.user, r.at, t.perUser, maxThrottleUsers, now)
	}
	if r.hasAddr {
		t.add(t.addrs, r.addr, r.at, t.perAddr, maxThrottleAddrs, now)
	}
	return r, 0
}

// release forgets a reserved attempt: it succeeded.
func (t *throttle) release(r reservation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.hasUser {
		forget(t.users, r.user, r.at)
	}
	if r.hasAddr {
		forget(t.addrs, r.addr, r.at)
	}
}

// wait drops key's aged-out attempts and returns how long until it is
// under limit again, 0 when it is.
func (t *throttle) wait(m map[uint64][]int64, key uint64, limit int, now time.Time) time.Duration {
	ts, ok := m[key]
	if !ok {
		return 0
	}
	ts = live(ts, now.Add(-t.window).UnixNano())
	if len(ts) == 0 {
		delete(m, key)
		return 0
	}
	m[key] = ts
	if len(ts) < limit {
		return 0
	}
	// Free again when the oldest attempt that keeps it at the limit ages out.
	return time.Unix(0, ts[len(ts)-limit]).Add(t.window).Sub(now)
}

func (t *throttle) add(m map[uint64][]int64, key uint64, at int64, limit, maxKeys int, now time.Time) {
	ts, ok := m[key]
	if !ok && len(m) >= maxKeys {
		// Down to seven eighths, so that new keys pay for this scan only
		// once in a while.
		t.pruneMap(m, now.Add(-t.window).UnixNano())
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
func (t *throttle) prune(now time.Time) {
	cutoff := now.Add(-t.window).UnixNano()
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
