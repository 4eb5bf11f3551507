package app

import (
	"context"

	"healthrecord/domain"
	"healthrecord/ports"
)

// UserOp is an account change the admin can make.
type UserOp int

// The account operations.
const (
	OpApprove UserOp = iota + 1
	OpDeactivate
	OpActivate
)

// AdminUsers lists accounts for the admin. EForbidden for others.
func (a *App) AdminUsers(ctx context.Context, actor domain.Actor, f ports.UserFilter, p domain.Page) ([]domain.User, *domain.Cursor, error) {
	if err := domain.CanAdminister(actor); err != nil {
		return nil, nil, err
	}
	items, err := a.store.Users().List(ctx, f, pageQuery(p))
	if err != nil {
		return nil, nil, err
	}
	items, next := trimPage(items, p, userCursor)
	return items, next, nil
}

// AdminSetUser approves, deactivates or activates an account.
// EForbidden for non-admins, ENotFound, EInvalid.
func (a *App) AdminSetUser(ctx context.Context, actor domain.Actor, id int64, op UserOp) (domain.User, error) {
	if err := domain.CanAdminister(actor); err != nil {
		return domain.User{}, err
	}
	u, err := a.store.Users().ByID(ctx, id)
	if err != nil {
		return domain.User{}, err
	}
	return a.setUser(ctx, u, op)
}

// setUser applies op. Deactivating revokes every sign-in of the user at
// once, so their access tokens stop working before they expire.
func (a *App) setUser(ctx context.Context, u domain.User, op UserOp) (domain.User, error) {
	switch op {
	case OpApprove:
		if u.Role != domain.RoleDoctor {
			return domain.User{}, domain.Errorf(domain.EInvalid, "Only doctors need approval.")
		}
		u.Approved = true
		return u, a.store.Users().Update(ctx, u)
	case OpDeactivate:
		u.Active = false
		return u, a.updateAndRevoke(ctx, u, "")
	case OpActivate:
		u.Active = true
		return u, a.store.Users().Update(ctx, u)
	}
	return domain.User{}, domain.Errorf(domain.EInvalid, "Unknown operation.")
}

// AdminAudit lists the audit trail for the admin, newest first.
func (a *App) AdminAudit(ctx context.Context, actor domain.Actor, f ports.AuditFilter, p domain.Page) ([]domain.AuditEntry, *domain.Cursor, error) {
	if err := domain.CanAdminister(actor); err != nil {
		return nil, nil, err
	}
	if err := a.audit.Flush(ctx); err != nil {
		return nil, nil, err
	}
	items, err := a.store.Audit().List(ctx, f, pageQuery(p))
	if err != nil {
		return nil, nil, err
	}
	items, next := trimPage(items, p, auditCursor)
	return items, next, nil
}

// AdminOutbox lists outbox events, optionally in one state.
func (a *App) AdminOutbox(ctx context.Context, actor domain.Actor, state string, p domain.Page) ([]domain.OutboxEvent, *domain.Cursor, error) {
	if err := domain.CanAdminister(actor); err != nil {
		return nil, nil, err
	}
	return a.OutboxList(ctx, state, p)
}

// AdminRetryOutbox puts a dead event back to pending. ENotFound, EConflict.
func (a *App) AdminRetryOutbox(ctx context.Context, actor domain.Actor, id int64) (domain.OutboxEvent, error) {
	if err := domain.CanAdminister(actor); err != nil {
		return domain.OutboxEvent{}, err
	}
	return a.OutboxRetry(ctx, id)
}

// AdminOverview is the store's totals for the admin console's first page.
// Buffered audit entries are written first so the count is current.
// EForbidden for others.
func (a *App) AdminOverview(ctx context.Context, actor domain.Actor) (ports.Counts, error) {
	if err := domain.CanAdminister(actor); err != nil {
		return ports.Counts{}, err
	}
	if err := a.audit.Flush(ctx); err != nil {
		return ports.Counts{}, err
	}
	return a.store.Counts(ctx)
}

// AuditCheck is the outcome of walking the audit chain.
type AuditCheck struct {
	Entries int64
	// FirstBroken is the id of the first entry that fails, 0 when intact.
	FirstBroken int64
}

// AdminVerifyAudit runs the operator's audit check for the admin.
// EForbidden for others.
func (a *App) AdminVerifyAudit(ctx context.Context, actor domain.Actor) (AuditCheck, error) {
	if err := domain.CanAdminister(actor); err != nil {
		return AuditCheck{}, err
	}
	if err := a.audit.Flush(ctx); err != nil {
		return AuditCheck{}, err
	}
	broken, err := a.VerifyAudit(ctx)
	if err != nil {
		return AuditCheck{}, err
	}
	c, err := a.store.Counts(ctx)
	if err != nil {
		return AuditCheck{}, err
	}
	return AuditCheck{Entries: c.AuditEntries, FirstBroken: broken}, nil
}
