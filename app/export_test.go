package app

import "context"

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
