package httpapi

import (
	"context"
	"errors"
	"hash/maphash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"healthrecord/domain"
	"healthrecord/ports"
)

// Rate is a DRF-style throttle rate: at most N requests per Per. The zero
// Rate is off.
type Rate struct {
	N   int
	Per time.Duration
}

// Off reports whether the rate limits nothing.
func (r Rate) Off() bool { return r.N <= 0 }

var ratePeriods = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "second": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute,
	"h": time.Hour, "hour": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour,
}

// ParseRate reads DRF's rate syntax, "N/period" with period s, m (min), h
// or d (as DRF, only the first letter counts: "1200/min"), or "0" for off.
func ParseRate(s string) (Rate, error) {
	if s == "0" {
		return Rate{}, nil
	}
	num, period, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(num)
	per, known := ratePeriods[period]
	if !ok || err != nil || n <= 0 || !known {
		return Rate{}, errors.New(`want "N/s", "N/min", "N/h", "N/day" with N > 0, or "0" for off`)
	}
	return Rate{N: n, Per: per}, nil
}

// limiter enforces one Rate per key with the generic cell rate algorithm:
// one timestamp per key (when its allowance is next full), so a key costs
// 16 bytes whatever the client sends, and a check takes no allocation.
// Keys are spread over shards, so that signed-in users' requests do not
// all queue for one lock.
type limiter struct {
	interval int64 // nanoseconds between requests at the steady rate
	burst    int64 // how far ahead of now a key's time may run: (N-1) intervals
	shards   [limiterShards]limiterShard
}

const (
	limiterShards = 64
	// maxLimiterKeys bounds each shard; beyond it keys that are back to a
	// full allowance (no information lost) and then arbitrary ones go.
	maxLimiterKeys = 4096
)

type limiterShard struct {
	mu  sync.Mutex
	tat map[uint64]int64 // theoretical arrival time, unix nanos
	_   [48]byte         // a shard per cache line: no false sharing
}

// newLimiter returns nil for a rate that is off; a nil limiter allows all.
func newLimiter(r Rate) *limiter {
	if r.Off() {
		return nil
	}
	l := &limiter{interval: int64(r.Per) / int64(r.N)}
	l.burst = l.interval * int64(r.N-1)
	for i := range l.shards {
		l.shards[i].tat = map[uint64]int64{}
	}
	return l
}

// allow counts a request by key at now and returns 0, or how long to wait
// without counting it.
func (l *limiter) allow(key uint64, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	t := now.UnixNano()
	sh := &l.shards[key%limiterShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	tat, ok := sh.tat[key]
	if !ok || tat < t {
		tat = t
	}
	if tat-t > l.burst {
		return time.Duration(tat - l.burst - t)
	}
	if !ok && len(sh.tat) >= maxLimiterKeys {
		sh.evict(t)
	}
	sh.tat[key] = tat + l.interval
	return 0
}

// evict makes room in a full shard: keys back to a full allowance first
// (forgetting them loses nothing), then arbitrary ones, down to seven
// eighths of the bound, so a stream of new keys pays for a scan only once
// in a while.
func (sh *limiterShard) evict(now int64) {
	for k, tat := range sh.tat {
		if tat <= now {
			delete(sh.tat, k)
		}
	}
	for k := range sh.tat {
		if len(sh.tat) <= maxLimiterKeys*7/8 {
			return
		}
		delete(sh.tat, k)
	}
}

// rates holds the server's request rates: in memory by default (one
// process serves), or counted by cfg.Rates where every instance sees them.
// The in-memory path stays a direct call: the per-user rate runs on every
// authenticated request.
type rates struct {
	seed     maphash.Seed
	register *limiter // per client address
	user     *limiter // per signed-in user
	anon     *limiter // per client address, requests without a token

	shared                  ports.Rates
	registerR, userR, anonR Rate
}

func newRates(cfg Config) *rates {
	r := &rates{seed: maphash.MakeSeed(), shared: cfg.Rates,
		registerR: cfg.RateRegister, userR: cfg.RateUser, anonR: cfg.RateAnon}
	if r.shared == nil {
		r.register, r.user, r.anon = newLimiter(cfg.RateRegister), newLimiter(cfg.RateUser), newLimiter(cfg.RateAnon)
	}
	return r
}

func (r *rates) addrKey(addr string) uint64 { return maphash.String(r.seed, addr) }

// allowUser counts a request by a signed-in user; like the others it
// returns how long to wait, 0 when allowed.
func (r *rates) allowUser(ctx context.Context, id int64, now time.Time) (time.Duration, error) {
	if r.shared == nil {
		return r.user.allow(uint64(id), now), nil
	}
	return r.allowShared(ctx, r.userR, "user:"+strconv.FormatInt(id, 10), now)
}

// allowAnon counts a request without credentials from addr.
func (r *rates) allowAnon(ctx context.Context, addr string, now time.Time) (time.Duration, error) {
	if r.shared == nil {
		return r.anon.allow(r.addrKey(addr), now), nil
	}
	return r.allowShared(ctx, r.anonR, "anon:"+addr, now)
}

// allowRegister counts a registration from addr.
func (r *rates) allowRegister(ctx context.Context, addr string, now time.Time) (time.Duration, error) {
	if r.shared == nil {
		return r.register.allow(r.addrKey(addr), now), nil
	}
	return r.allowShared(ctx, r.registerR, "register:"+addr, now)
}

func (r *rates) allowShared(ctx context.Context, rate Rate, key string, now time.Time) (time.Duration, error) {
	if rate.Off() {
		return 0, nil
	}
	return r.shared.Allow(ctx, key, rate.N, rate.Per, now)
}

// throttled answers a request over a rate, or a failure to count it, and
// reports whether it did.
func (s *server) throttled(w http.ResponseWriter, r *http.Request, wait time.Duration, err error) bool {
	switch {
	case err != nil:
		s.writeError(w, r, err)
	case wait > 0:
		s.writeError(w, r, domain.Throttled(wait))
	default:
		return false
	}
	return true
}

// anonRate limits requests that carry no credentials, per client address.
// Probes (/healthz, /readyz) are exempt: a load balancer polls them.
func (s *server) anonRate(next http.Handler) http.Handler {
	if s.rates.anonR.Off() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			if wait, err := s.rates.allowAnon(r.Context(), remoteAddr(r), time.Now()); s.throttled(w, r, wait, err) {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
