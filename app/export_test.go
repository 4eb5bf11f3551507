package app

import (
	"context"
	"time"

	"healthrecord/ports"
)

// VerifyAudit is CheckAudit without a kept head, for the tests: the id of
// the first broken entry, 0 when intact.
func (a *App) VerifyAudit(ctx context.Context) (int64, error) {
	c, err := a.CheckAudit(ctx, nil)
	return c.FirstBroken, err
}

// size is the number of keys the throttle holds.
func (t *throttle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.users) + len(t.addrs)
}

// testThrottle is the in-memory throttle under fixed limits, as the app
// drives it.
type testThrottle struct {
	*throttle
	lim ports.AttemptLimits
}

func newTestThrottle(perUser, perAddr int, window time.Duration) testThrottle {
	return testThrottle{newThrottle(), ports.AttemptLimits{PerUser: perUser, PerAddr: perAddr, Window: window}}
}

// reservation is an attempt reserve counted.
type reservation struct {
	user, addr string
	at         time.Time
}

func (t testThrottle) reserve(user, addr string, now time.Time) (reservation, time.Duration) {
	wait, _ := t.Reserve(context.Background(), t.lim, user, addr, now)
	if wait > 0 {
		return reservation{}, wait
	}
	return reservation{user, addr, now}, 0
}

func (t testThrottle) release(r reservation) {
	_ = t.Release(context.Background(), r.user, r.addr, r.at)
}

func (t testThrottle) prune(now time.Time) { t.throttle.prune(t.lim.Window, now) }
