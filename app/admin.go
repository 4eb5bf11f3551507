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
	if op == OpDeactivate {
		if err := domain.CanDeactivate(actor, id); err != nil {
			return domain.User{}, err
		}
	}
	u, err := a.store.Users().ByID(ctx, id)
	if err != nil {
		return domain.User{}, err
	}
	return a.setUser(ctx, actor, u, op)
}

// setUser applies op for actor (the admin, or the operator), with its
// audit entry in the same transaction. Deactivating revokes every sign-in
// of the user at once, so their access tokens stop working before they
// expire.
func (a *App) setUser(ctx context.Context, actor domain.Actor, u domain.User, op UserOp) (domain.User, error) {
	update := func(action string) (domain.User, error) {
		return u, a.store.WithinTx(ctx, func(tx ports.Repos) error {
			if err := tx.Users().Update(ctx, u); err != nil {
				return err
			}
			return tx.Audit().Append(ctx, a.event(actor, action, domain.OutcomeAllowed))
		})
	}
	switch op {
	case OpApprove:
		if u.Role != domain.RoleDoctor {
			return domain.User{}, domain.Errorf(domain.EInvalid, "Only doctors need approval.")
		}
		u.Approved = true
		return update(domain.ActionUserApprove)
	case OpDeactivate:
		u.Active = false
		return u, a.updateAndRevoke(ctx, u, "", a.event(actor, domain.ActionUserDeactivate, domain.OutcomeAllowed))
	case OpActivate:
		u.Active = true
		return update(domain.ActionUserActivate)
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

// AdminOutbox lists outbox events, optionally in one state, or with a
// delivery through one sink (in one state).
func (a *App) AdminOutbox(ctx context.Context, actor domain.Actor, f ports.OutboxFilter, p domain.Page) ([]domain.OutboxEvent, *domain.Cursor, error) {
	if err := domain.CanAdminister(actor); err != nil {
		return nil, nil, err
	}
	return a.OutboxList(ctx, f, p)
}

// AdminRetryOutbox puts a dead event back to pending. ENotFound, EConflict.
func (a *App) AdminRetryOutbox(ctx context.Context, actor domain.Actor, id int64) (domain.OutboxEvent, error) {
	if err := domain.CanAdminister(actor); err != nil {
		return domain.OutboxEvent{}, err
	}
	return a.retryOutbox(ctx, actor, id)
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

// AdminVerifyAudit runs the operator's audit check (audit verify) for the
// admin. EForbidden for others.
func (a *App) AdminVerifyAudit(ctx context.Context, actor domain.Actor) (domain.AuditCheck, error) {
	if err := domain.CanAdminister(actor); err != nil {
		return domain.AuditCheck{}, err
	}
	return a.CheckAudit(ctx, nil)
}
