package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/postgres"
	"healthrecord/internal/pgtest"
	"healthrecord/ports"
	"healthrecord/ports/countertest"
)

// mustCounters are the shared counters of db.
func mustCounters(t *testing.T, db *postgres.DB) *postgres.Counters {
	t.Helper()
	c, err := db.Counters(t.Context())
	require.NoError(t, err)
	return c
}

func TestCounters_Contract(t *testing.T) {
	d := mustTestDB(t)
	t.Run("attempts", func(t *testing.T) {
		countertest.RunAttempts(t, func(t *testing.T) ports.Attempts { return mustCounters(t, d.mustOpen(t)) })
	})
	t.Run("rates", func(t *testing.T) {
		countertest.RunRates(t, func(t *testing.T) ports.Rates { return mustCounters(t, d.mustOpen(t)) })
	})
}

// Two instances are two pools on one database: what one counts, the other
// sees, and concurrent attempts spread over both never pass a limit.
func TestCounters_SharedByInstances(t *testing.T) {
	d := mustTestDB(t)
	url := d.mustSchema(t)
	first := mustOpenURL(t, url)
	require.NoError(t, first.Migrate(t.Context()))
	second := mustOpenURL(t, url)
	both := []*postgres.Counters{mustCounters(t, first), mustCounters(t, second)}
	ctx := t.Context()
	lim := ports.AttemptLimits{PerUser: 10, PerAddr: 100, Window: 15 * time.Minute}
	now := time.Now()

	for round := range 5 {
		user := fmt.Sprintf("alice%d", round)
		allowed := countertest.Concurrently(30, func(i int) bool {
			wait, err := both[i%2].Reserve(ctx, lim, user, fmt.Sprintf("198.51.100.%d", i), now)
			require.NoError(t, err)
			return wait == 0
		})
		require.Equal(t, 10, allowed, "round %d", round)
	}

	for i := range 6 {
		wait, err := both[i%2].Allow(ctx, "user:7", 6, time.Minute, now)
		require.NoError(t, err)
		require.Zero(t, wait, "request %d", i)
	}
	for _, c := range both {
		wait, err := c.Allow(ctx, "user:7", 6, time.Minute, now)
		require.NoError(t, err)
		assert.Equal(t, 10*time.Second, wait)
	}
}

// The tables hold hashes only, and need no write-ahead log.
func TestCounters_NoNamesStoredUnlogged(t *testing.T) {
	d := mustTestDB(t)
	url := d.mustSchema(t)
	db := mustOpenURL(t, url)
	require.NoError(t, db.Migrate(t.Context()))
	c := mustCounters(t, db)
	ctx := t.Context()
	_, err := c.Reserve(ctx, ports.AttemptLimits{PerUser: 10, PerAddr: 100, Window: time.Minute}, "alice", "203.0.113.77", time.Now())
	require.NoError(t, err)
	_, err = c.Allow(ctx, "anon:203.0.113.77", 10, time.Minute, time.Now())
	require.NoError(t, err)

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var dump string
	require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT string_agg(t::text, ';') FROM throttle_attempts t) || '|' ||
		(SELECT string_agg(r::text, ';') FROM rate_tat r)`).Scan(&dump))
	assert.NotContains(t, dump, "alice")
	assert.NotContains(t, dump, "203.0.113")
	var rows int
	require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM throttle_attempts) + (SELECT count(*) FROM rate_tat)`).Scan(&rows))
	assert.Equal(t, 3, rows, "a user, an address, a rate key")

	var unlogged int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_class
		WHERE relname IN ('throttle_attempts', 'rate_tat') AND relpersistence = 'u'
		AND relnamespace = current_schema()::regnamespace`).Scan(&unlogged))
	assert.Equal(t, 2, unlogged)
}

// Prune leaves only what still counts: the tables stay as small as the
// current window's keys, whatever clients sent before.
func TestCounters_PruneForgetsWhatAgedOut(t *testing.T) {
	d := mustTestDB(t)
	url := d.mustSchema(t)
	db := mustOpenURL(t, url)
	require.NoError(t, db.Migrate(t.Context()))
	c := mustCounters(t, db)
	ctx := t.Context()
	lim := ports.AttemptLimits{PerUser: 10, PerAddr: 100, Window: 15 * time.Minute}
	for i := range 200 {
		_, err := c.Reserve(ctx, lim, fmt.Sprintf("user%d", i), fmt.Sprintf("2001:db8::%x", i), t0)
		require.NoError(t, err)
		_, err = c.Allow(ctx, fmt.Sprintf("anon:%d", i), 10, time.Minute, t0)
		require.NoError(t, err)
	}
	_, err := c.Reserve(ctx, lim, "late", "", t0.Add(10*time.Minute))
	require.NoError(t, err)
	_, err = c.Allow(ctx, "user:late", 1, time.Hour, t0.Add(10*time.Minute))
	require.NoError(t, err)

	count := func() (attempts, rates int) {
		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		defer conn.Close(ctx)
		require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM throttle_attempts), (SELECT count(*) FROM rate_tat)`).
			Scan(&attempts, &rates))
		return attempts, rates
	}
	a, r := count()
	require.Equal(t, 401, a)
	require.Equal(t, 201, r)
	require.NoError(t, c.Prune(ctx, t0.Add(16*time.Minute)))
	a, r = count()
	assert.Equal(t, 1, a, "the late attempt is still in its window")
	assert.Equal(t, 1, r, "the hourly rate's key is not yet back to a full allowance")
	require.NoError(t, c.Prune(ctx, t0.Add(2*time.Hour)))
	a, r = count()
	assert.Zero(t, a)
	assert.Zero(t, r)
}

// A prune running while attempts arrive deletes only what aged out and
// never loses an attempt counted in a row it was deleting.
func TestCounters_PruneDuringAttemptsLosesNone(t *testing.T) {
	d := mustTestDB(t)
	c := mustCounters(t, d.mustOpen(t))
	ctx := t.Context()
	lim := ports.AttemptLimits{PerUser: 10, PerAddr: 1000, Window: 15 * time.Minute}
	now := time.Now()
	for round := range 10 {
		user := fmt.Sprintf("alice%d", round)
		// An old attempt: the row is there, and due for pruning.
		_, err := c.Reserve(ctx, lim, user, "", now.Add(-time.Hour))
		require.NoError(t, err)
		allowed := countertest.Concurrently(31, func(i int) bool {
			if i == 30 {
				require.NoError(t, c.Prune(ctx, now))
				return false
			}
			wait, err := c.Reserve(ctx, lim, user, "", now)
			require.NoError(t, err)
			return wait == 0
		})
		require.Equal(t, 10, allowed, "round %d", round)
		wait, err := c.Reserve(ctx, lim, user, "", now)
		require.NoError(t, err)
		require.Positive(t, wait, "round %d: ten attempts are still counted", round)
	}
}

// BenchmarkCountersAllow is the per-user rate's check on PostgreSQL: one
// round trip per request.
func BenchmarkCountersAllow(b *testing.B) {
	d, drop, err := pgtest.Create()
	if err != nil {
		b.Skip(err)
	}
	b.Cleanup(func() { _ = drop() })
	db, err := postgres.Open(b.Context(), d.Schema(b))
	require.NoError(b, err)
	b.Cleanup(db.Close)
	require.NoError(b, db.Migrate(b.Context()))
	c, err := db.Counters(b.Context())
	require.NoError(b, err)
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k := 0
		for pb.Next() {
			k++
			if _, err := c.Allow(b.Context(), fmt.Sprintf("user:%d", k%1000), 1<<30, time.Minute, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
