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
	// Validated as a registration; the role is set after, since
	// registration itself refuses ADMIN.
	r := domain.Registration{Username: username, Email: email, Password: password, Role: domain.RolePatient}
	if err := r.Validate(); err != nil {
		return domain.User{}, err
	}
	hash, err := a.hash(ctx, "", password) // the operator, at the console
	if err != nil {
		return domain.User{}, err
	}
	u, err := domain.NewUser(r, hash, false, a.clock.Now())
	if err != nil {
		return domain.User{}, err
	}
	u.Role, u.Approved = domain.RoleAdmin, true
	if err := a.store.Users().Create(ctx, &u); err != nil {
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
	return a.setUser(ctx, u, op)
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

// OutboxList lists outbox events, optionally in one state. EInvalid for an
// unknown state.
func (a *App) OutboxList(ctx context.Context, state string, p domain.Page) ([]domain.OutboxEvent, *domain.Cursor, error) {
	if state != "" && !domain.ValidOutboxState(state) {
		return nil, nil, domain.FieldError("state", `"`+state+`" is not a valid choice.`)
	}
	items, err := a.store.Outbox().List(ctx, state, pageQuery(p))
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
	return a.store.Outbox().Retry(ctx, id, a.clock.Now())
}

// VerifyAudit checks the audit trail's hash chain; it returns the id of the
// first broken entry, 0 when intact.
func (a *App) VerifyAudit(ctx context.Context) (int64, error) {
	return a.store.Audit().Verify(ctx)
}
