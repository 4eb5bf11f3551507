package outbox_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/outbox"
	"healthrecord/domain"
	"healthrecord/ports"
)

const eventually = 10 * time.Second

func mustDispatcher(t *testing.T, store ports.Outbox, cfg outbox.Config, sinks ...ports.Sink) *outbox.Dispatcher {
	t.Helper()
	d, err := outbox.New(store, sinks, cfg, testLogger(t))
	require.NoError(t, err)
	return d
}

// startRun runs d in the background; the returned stop cancels it and
// waits for Run to return.
func startRun(t *testing.T, d *outbox.Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(eventually):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestDispatcher_DeliversToEverySinkInOrder(t *testing.T) {
	store := &fakeStore{}
	mustAdd(t, store, 3)
	var mu sync.Mutex
	var order []string
	record := func(name string) func(context.Context, domain.OutboxEvent) error {
		return func(_ context.Context, e domain.OutboxEvent) error {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, name)
			return nil
		}
	}
	notify, email := newSink("notification", record("notification")), newSink("email", record("email"))
	d := mustDispatcher(t, store, outbox.Config{Owner: "a", Concurrency: 1}, notify, email)

	n, err := d.RunOnce(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Equal(t, []string{"notification", "email", "notification", "email", "notification", "email"}, order)
	for id := int64(1); id <= 3; id++ {
		e, err := store.Get(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, domain.OutboxDelivered, e.State)
		assert.NotNil(t, e.DeliveredAt)
		// The last sink of a clean attempt is not recorded on its own:
		// delivered says it.
		assert.Equal(t, []string{"notification"}, e.Done)
		assert.Empty(t, store.owner(id), "delivered events are released")
	}
	assert.Empty(t, notify.repeats())
	assert.Empty(t, email.repeats())

	n, err = d.RunOnce(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left to deliver")
}

func TestDispatcher_RetriesOnlyTheFailingSinkWithBackoff(t *testing.T) {
	store := &fakeStore{}
	mustAdd(t, store, 1)
	clock := newClock()
	fails := 2
	notify := newSink("notification", nil)
	email := newSink("email", func(context.Context, domain.OutboxEvent) error {
		if fails > 0 {
			fails--
			return errors.New("451 4.3.0 try again later")
		}
		return nil
	})
	base := 10 * time.Second
	d := mustDispatcher(t, store, outbox.Config{
		Owner: "a", Now: clock.Now, Rand: func() float64 { return 0.5 }, // jitter factor 1
		BaseBackoff: base, MaxBackoff: time.Hour,
	}, notify, email)
	ctx := context.Background()

	// Attempt 1: the notification goes out, the email fails.
	_, err := d.RunOnce(ctx)
	require.NoError(t, err)
	e, err := store.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, domain.OutboxPending, e.State)
	assert.Equal(t, 1, e.Attempts)
	assert.Equal(t, []string{"notification"}, e.Done)
	assert.Contains(t, e.LastError, "email: 451 4.3.0 try again later")
	assert.Equal(t, clock.Now().Add(base), e.NextAttemptAt, "first retry after BaseBackoff")

	// Not due yet: nothing is attempted.
	n, err := d.RunOnce(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)

	// Attempt 2 fails again and backs off twice as long.
	clock.Advance(base)
	_, err = d.RunOnce(ctx)
	require.NoError(t, err)
	e, err = store.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, 2, e.Attempts)
	assert.Equal(t, clock.Now().Add(2*base), e.NextAttemptAt)

	// Attempt 3 succeeds.
	clock.Advance(2 * base)
	_, err = d.RunOnce(ctx)
	require.NoError(t, err)
	e, err = store.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, domain.OutboxDelivered, e.State)

	assert.Equal(t, 1, notify.callsFor(1), "the notification is not repeated when only the email fails")
	assert.Equal(t, 3, email.callsFor(1))
	assert.Empty(t, notify.repeats())
	assert.Empty(t, email.repeats())
}

func TestDispatcher_DeadAfterMaxAttempts(t *testing.T) {
	store := &fakeStore{}
	mustAdd(t, store, 1)
	clock := newClock()
	long := "550 5.1.1 mailbox unavailable " + strings.Repeat("x", 1000)
	email := newSink("email", func(context.Context, domain.OutboxEvent) error { return errors.New(long) })
	d := mustDispatcher(t, store, outbox.Config{Owner: "a", Now: clock.Now, MaxAttempts: 3}, newSink("notification", nil), email)
	ctx := context.Background()

	for range 3 {
		n, err := d.RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		clock.Advance(time.Hour)
	}
	e, err := store.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, domain.OutboxDead, e.State)
	assert.Equal(t, 3, e.Attempts)
	assert.True(t, strings.HasPrefix(e.LastError, "email: 550 5.1.1 mailbox unavailable"), e.LastError)
	assert.LessOrEqual(t, len(e.LastError), 500)

	n, err := d.RunOnce(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "a dead event is set aside")
	assert.Equal(t, 3, email.callsFor(1))
}

func TestDispatcher_WakeDeliversWithoutWaitingForPoll(t *testing.T) {
	store := &fakeStore{}
	notify := newSink("notification", nil)
	d := mustDispatcher(t, store, outbox.Config{Owner: "a", PollInterval: time.Hour}, notify)
	startRun(t, d)

	// Wait until the first (empty) claim, so the event below can only be
	// found because of Wake, not by the first pass.
	require.Eventually(t, func() bool { c, _, _ := store.stats(); return c >= 1 }, eventually, time.Millisecond)
	mustAdd(t, store, 1)
	d.Wake()
	d.Wake() // a second wake never blocks
	require.Eventually(t, func() bool { return store.counts()[domain.OutboxDelivered] == 1 }, eventually, time.Millisecond)
	assert.Equal(t, 1, notify.callsFor(1))
}

// A retry due before the next poll is made when due, not at the poll: the
// back-off is kept to, not rounded up to the poll interval.
func TestDispatcher_RetriesWhenDueWithoutWaitingForPoll(t *testing.T) {
	store := &fakeStore{}
	var fails atomic.Int32
	email := newSink("email", func(context.Context, domain.OutboxEvent) error {
		if fails.Add(1) <= 2 {
			return errors.New("421 try later")
		}
		return nil
	})
	mustAdd(t, store, 1)
	d := mustDispatcher(t, store, outbox.Config{Owner: "a", PollInterval: time.Hour, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, email)
	startRun(t, d)
	require.Eventually(t, func() bool { return store.counts()[domain.OutboxDelivered] == 1 }, eventually, time.Millisecond)
	assert.Equal(t, int32(3), fails.Load())
}

// Events of a batch are attempted Concurrency at a time: four deliveries
// that each wait for all four to have started can only finish together.
func TestDispatcher_AttemptsEventsConcurrently(t *testing.T) {
	store := &fakeStore{}
	mustAdd(t, store, 4)
	var arrived sync.WaitGroup
	arrived.Add(4)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	sink := newSink("notification", func(ctx context.Context, e domain.OutboxEvent) error {
		arrived.Done()
		select {
		case <-all:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	d := mustDispatcher(t, store, outbox.Config{Owner: "a", Concurrency: 4, AttemptTimeout: 5 * time.Second}, sink)
	n, err := d.RunOnce(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	assert.Equal(t, 4, store.counts()[domain.OutboxDelivered], "none timed out waiting for the others")
}

func TestDispatcher_DrainsBacklogInBatches(t *testing.T) {
	const total, batch = 10_000, 100
	store := &fakeStore{}
	mustAdd(t, store, total)
	notify, email := newSink("notification", nil), newSink("email", nil)
	d := mustDispatcher(t, store, outbox.Config{Owner: "a", BatchSize: batch, PollInterval: time.Hour}, notify, email)
	startRun(t, d)

	// No Wake: full batches alone make the dispatcher claim again at once.
	require.Eventually(t, func() bool { return store.counts()[domain.OutboxDelivered] == total }, eventually, 5*time.Millisecond)
	claims, maxClaimed, maxHeld := store.stats()
	assert.Equal(t, batch, maxClaimed)
	assert.LessOrEqual(t, maxHeld, batch, "never more than one batch leased at once")
	assert.GreaterOrEqual(t, claims, total/batch)
	assert.Equal(t, total, notify.delivered())
	assert.Equal(t, total, email.delivered())
	assert.Empty(t, notify.repeats())
	assert.Empty(t, email.repeats())
}

func TestDispatcher_ShutdownFinishesInFlightAndReleasesTheRest(t *testing.T) {
	store := &fakeStore{}
	mustAdd(t, store, 5)
	started, proceed := make(chan struct{}), make(chan struct{})
	var inflightErr atomic.Value
	slow := newSink("email", func(ctx context.Context, e domain.OutboxEvent) error {
		if e.ID != 1 {
			return nil
		}
		close(started)
		select {
		case <-proceed:
			return nil
		case <-ctx.Done():
			inflightErr.Store(ctx.Err())
			return ctx.Err()
		}
	})
	notify := newSink("notification", nil)
	d := mustDispatcher(t, store, outbox.Config{Owner: "a", Concurrency: 1}, notify, slow)
	stop := startRun(t, d)

	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// Run must not return while the attempt is in flight, and the attempt's
	// context must survive the cancellation.
	select {
	case <-stopped:
		t.Fatal("Run returned before the in-flight attempt finished")
	case <-time.After(20 * time.Millisecond):
	}
	close(proceed)
	<-stopped

	assert.Nil(t, inflightErr.Load(), "the in-flight attempt was cancelled")
	e, err := store.Get(context.Background(), 1)
	require.NoError(t, err)
	assert.Equal(t, domain.OutboxDelivered, e.State)
	for id := int64(2); id <= 5; id++ {
		e, err := store.Get(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, domain.OutboxPending, e.State)
		assert.Zero(t, e.Attempts, "a released event has no attempt counted")
		assert.Empty(t, store.owner(id), "event %d released", id)
		assert.Zero(t, slow.callsFor(id))
	}
}

func TestDispatcher_AttemptTimeoutFailsTheAttempt(t *testing.T) {
	store := &fakeStore{}
	mustAdd(t, store, 1)
	hang := newSink("email", func(ctx context.Context, _ domain.OutboxEvent) error {
		<-ctx.Done()
		return ctx.Err()
	})
	d := mustDispatcher(t, store, outbox.Config{Owner: "a", AttemptTimeout: 20 * time.Millisecond}, hang)

	_, err := d.RunOnce(context.Background())
	require.NoError(t, err)
	e, err := store.Get(context.Background(), 1)
	require.NoError(t, err)
	assert.Equal(t, 1, e.Attempts)
	assert.Contains(t, e.LastError, "deadline exceeded")
}

func TestDispatcher_ReleasesWhenLeaseTooShortForAnAttempt(t *testing.T) {
	store := &fakeStore{}
	mustAdd(t, store, 2)
	clock := newClock()
	// Delivering takes 40s of (fake) time: after event 1, the lease of 60s
	// has 20s left, less than the 30s an attempt may take.
	notify := newSink("notification", func(context.Context, domain.OutboxEvent) error {
		clock.Advance(40 * time.Second)
		return nil
	})
	d := mustDispatcher(t, store, outbox.Config{
		Owner: "a", Now: clock.Now, Lease: time.Minute, AttemptTimeout: 30 * time.Second, Concurrency: 1,
	}, notify)

	n, err := d.RunOnce(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	e, err := store.Get(context.Background(), 2)
	require.NoError(t, err)
	assert.Equal(t, domain.OutboxPending, e.State)
	assert.Zero(t, e.Attempts)
	assert.Empty(t, store.owner(2), "released, not left to expire")
	assert.Zero(t, notify.callsFor(2))

	n, err = d.RunOnce(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, 2, store.counts()[domain.OutboxDelivered])
}

func TestDispatcher_LeaseLostMovesOn(t *testing.T) {
	store := &fakeStore{}
	mustAdd(t, store, 2)
	// While event 1 is delivered, its lease passes to another dispatcher.
	notify := newSink("notification", func(ctx context.Context, e domain.OutboxEvent) error {
		if e.ID == 1 {
			require.NoError(t, store.Release(ctx, "a", 1))
			_, err := store.Claim(ctx, "b", time.Now(), time.Minute, 1)
			require.NoError(t, err)
		}
		return nil
	})
	email := newSink("email", nil)
	d := mustDispatcher(t, store, outbox.Config{Owner: "a"}, notify, email)

	n, err := d.RunOnce(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	e, err := store.Get(context.Background(), 1)
	require.NoError(t, err)
	assert.Equal(t, domain.OutboxPending, e.State, "left to its new owner")
	assert.Zero(t, e.Attempts)
	assert.Equal(t, "b", store.owner(1))
	assert.Zero(t, email.callsFor(1), "no more sinks once the lease is lost")
	e, err = store.Get(context.Background(), 2)
	require.NoError(t, err)
	assert.Equal(t, domain.OutboxDelivered, e.State, "the next event is still delivered")
}

func TestDispatcher_StoreErrorsDoNotStopRun(t *testing.T) {
	store := &fakeStore{}
	mustAdd(t, store, 1)
	failures := 2
	store.ClaimErr = func() error { // called with store.mu held
		if failures > 0 {
			failures--
			return errors.New("database is locked")
		}
		return nil
	}
	d := mustDispatcher(t, store, outbox.Config{Owner: "a", PollInterval: time.Hour}, newSink("notification", nil))
	startRun(t, d)
	require.Eventually(t, func() bool { return store.counts()[domain.OutboxDelivered] == 1 }, eventually, time.Millisecond)
}

func TestDispatcher_TwoDispatchersNeverRepeatAnAttempt(t *testing.T) {
	const total = 2_000
	store := &fakeStore{}
	mustAdd(t, store, total)
	notify := newSink("notification", nil)
	// Every third event's email fails on its first attempt, so retries
	// (with a tiny back-off) run concurrently with first attempts.
	email := newSink("email", func(_ context.Context, e domain.OutboxEvent) error {
		if e.ID%3 == 0 && e.Attempts == 0 {
			return errors.New("421 busy")
		}
		return nil
	})
	cfg := func(owner string) outbox.Config {
		return outbox.Config{
			Owner: owner, BatchSize: 50, PollInterval: time.Millisecond,
			BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		}
	}
	startRun(t, mustDispatcher(t, store, cfg("a"), notify, email))
	startRun(t, mustDispatcher(t, store, cfg("b"), notify, email))

	require.Eventually(t, func() bool { return store.counts()[domain.OutboxDelivered] == total }, eventually, 5*time.Millisecond)
	assert.Empty(t, notify.repeats())
	assert.Empty(t, email.repeats())
	assert.Equal(t, total, notify.delivered())
	assert.Equal(t, total, email.delivered())
	for id := int64(3); id <= total; id += 3 {
		assert.Equal(t, 1, notify.callsFor(id), "event %d: notification repeated", id)
	}
}

func TestNew_Refuses(t *testing.T) {
	store := &fakeStore{}
	tests := map[string]struct {
		cfg   outbox.Config
		sinks []ports.Sink
	}{
		"lease shorter than attempt": {outbox.Config{Lease: time.Second, AttemptTimeout: time.Minute}, nil},
		"duplicate sink names":       {outbox.Config{}, []ports.Sink{newSink("email", nil), newSink("email", nil)}},
		"unnamed sink":               {outbox.Config{}, []ports.Sink{newSink("", nil)}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := outbox.New(store, tt.sinks, tt.cfg, nil)
			assert.Error(t, err)
		})
	}
}
