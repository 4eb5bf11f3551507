package app

import (
	"context"
	"encoding/hex"
	"time"

	"healthrecord/domain"
	"healthrecord/ports"
)

// TokenPair is what a sign-in or a refresh returns.
type TokenPair struct {
	Access  string
	Refresh string
}

// Register creates a patient or doctor account for a client at
// remoteAddr. Doctors start unapproved unless the operator turned
// auto-approval on. EInvalid, EThrottled (hashing queues full).
func (a *App) Register(ctx context.Context, r domain.Registration, remoteAddr string) (domain.User, error) {
	// Built, and so validated once, before the costly hash is computed.
	u, err := domain.NewUser(r, "", a.cfg.AutoApproveDoctors, a.clock.Now())
	if err != nil {
		return domain.User{}, err
	}
	if u.PasswordHash, err = a.hash(ctx, remoteAddr, r.Password); err != nil {
		return domain.User{}, err
	}
	err = a.store.WithinTx(ctx, func(tx ports.Repos) error {
		if err := tx.Users().Create(ctx, &u); err != nil {
			return err
		}
		return tx.Audit().Append(ctx, a.event(domain.Actor{ID: u.ID, Role: u.Role, RemoteAddr: remoteAddr}, domain.ActionUserRegister, domain.OutcomeAllowed))
	})
	if err != nil {
		return domain.User{}, err
	}
	return u, nil
}

// SignIn checks a password and opens a new sign-in. Wrong password, unknown
// or inactive user all get the same answer after the same work (a hash is
// verified either way), so usernames cannot be probed. Attempts are
// throttled per username and per client address from the moment they
// arrive. EUnauthorized, EThrottled.
func (a *App) SignIn(ctx context.Context, username, password, remoteAddr string) (TokenPair, error) {
	now := a.clock.Now()
	// Refused before the throttle and the lookup: no such account can
	// exist, and throttle keys stay small.
	if !domain.UsernameLengthOK(username) {
		return TokenPair{}, badCredentials()
	}
	key := a.usernameKey(username)
	res, err := a.reserveAttempt(ctx, key, remoteAddr, now)
	if err != nil {
		return TokenPair{}, err
	}
	u, err := a.store.Users().ByUsername(ctx, username)
	hash := u.PasswordHash
	if err != nil {
		if domain.ErrorCode(err) != domain.ENotFound {
			a.releaseAttempt(ctx, res)
			return TokenPair{}, err
		}
		hash = a.dummyHash
	}
	ok, verr := a.verifyPassword(ctx, remoteAddr, hash, password)
	if verr != nil {
		a.releaseAttempt(ctx, res) // no guess was checked
		return TokenPair{}, verr
	}
	who := domain.Actor{ID: u.ID, Role: u.Role, RemoteAddr: remoteAddr} // none for an unknown username
	if err != nil || !ok || !u.Active {
		a.auditRead(who, domain.ActionSignIn, domain.Record{}, domain.OutcomeDenied)
		return TokenPair{}, badCredentials()
	}
	s := domain.Session{ID: a.newID(), UserID: u.ID, CreatedAt: now.UTC(), ExpiresAt: now.Add(a.cfg.RefreshTTL).UTC()}
	// The session is stored only if the credential just checked still
	// stands when it commits: a password change or a deactivation that
	// committed while the hash ran wins, and one that commits after
	// revokes this session with the others.
	err = a.store.WithinTx(ctx, func(tx ports.Repos) error {
		cur, err := tx.Users().ByID(ctx, u.ID)
		if err != nil {
			return err
		}
		if !cur.Active || cur.PasswordHash != u.PasswordHash {
			return badCredentials()
		}
		return tx.Sessions().Create(ctx, s)
	})
	a.releaseAttempt(ctx, res)
	if err != nil {
		return TokenPair{}, err
	}
	a.auditRead(who, domain.ActionSignIn, domain.Record{}, domain.OutcomeAllowed)
	return a.issuePair(u.ID, u.Role, s.ID, now)
}

func badCredentials() error {
	return &domain.Error{Code: domain.EUnauthorized, Message: domain.MsgBadCredentials}
}

func (a *App) issuePair(userID int64, role domain.Role, sessionID string, now time.Time) (TokenPair, error) {
	base := ports.TokenClaims{UserID: userID, Role: role, SessionID: sessionID, IssuedAt: now}
	access, refresh := base, base
	access.Type, access.JTI, access.ExpiresAt = ports.AccessToken, a.newID(), now.Add(a.cfg.AccessTTL)
	refresh.Type, refresh.JTI, refresh.ExpiresAt = ports.RefreshToken, a.newID(), now.Add(a.cfg.RefreshTTL)
	at, err := a.tokens.Issue(access)
	if err != nil {
		return TokenPair{}, err
	}
	rt, err := a.tokens.Issue(refresh)
	if err != nil {
		return TokenPair{}, err
	}
	return TokenPair{Access: at, Refresh: rt}, nil
}

func (a *App) newID() string { return hex.EncodeToString(a.random(16)) }

// Refresh rotates a refresh token: it works once. Presenting one that was
// already used means it leaked, so the whole sign-in is revoked, including
// the legitimate holder's newer tokens. EUnauthorized.
func (a *App) Refresh(ctx context.Context, refresh string) (TokenPair, error) {
	now := a.clock.Now()
	c, s, err := a.liveRefresh(ctx, refresh, now)
	if err != nil {
		return TokenPair{}, err
	}
	u, err := a.store.Users().ByID(ctx, c.UserID)
	if domain.ErrorCode(err) == domain.ENotFound || (err == nil && !u.Active) {
		return TokenPair{}, domain.RefreshNotValid()
	} else if err != nil {
		return TokenPair{}, err
	}
	fresh, err := a.store.Sessions().UseRefresh(ctx, c.JTI, s.ID, c.ExpiresAt, now)
	if err != nil {
		return TokenPair{}, err
	}
	if !fresh {
		if err := a.revokeSession(ctx, s.ID, now); err != nil {
			return TokenPair{}, err
		}
		a.auditRead(domain.Actor{ID: u.ID, Role: u.Role}, domain.ActionRefreshReuse, domain.Record{}, domain.OutcomeDenied)
		a.log.Warn("refresh token reused; sign-in revoked", "user_id", u.ID)
		return TokenPair{}, domain.RefreshNotValid()
	}
	return a.issuePair(u.ID, u.Role, s.ID, now)
}

// Blacklist revokes the sign-in a refresh token belongs to, with every
// token rotated from it. EUnauthorized.
func (a *App) Blacklist(ctx context.Context, refresh string) error {
	now := a.clock.Now()
	_, s, err := a.liveRefresh(ctx, refresh, now)
	if err != nil {
		return err
	}
	return a.revokeSession(ctx, s.ID, now)
}

// liveRefresh verifies a refresh token and that its sign-in still stands.
func (a *App) liveRefresh(ctx context.Context, refresh string, now time.Time) (ports.TokenClaims, domain.Session, error) {
	c, err := a.tokens.Verify(refresh, ports.RefreshToken, now)
	if err != nil {
		return c, domain.Session{}, domain.RefreshNotValid()
	}
	s, err := a.store.Sessions().Get(ctx, c.SessionID)
	if domain.ErrorCode(err) == domain.ENotFound || (err == nil && (s.RevokedAt != nil || s.UserID != c.UserID)) {
		return c, s, domain.RefreshNotValid()
	} else if err != nil {
		return c, s, err
	}
	return c, s, nil
}

func (a *App) revokeSession(ctx context.Context, id string, now time.Time) error {
	if err := a.store.Sessions().Revoke(ctx, id, now); err != nil {
		return err
	}
	a.revoked.add(id, now)
	return nil
}

// Authenticate turns an access token into the actor it speaks for. A
// revoked sign-in is refused at once, from memory: no database round trip
// per request. EUnauthorized.
func (a *App) Authenticate(_ context.Context, access string) (domain.Actor, error) {
	now := a.clock.Now()
	c, err := a.tokens.Verify(access, ports.AccessToken, now)
	if err != nil || a.revoked.has(c.SessionID) {
		return domain.Actor{}, domain.TokenNotValid()
	}
	return domain.Actor{ID: c.UserID, Role: c.Role, SessionID: c.SessionID}, nil
}

// SyncRevocations loads sign-ins revoked since the last sync, including by
// other processes (the CLI deactivating a user), into memory. It asks by
// sequence number, not by time, so a revocation whose write committed
// late is never skipped.
func (a *App) SyncRevocations(ctx context.Context) error {
	now := a.clock.Now()
	// Revocations older than an access token's life protect nothing; the
	// date filters only the first load, later ones go by number alone.
	horizon := now.Add(-a.cfg.AccessTTL - time.Minute)
	since := a.revoked.lastSeq()
	notBefore := horizon
	if since > 0 {
		notBefore = time.Time{}
	}
	list, err := a.store.Sessions().RevokedAfter(ctx, since, notBefore)
	if err != nil {
		return err
	}
	for _, r := range list {
		// Kept for an access token's life from now: a token issued just
		// before a late commit lives that long, whatever revoked_at says.
		at := r.RevokedAt
		if at.Before(now) {
			at = now
		}
		a.revoked.addSeq(r.ID, at, r.Seq)
	}
	a.revoked.prune(horizon)
	return nil
}

// Me returns the caller's account.
func (a *App) Me(ctx context.Context, actor domain.Actor) (domain.User, error) {
	return a.store.Users().ByID(ctx, actor.ID)
}

// ChangePassword replaces the caller's password after checking the old
// one, and revokes every sign-in of the user: whoever knew the old
// password loses access at once. Wrong old passwords count against the
// same per-username throttle as sign-ins. EInvalid, EThrottled.
func (a *App) ChangePassword(ctx context.Context, actor domain.Actor, oldPassword, newPassword string) error {
	u, err := a.store.Users().ByID(ctx, actor.ID)
	if err != nil {
		return err
	}
	res, err := a.reserveAttempt(ctx, a.usernameKey(u.Username), "", a.clock.Now())
	if err != nil {
		return err
	}
	ok, err := a.verifyPassword(ctx, actor.RemoteAddr, u.PasswordHash, oldPassword)
	if err != nil {
		a.releaseAttempt(ctx, res)
		return err
	}
	if !ok {
		return domain.FieldError("old_password", "Wrong password.")
	}
	a.releaseAttempt(ctx, res)
	fe := domain.FieldErrors{}
	for _, m := range domain.PasswordProblems(newPassword, u.Username, u.Email) {
		fe.Add("new_password", m)
	}
	if err := fe.Err(); err != nil {
		return err
	}
	hash, err := a.hash(ctx, actor.RemoteAddr, newPassword)
	if err != nil {
		return err
	}
	u.PasswordHash = hash
	return a.updateAndRevoke(ctx, u, actor.SessionID, a.event(actor, domain.ActionPasswordChange, domain.OutcomeAllowed))
}

// updateAndRevoke saves u, revokes its sign-ins but keep ("" for all) and
// appends the change's audit entry in one transaction.
func (a *App) updateAndRevoke(ctx context.Context, u domain.User, keep string, entry domain.AuditEntry) error {
	now := a.clock.Now()
	err := a.store.WithinTx(ctx, func(tx ports.Repos) error {
		if err := tx.Users().Update(ctx, u); err != nil {
			return err
		}
		if err := tx.Sessions().RevokeUser(ctx, u.ID, keep, now); err != nil {
			return err
		}
		return tx.Audit().Append(ctx, entry)
	})
	if err != nil {
		return err
	}
	// Pick up the revoked ids now rather than at the next poll.
	return a.SyncRevocations(ctx)
}

// Doctors lists approved, active doctors, for choosing whom to assign.
func (a *App) Doctors(ctx context.Context, _ domain.Actor, p domain.Page) ([]domain.User, *domain.Cursor, error) {
	rule := domain.AssignableDoctor // the same rule User.Assignable checks
	f := ports.UserFilter{Role: &rule.Role, Approved: &rule.Approved, Active: &rule.Active}
	items, err := a.store.Users().List(ctx, f, pageQuery(p))
	if err != nil {
		return nil, nil, err
	}
	items, next := trimPage(items, p, userCursor)
	return items, next, nil
}

func userCursor(u domain.User) domain.Cursor { return domain.Cursor{CreatedAt: u.CreatedAt, ID: u.ID} }
