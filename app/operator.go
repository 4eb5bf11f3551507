package app

import (
	"context"

	"healthrecord/domain"
	"healthrecord/ports"
)

// The operator's use cases, run from the command line by whoever controls
// the server: they take no actor.

// CreateSuperuser creates an ADMIN account. EInvalid.
func (a *App) CreateSuperuser(ctx context.Context, username, email, password string) (domain.User, error) {
	// Validated as a registration, before the costly hash; the role is set
	// after, since registration itself refuses ADMIN.
	r := domain.Registration{Username: username, Email: email, Password: password, Role: domain.RolePatient}
	u, err := domain.NewUser(r, "", false, a.clock.Now())
	if err != nil {
		return domain.User{}, err
	}
	if u.PasswordHash, err = a.hash(ctx, "", password); err != nil { // the operator, at the console
		return domain.User{}, err
	}
	u.Role, u.Approved = domain.RoleAdmin, true
	err = a.store.WithinTx(ctx, func(tx ports.Repos) error {
		if err := tx.Users().Create(ctx, &u); err != nil {
			return err
		}
		created := operator
		created.ID, created.Role = u.ID, u.Role
		return tx.Audit().Append(ctx, a.event(created, domain.ActionUserCreateSuperuser, domain.OutcomeAllowed))
	})
	if err != nil {
		return domain.User{}, err
	}
	return u, nil
}

// SetUserByName applies op to the named account. ENotFound, EInvalid.
func (a *App) SetUserByName(ctx context.Context, username string, op UserOp) (domain.User, error) {
	u, err := a.store.Users().ByUsername(ctx, username)
	if err != nil {
		return domain.User{}, err
	}
	return a.setUser(ctx, operator, u, op)
}

// ListUsers lists accounts for the operator.
func (a *App) ListUsers(ctx context.Context, f ports.UserFilter, p domain.Page) ([]domain.User, *domain.Cursor, error) {
	items, err := a.store.Users().List(ctx, f, pageQuery(p))
	if err != nil {
		return nil, nil, err
	}
	items, next := trimPage(items, p, userCursor)
	return items, next, nil
}

// OutboxList lists outbox events, optionally in one state, or with a
// delivery through one sink (in one state). EInvalid for an unknown state
// or sink.
func (a *App) OutboxList(ctx context.Context, f ports.OutboxFilter, p domain.Page) ([]domain.OutboxEvent, *domain.Cursor, error) {
	if f.State != "" && !domain.ValidOutboxState(f.State) {
		return nil, nil, domain.FieldError("state", `"`+f.State+`" is not a valid choice.`)
	}
	if f.Sink != "" && !domain.ValidSink(f.Sink) {
		return nil, nil, domain.FieldError("sink", `"`+f.Sink+`" is not a valid choice.`)
	}
	items, err := a.store.Outbox().List(ctx, f, pageQuery(p))
	if err != nil {
		return nil, nil, err
	}
	items, next := trimPage(items, p, func(e domain.OutboxEvent) domain.Cursor {
		return domain.Cursor{CreatedAt: e.CreatedAt, ID: e.ID}
	})
	return items, next, nil
}

// OutboxRetry puts a dead event back to pending. ENotFound, EConflict.
func (a *App) OutboxRetry(ctx context.Context, id int64) (domain.OutboxEvent, error) {
	return a.retryOutbox(ctx, operator, id)
}

// retryOutbox retries for actor, with the audit entry in the same
// transaction.
func (a *App) retryOutbox(ctx context.Context, actor domain.Actor, id int64) (domain.OutboxEvent, error) {
	var ev domain.OutboxEvent
	err := a.store.WithinTx(ctx, func(tx ports.Repos) error {
		var err error
		if ev, err = tx.Outbox().Retry(ctx, id, a.clock.Now()); err != nil {
			return err
		}
		return tx.Audit().Append(ctx, a.event(actor, domain.ActionOutboxRetry, domain.OutcomeAllowed))
	})
	return ev, err
}

// KeysRotated records that the operator rotated the token signing key
// (the key file is the token adapter's; the trail is ours).
func (a *App) KeysRotated(ctx context.Context) error {
	return a.store.Audit().Append(ctx, a.event(operator, domain.ActionKeysRotate, domain.OutcomeAllowed))
}

// CheckAudit verifies the audit trail's keyed chain after writing the
// reads still buffered: how many entries it holds and the first broken
// one (0 when intact). since, when not nil, is a head kept earlier (`audit
// head`) that must still be in the chain, which catches a tail deleted
// together with the head row put back as it was.
func (a *App) CheckAudit(ctx context.Context, since *domain.AuditHead) (domain.AuditCheck, error) {
	if err := a.audit.Flush(ctx); err != nil {
		return domain.AuditCheck{}, err
	}
	return a.store.Audit().Verify(ctx, since)
}

// AuditHead is the chain's current head, to keep outside the server. It is
// given only for a chain that verifies: a head of a broken chain is worth
// nothing kept.
func (a *App) AuditHead(ctx context.Context) (domain.AuditHead, domain.AuditCheck, error) {
	c, err := a.CheckAudit(ctx, nil)
	if err != nil || !c.OK() {
		return domain.AuditHead{}, c, err
	}
	h, err := a.store.Audit().Head(ctx)
	return h, c, err
}
