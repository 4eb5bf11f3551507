package password

import (
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/argon2"
)

func TestArgon2id_RoundTrip(t *testing.T) {
	ctx := context.Background()
	for name, p := range map[string]Params{"test params": TestParams, "default params": DefaultParams} {
		t.Run(name, func(t *testing.T) {
			a := New(p, 2)
			h, err := a.Hash(ctx, "correct horse battery staple")
			require.NoError(t, err)
			assert.Regexp(t, `^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`, h)

			ok, err := a.Verify(ctx, h, "correct horse battery staple")
			require.NoError(t, err)
			assert.True(t, ok)

			ok, err = a.Verify(ctx, h, "correct horse battery stapler")
			require.NoError(t, err)
			assert.False(t, ok, "wrong password")

			ok, err = a.Verify(ctx, h, "")
			require.NoError(t, err)
			assert.False(t, ok, "empty password")
		})
	}
}

func TestArgon2id_HashNamesItsParams(t *testing.T) {
	h, err := New(DefaultParams, 1).Hash(context.Background(), "pw")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$"), h)
}

func TestArgon2id_VerifyUsesStoredParams(t *testing.T) {
	// A hash made with other parameters (as after a params upgrade) still verifies.
	ctx := context.Background()
	old, err := New(Params{Memory: 128, Time: 3, Threads: 2, KeyLen: 16, SaltLen: 8}, 1).Hash(ctx, "pw")
	require.NoError(t, err)
	ok, err := New(TestParams, 1).Verify(ctx, old, "pw")
	require.NoError(t, err)
	assert.True(t, ok)
}

func TestArgon2id_SaltsDiffer(t *testing.T) {
	a := New(TestParams, 2)
	seen := map[string]bool{}
	for range 20 {
		h, err := a.Hash(context.Background(), "same password")
		require.NoError(t, err)
		salt := strings.Split(h, "$")[4]
		require.False(t, seen[salt], "salt reused")
		seen[salt] = true
	}
}

// phc builds a well-formed hash for TestParams around the given fields.
func phc(version, params, salt, hash string) string {
	return "$argon2id$" + version + "$" + params + "$" + salt + "$" + hash
}

func TestArgon2id_RefusesMalformedAndHostileHashes(t *testing.T) {
	a := New(TestParams, 2)
	good, err := a.Hash(context.Background(), "pw")
	require.NoError(t, err)
	f := strings.Split(good, "$")
	salt, key := f[4], f[5]
	const v, ps = "v=19", "m=64,t=1,p=1"

	cases := map[string]string{
		"empty":                  "",
		"garbage":                "not a hash",
		"django pbkdf2":          "pbkdf2_sha256$600000$salt$abc=",
		"argon2i":                strings.Replace(good, "$argon2id$", "$argon2i$", 1),
		"argon2d":                strings.Replace(good, "$argon2id$", "$argon2d$", 1),
		"version 16":             phc("v=16", ps, salt, key),
		"no version":             "$argon2id$" + ps + "$" + salt + "$" + key,
		"extra field":            good + "$x",
		"missing hash":           phc(v, ps, salt, ""),
		"missing salt":           phc(v, ps, "", key),
		"padded salt":            phc(v, ps, salt+"==", key),
		"url alphabet":           phc(v, ps, strings.Repeat("_", 22), key),
		"params out of order":    phc(v, "t=1,m=64,p=1", salt, key),
		"params missing":         phc(v, "m=64,t=1", salt, key),
		"params extra":           phc(v, "m=64,t=1,p=1,k=2", salt, key),
		"negative time":          phc(v, "m=64,t=-1,p=1", salt, key),
		"leading zero":           phc(v, "m=064,t=1,p=1", salt, key),
		"plus sign":              phc(v, "m=+64,t=1,p=1", salt, key),
		"huge memory":            phc(v, "m=4194304,t=1,p=1", salt, key),
		"memory overflow":        phc(v, "m=99999999999,t=1,p=1", salt, key),
		"memory just over bound": phc(v, "m=262145,t=1,p=1", salt, key),
		"too many passes":        phc(v, "m=64,t=11,p=1", salt, key),
		"zero passes":            phc(v, "m=64,t=0,p=1", salt, key),
		"too many threads":       phc(v, "m=256,t=1,p=17", salt, key),
		"zero threads":           phc(v, "m=64,t=1,p=0", salt, key),
		"threads overflow":       phc(v, "m=64,t=1,p=256", salt, key),
		"memory below 8 x p":     phc(v, "m=8,t=1,p=2", salt, key),
		"short salt":             phc(v, ps, "AAAA", key),
		"short hash":             phc(v, ps, salt, "AAAAAAAA"),
		"huge hash":              phc(v, ps, salt, strings.Repeat("A", 400)),
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			a.kdf = func([]byte, []byte, uint32, uint32, uint8, uint32) []byte {
				t.Fatal("argon2 must not run for a refused hash")
				return nil
			}
			ok, err := a.Verify(context.Background(), h, "pw")
			require.Error(t, err)
			assert.False(t, ok)
		})
	}
}

func TestArgon2id_RefusesLongPasswords(t *testing.T) {
	a := New(TestParams, 1)
	long := strings.Repeat("p", MaxPasswordLen+1)
	_, err := a.Hash(context.Background(), long)
	require.ErrorIs(t, err, ErrPasswordTooLong)

	h, err := a.Hash(context.Background(), long[:MaxPasswordLen])
	require.NoError(t, err, "exactly the limit is fine")
	_, err = a.Verify(context.Background(), h, long)
	require.ErrorIs(t, err, ErrPasswordTooLong)
}

func TestArgon2id_RefusesBadParams(t *testing.T) {
	for name, p := range map[string]Params{
		"zero":         {},
		"huge memory":  {Memory: MaxMemory + 1, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16},
		"short salt":   {Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 4},
		"no passes":    {Memory: 64, Time: 0, Threads: 1, KeyLen: 32, SaltLen: 16},
		"many threads": {Memory: 1024, Time: 1, Threads: 17, KeyLen: 32, SaltLen: 16},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, p.Validate())
			_, err := New(p, 1).Hash(context.Background(), "pw")
			require.Error(t, err)
		})
	}
	require.NoError(t, DefaultParams.Validate())
	require.NoError(t, TestParams.Validate())
}

// gate replaces a's argon2 call with one that records how many run at
// once and blocks until released.
type gate struct {
	inFlight, peak atomic.Int32
	entered        chan struct{}
	release        chan struct{}
}

func newGate(a *Argon2id) *gate {
	g := &gate{entered: make(chan struct{}, 1000), release: make(chan struct{})}
	a.kdf = func(pw, salt []byte, t, m uint32, p uint8, n uint32) []byte {
		cur := g.inFlight.Add(1)
		for {
			old := g.peak.Load()
			if cur <= old || g.peak.CompareAndSwap(old, cur) {
				break
			}
		}
		g.entered <- struct{}{}
		<-g.release
		g.inFlight.Add(-1)
		return argon2.IDKey(pw, salt, t, m, p, n)
	}
	return g
}

func TestArgon2id_ConcurrencyBound(t *testing.T) {
	const max, callers = 3, 12
	a := New(TestParams, max)
	h, err := New(TestParams, 1).Hash(context.Background(), "pw")
	require.NoError(t, err)
	g := newGate(a)

	var wg sync.WaitGroup
	for n := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n%2 == 0 {
				_, err := a.Hash(context.Background(), "pw")
				assert.NoError(t, err)
			} else {
				ok, err := a.Verify(context.Background(), h, "pw")
				assert.NoError(t, err)
				assert.True(t, ok)
			}
		}()
	}
	// Exactly max calls get in; each release lets exactly one more in.
	for range max {
		<-g.entered
	}
	for range callers - max {
		g.release <- struct{}{}
		<-g.entered
		assert.LessOrEqual(t, g.inFlight.Load(), int32(max))
	}
	for range max {
		g.release <- struct{}{}
	}
	wg.Wait()
	assert.Equal(t, int32(max), g.peak.Load(), "never more than max argon2 calls at once")
	assert.Zero(t, g.inFlight.Load())
}

func TestArgon2id_ContextWhileWaiting(t *testing.T) {
	a := New(TestParams, 1)
	h, err := New(TestParams, 1).Hash(context.Background(), "pw")
	require.NoError(t, err)
	g := newGate(a)

	// Occupy the only slot.
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := a.Hash(context.Background(), "pw")
		assert.NoError(t, err)
	}()
	<-g.entered

	t.Run("cancelled before asking", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := a.Hash(ctx, "pw")
		require.ErrorIs(t, err, context.Canceled)
		_, err = a.Verify(ctx, h, "pw")
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("cancelled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		waiting := make(chan struct{})
		a.onWait = func() { close(waiting) }
		defer func() { a.onWait = nil }()
		errc := make(chan error, 1)
		go func() {
			_, err := a.Verify(ctx, h, "pw")
			errc <- err
		}()
		<-waiting
		cancel(errors.New("client went away"))
		require.ErrorIs(t, <-errc, context.Canceled)
	})

	g.release <- struct{}{}
	<-done
	// The slot is free again: a fresh call gets through.
	go func() { <-g.entered; g.release <- struct{}{} }()
	ok, err := a.Verify(context.Background(), h, "pw")
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestArgon2id_PeakHeap runs 100 concurrent Verify calls with the default
// (19 MiB) parameters and samples the Go heap: with the semaphore it stays
// within a few times maxConcurrent × 19 MiB, where without it 100 × 19 MiB
// (1.9 GiB) would be live at once.
func TestArgon2id_PeakHeap(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("slow under -race or -short")
	}
	const maxConcurrent, callers = 2, 100
	const mib = 1 << 20
	ctx := context.Background()
	a := New(DefaultParams, maxConcurrent)
	h, err := a.Hash(ctx, "pw")
	require.NoError(t, err)

	// Collect eagerly so the sample shows what is held, not garbage
	// waiting for a cycle; restored afterwards.
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()

	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := a.Verify(ctx, h, "pw")
			assert.NoError(t, err)
			assert.True(t, ok)
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled

	// maxConcurrent blocks live, as many again waiting for the collector,
	// two being allocated while it runs, and slack for the test itself.
	perCall := uint64(DefaultParams.Memory) * 1024
	limit := base + (2*maxConcurrent+2)*perCall + 16*mib
	t.Logf("peak heap above baseline: %d MiB (limit %d MiB)", (peak.Load()-base)/mib, (limit-base)/mib)
	assert.Less(t, peak.Load(), limit)
}

func BenchmarkHash(b *testing.B) {
	a := New(DefaultParams, DefaultMaxConcurrent)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

// With a CPU share, the slot stays idle after each hash for the hash's
// time × (1/share − 1): the next hash waits, the caller does not.
func TestArgon2id_CPUShareHoldsTheSlotIdle(t *testing.T) {
	a := New(TestParams, 1).WithCPUShare(0.25)
	clock := time.Unix(0, 0)
	a.now = func() time.Time { clock = clock.Add(10 * time.Millisecond); return clock } // every hash "takes" 10 ms
	slept := make(chan time.Duration, 2)
	release := make(chan struct{})
	a.sleep = func(d time.Duration) { slept <- d; <-release }

	h, err := a.Hash(context.Background(), "first-password")
	require.NoError(t, err, "the caller is answered without waiting for the cool-down")
	assert.Equal(t, 30*time.Millisecond, <-slept, "idle for 3 × 10 ms at a quarter of a core")

	waiting := make(chan struct{})
	a.onWait = func() { close(waiting) }
	done := make(chan error, 1)
	go func() { _, err := a.Verify(context.Background(), h, "first-password"); done <- err }()
	<-waiting // the second hash waits for the idle slot
	select {
	case err := <-done:
		t.Fatalf("second hash ran during the cool-down: %v", err)
	default:
	}
	close(release)
	require.NoError(t, <-done)

	full := New(TestParams, 1)
	full.sleep = func(time.Duration) { t.Error("no cool-down without a CPU share") }
	_, err = full.Hash(context.Background(), "another-password")
	require.NoError(t, err)
}
