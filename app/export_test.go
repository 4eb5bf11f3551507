package app

import "context"

// VerifyAudit is CheckAudit without a kept head, for the tests: the id of
// the first broken entry, 0 when intact.
func (a *App) VerifyAudit(ctx context.Context) (int64, error) {
	c, err := a.CheckAudit(ctx, nil)
	return c.FirstBroken, err
}
