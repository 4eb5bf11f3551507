package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The per-user rate runs on every authenticated request: it must not
// allocate.
func TestLimiter_AllowDoesNotAllocate(t *testing.T) {
	l := newLimiter(Rate{N: 1200, Per: time.Minute})
	now := time.Now()
	l.allow(42, now) // the key's first request makes its entry
	allocs := testing.AllocsPerRun(1000, func() { l.allow(42, now.Add(time.Hour)) })
	assert.Zero(t, allocs)
}

// Nor may the path every authenticated request takes to it, when the
// rates count in memory.
func TestRates_AllowUserInMemoryDoesNotAllocate(t *testing.T) {
	r := newRates(Config{RateUser: Rate{N: 1200, Per: time.Minute}})
	now := time.Now()
	ctx := context.Background()
	_, _ = r.allowUser(ctx, 42, now)
	allocs := testing.AllocsPerRun(1000, func() { _, _ = r.allowUser(ctx, 42, now.Add(time.Hour)) })
	assert.Zero(t, allocs)
}

func TestLimiter_KeysBounded(t *testing.T) {
	l := newLimiter(Rate{N: 10, Per: time.Hour})
	now := time.Now()
	for k := range uint64(limiterShards * maxLimiterKeys * 2) {
		l.allow(k, now)
	}
	for i := range l.shards {
		assert.LessOrEqual(t, len(l.shards[i].tat), maxLimiterKeys)
	}
}

func BenchmarkLimiterAllow(b *testing.B) {
	l := newLimiter(Rate{N: 1 << 30, Per: time.Minute})
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var k uint64
		for pb.Next() {
			k++
			l.allow(k%1000, now)
		}
	})
}

// BenchmarkLimiterAllowUser is BenchmarkLimiterAllow through the
// middleware's entry point, in memory.
func BenchmarkLimiterAllowUser(b *testing.B) {
	r := newRates(Config{RateUser: Rate{N: 1 << 30, Per: time.Minute}})
	now := time.Now()
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var k int64
		for pb.Next() {
			k++
			_, _ = r.allowUser(ctx, k%1000, now)
		}
	})
}
