package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"healthrecord/ports"
)

// Counters keeps the sign-in throttle's attempts and the request rates in
// the database (migrations/postgres/00002_counters.sql), so that every
// instance on it counts together. Each check is one round trip to a
// function that does it in one transaction. Keys are stored as 64-bit
// HMACs under a key the database holds: the tables never name a user or an
// address. It implements ports.Attempts and ports.Rates.
type Counters struct {
	db  *DB
	key []byte
}

var (
	_ ports.Attempts = (*Counters)(nil)
	_ ports.Rates    = (*Counters)(nil)
)

// Counters returns the database's shared counters; the first instance to
// ask makes their hashing key. The database must be migrated.
func (db *DB) Counters(ctx context.Context) (*Counters, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("postgres: counters: %w", err)
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO counter_key (one, key) VALUES (1, $1) ON CONFLICT DO NOTHING`, k); err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("postgres: counters: %w", err))
	}
	if err := db.pool.QueryRow(ctx, `SELECT key FROM counter_key WHERE one = 1`).Scan(&k); err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("postgres: counters: %w", err))
	}
	return &Counters{db: db, key: k}, nil
}

// hash is the stored key for kind and value.
func (c *Counters) hash(kind, value string) int64 {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return int64(binary.BigEndian.Uint64(m.Sum(nil)))
}

// attemptKeys are the stored keys of user and addr that have a limit, and
// those limits.
func (c *Counters) attemptKeys(lim ports.AttemptLimits, user, addr string) ([]int64, []int32) {
	var keys []int64
	var limits []int32
	if user != "" {
		keys, limits = append(keys, c.hash("user", user)), append(limits, int32(lim.PerUser))
	}
	if addr != "" {
		keys, limits = append(keys, c.hash("addr", addr)), append(limits, int32(lim.PerAddr))
	}
	return keys, limits
}

// Reserve implements ports.Attempts.
func (c *Counters) Reserve(ctx context.Context, lim ports.AttemptLimits, user, addr string, at time.Time) (time.Duration, error) {
	keys, limits := c.attemptKeys(lim, user, addr)
	if len(keys) == 0 {
		return 0, nil
	}
	var wait int64
	if err := c.db.pool.QueryRow(ctx, `SELECT throttle_reserve($1, $2, $3, $4)`,
		keys, limits, int64(lim.Window), at.UnixNano()).Scan(&wait); err != nil {
		return 0, ctxErr(ctx, fmt.Errorf("postgres: throttle: %w", err))
	}
	return time.Duration(wait), nil
}

// Release implements ports.Attempts.
func (c *Counters) Release(ctx context.Context, user, addr string, at time.Time) error {
	keys, _ := c.attemptKeys(ports.AttemptLimits{}, user, addr)
	if len(keys) == 0 {
		return nil
	}
	if _, err := c.db.pool.Exec(ctx, `SELECT throttle_release($1, $2)`, keys, at.UnixNano()); err != nil {
		return ctxErr(ctx, fmt.Errorf("postgres: throttle: %w", err))
	}
	return nil
}

// Allow implements ports.Rates.
func (c *Counters) Allow(ctx context.Context, key string, n int, per time.Duration, now time.Time) (time.Duration, error) {
	if n <= 0 {
		return 0, nil
	}
	interval := int64(per) / int64(n)
	var wait int64
	if err := c.db.pool.QueryRow(ctx, `SELECT rate_allow($1, $2, $3, $4)`,
		c.hash("rate", key), now.UnixNano(), interval, interval*int64(n-1)).Scan(&wait); err != nil {
		return 0, ctxErr(ctx, fmt.Errorf("postgres: rate: %w", err))
	}
	return time.Duration(wait), nil
}

// Prune deletes the rows that hold nothing at now any more: attempts all
// older than their window, rates back to a full allowance. It skips rows a
// check holds, so it never makes one wait.
func (c *Counters) Prune(ctx context.Context, now time.Time) error {
	ns := now.UnixNano()
	if _, err := c.db.pool.Exec(ctx, `DELETE FROM throttle_attempts WHERE key IN
		(SELECT key FROM throttle_attempts WHERE expires <= $1 FOR UPDATE SKIP LOCKED)`, ns); err != nil {
		return ctxErr(ctx, fmt.Errorf("postgres: prune attempts: %w", err))
	}
	if _, err := c.db.pool.Exec(ctx, `DELETE FROM rate_tat WHERE key IN
		(SELECT key FROM rate_tat WHERE tat <= $1 FOR UPDATE SKIP LOCKED)`, ns); err != nil {
		return ctxErr(ctx, fmt.Errorf("postgres: prune rates: %w", err))
	}
	return nil
}

// PruneInterval is how often Run prunes.
const PruneInterval = time.Minute

// Run prunes every PruneInterval until ctx ends, so the tables hold only
// the keys of the current window whatever clients send. Every instance may
// run it; a prune is idempotent.
func (c *Counters) Run(ctx context.Context) {
	t := time.NewTicker(PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := c.Prune(ctx, now); err != nil && ctx.Err() == nil {
				c.db.log.Error("prune counters", "err", err)
			}
		}
	}
}
