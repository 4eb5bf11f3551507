package httpapi

import (
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
