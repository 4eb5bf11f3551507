package app

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

func TestFairHash_RoundRobinBetweenAddresses(t *testing.T) {
	f := newFairHash(1)
	hold, err := f.acquire(ctx, "busy")
	require.NoError(t, err)
	// The flooder queues five, then a second address one: it is served
	// second, not sixth.
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	enqueue := func(addr string, n int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := f.acquire(ctx, addr)
			if !assert.NoError(t, err) {
				return
			}
			mu.Lock()
			order = append(order, addr)
			mu.Unlock()
			release()
		}()
		// Wait until it is queued, so arrival order is known.
		require.Eventually(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.waiting == n },
			time.Second, time.Millisecond)
	}
	for i := range 5 {
		enqueue("flood", i+1)
	}
	enqueue("other", 6)
	hold()
	wg.Wait()
	require.Len(t, order, 6)
	assert.Equal(t, "other", order[1], "%v", order)
	assert.Zero(t, f.running)
	assert.Zero(t, f.waiting)
}

func TestFairHash_BoundedQueuesRefuseAtOnce(t *testing.T) {
	f := newFairHash(1)
	hold, err := f.acquire(ctx, "a")
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range maxHashWaiting {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := f.acquire(cctx, fmt.Sprintf("addr%d", i%(maxHashWaiting/maxHashWaitingPerAddr)))
			if err == nil {
				release()
			}
		}()
	}
	require.Eventually(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.waiting == maxHashWaiting },
		5*time.Second, time.Millisecond)
	start := time.Now()
	_, err = f.acquire(ctx, "late")
	requireCode(t, err, domain.EThrottled, "")
	_, err = f.acquire(ctx, "addr0")
	requireCode(t, err, domain.EThrottled, "")
	assert.Less(t, time.Since(start), time.Second, "refused at once, not queued")
	// Waiters that give up leave the queues.
	cancel()
	wg.Wait()
	f.mu.Lock()
	assert.Zero(t, f.waiting)
	assert.Empty(t, f.ring)
	f.mu.Unlock()
	hold()
	assert.Zero(t, f.running)
}
