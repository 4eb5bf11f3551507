package app

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"healthrecord/domain"
	"healthrecord/ports"
	"healthrecord/ports/countertest"
)

// heapAfterGC is the live heap.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestSignIn_ThrottleMemoryStaysFlat(t *testing.T) {
	e := newEnv(t, Config{})
	before := heapAfterGC()
	// Failed sign-ins from many addresses, each with a new username: the
	// longest allowed (150 four-byte characters) and far longer ones.
	long := strings.Repeat("𝔞", 149)
	huge := strings.Repeat("x", 20_000)
	for i := range 40_000 {
		name := fmt.Sprintf("%s%d", long, i)
		if i%10 == 0 {
			name = fmt.Sprintf("%s%d", huge, i)
		}
		_, err := e.app.SignIn(ctx, name, "wrong", fmt.Sprintf("2001:db8::%x", i))
		requireCode(t, err, domain.EUnauthorized, "")
	}
	after := heapAfterGC()
	runtime.KeepAlive(e) // the app and its throttle are what is measured
	grown := int64(after) - int64(before)
	assert.Less(t, grown, int64(8<<20), "heap grew by %d bytes", grown)
	assert.LessOrEqual(t, e.app.memThrottle.size(), maxThrottleUsers+maxThrottleAddrs)
}

func TestThrottle_Contract(t *testing.T) {
	countertest.RunAttempts(t, func(*testing.T) ports.Attempts { return newThrottle() })
}
