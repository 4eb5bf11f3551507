package app

import (
	"sync"
	"time"
)

// revocations is the in-memory set of revoked sign-ins, kept in step with
// the database: the app adds what it revokes itself, and SyncRevocations
// polls for what other processes revoked.
type revocations struct {
	mu     sync.RWMutex
	ids    map[string]time.Time
	synced time.Time
}

func newRevocations() *revocations { return &revocations{ids: map[string]time.Time{}} }

func (r *revocations) add(id string, at time.Time) {
	r.mu.Lock()
	r.ids[id] = at
	r.mu.Unlock()
}

func (r *revocations) has(id string) bool {
	r.mu.RLock()
	_, ok := r.ids[id]
	r.mu.RUnlock()
	return ok
}

// syncedUntil returns where the next sync starts: a little before the last
// one (revocations committed concurrently may carry an earlier time), or
// floor at the first sync.
func (r *revocations) syncedUntil(floor time.Time) time.Time {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.synced.IsZero() {
		return floor
	}
	return r.synced.Add(-5 * time.Second)
}

// prune forgets revocations older than before and records the sync time.
func (r *revocations) prune(before, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, at := range r.ids {
		if at.Before(before) {
			delete(r.ids, id)
		}
	}
	r.synced = now
}

// throttle counts failed sign-ins per username and per client address in a
// sliding window, in memory (one process serves the clinic).
type throttle struct {
	mu         sync.Mutex
	perUser    int
	perAddr    int
	window     time.Duration
	users      map[string][]time.Time
	addrs      map[string][]time.Time
	lastPurged time.Time
}

func newThrottle(perUser, perAddr int, window time.Duration) *throttle {
	return &throttle{perUser: perUser, perAddr: perAddr, window: window,
		users: map[string][]time.Time{}, addrs: map[string][]time.Time{}}
}

// blocked returns how long until the username or the address may try
// again, 0 when it may now.
func (t *throttle) blocked(user, addr string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	wait := t.wait(t.users, user, t.perUser, now)
	if w := t.wait(t.addrs, addr, t.perAddr, now); w > wait {
		wait = w
	}
	return wait
}

func (t *throttle) wait(m map[string][]time.Time, key string, limit int, now time.Time) time.Duration {
	fails := live(m[key], now.Add(-t.window))
	m[key] = fails
	if len(fails) == 0 {
		delete(m, key)
	}
	if len(fails) < limit {
		return 0
	}
	// Free again when the oldest failure that keeps it at the limit ages out.
	return fails[len(fails)-limit].Add(t.window).Sub(now)
}

func (t *throttle) fail(user, addr string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.users[user] = append(t.users[user], now)
	t.addrs[addr] = append(t.addrs[addr], now)
	if now.Sub(t.lastPurged) > t.window {
		// Bound memory: drop keys whose failures have all aged out.
		for _, m := range []map[string][]time.Time{t.users, t.addrs} {
			for k, v := range m {
				if v = live(v, now.Add(-t.window)); len(v) == 0 {
					delete(m, k)
				} else {
					m[k] = v
				}
			}
		}
		t.lastPurged = now
	}
}

// live drops the times before cutoff (times are appended in order).
func live(ts []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(cutoff) {
		i++
	}
	return ts[i:]
}
