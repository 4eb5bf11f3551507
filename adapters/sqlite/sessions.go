package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"healthrecord/domain"
	"healthrecord/ports"
)

// sessions implements ports.Sessions.
type sessions struct{ in repos }

func (r sessions) Create(ctx context.Context, s domain.Session) error {
	if _, err := r.in.writes().ExecContext(ctx,
		`INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?)`,
		s.ID, s.UserID, toNanos(s.CreatedAt), toNanos(s.ExpiresAt), toNullNanos(s.RevokedAt)); err != nil {
		return fmt.Errorf("sqlite: create session: %w", err)
	}
	return nil
}

func (r sessions) Get(ctx context.Context, id string) (domain.Session, error) {
	s := domain.Session{ID: id}
	var created, expires int64
	var revoked sql.NullInt64
	err := r.in.reads().QueryRowContext(ctx,
		`SELECT user_id, created_at, expires_at, revoked_at FROM sessions WHERE id = ?`, id).
		Scan(&s.UserID, &created, &expires, &revoked)
	if err != nil {
		return domain.Session{}, fmt.Errorf("sqlite: session: %w", notFoundIf(err))
	}
	s.CreatedAt, s.ExpiresAt, s.RevokedAt = fromNanos(created), fromNanos(expires), fromNullNanos(revoked)
	return s, nil
}

// nextRevokedSeq numbers a revocation inside its write transaction: one
// writer at a time, so numbers commit in order and a poller that has seen
// n has seen every revocation numbered n or less.
const nextRevokedSeq = `(SELECT COALESCE(MAX(revoked_seq), 0) + 1 FROM sessions)`

// Revoke keeps the first revocation time and number.
func (r sessions) Revoke(ctx context.Context, id string, now time.Time) error {
	if err := mustChange(r.in.writes().ExecContext(ctx,
		`UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?), revoked_seq = COALESCE(revoked_seq, `+nextRevokedSeq+`)
		 WHERE id = ?`, toNanos(now), id)); err != nil {
		return fmt.Errorf("sqlite: revoke session: %w", err)
	}
	return nil
}

// RevokeUser leaves expired sign-ins alone: they are dead already, and
// RevokedSince need not carry them.
func (r sessions) RevokeUser(ctx context.Context, userID int64, keep string, now time.Time) error {
	if _, err := r.in.writes().ExecContext(ctx,
		`UPDATE sessions SET revoked_at = ?, revoked_seq = `+nextRevokedSeq+`
		 WHERE user_id = ? AND id <> ? AND revoked_at IS NULL AND expires_at > ?`,
		toNanos(now), userID, keep, toNanos(now)); err != nil {
		return fmt.Errorf("sqlite: revoke sessions of user %d: %w", userID, err)
	}
	return nil
}

func (r sessions) RevokedAfter(ctx context.Context, afterSeq int64, notBefore time.Time) ([]ports.RevokedSession, error) {
	out, err := queryAll(ctx, r.in.reads(), func(sc scanner) (ports.RevokedSession, error) {
		var s ports.RevokedSession
		var at int64
		err := sc.Scan(&s.ID, &at, &s.Seq)
		s.RevokedAt = fromNanos(at)
		return s, err
	}, `SELECT id, revoked_at, revoked_seq FROM sessions WHERE revoked_seq > ? AND revoked_at >= ? ORDER BY revoked_seq, id`,
		afterSeq, toNanos(notBefore))
	if err != nil {
		return nil, fmt.Errorf("sqlite: revoked sessions: %w", err)
	}
	return out, nil
}

// UseRefresh first forgets refresh tokens that have expired: presenting one
// fails its expiry check before it gets here, so its row protects nothing.
func (r sessions) UseRefresh(ctx context.Context, jti, sessionID string, expiresAt, now time.Time) (bool, error) {
	q := r.in.writes()
	if _, err := q.ExecContext(ctx, `DELETE FROM used_refresh WHERE expires_at < ?`, toNanos(now)); err != nil {
		return false, fmt.Errorf("sqlite: forget expired refresh tokens: %w", err)
	}
	res, err := q.ExecContext(ctx,
		`INSERT INTO used_refresh (jti, session_id, expires_at) VALUES (?, ?, ?) ON CONFLICT (jti) DO NOTHING`,
		jti, sessionID, toNanos(expiresAt))
	if err != nil {
		return false, fmt.Errorf("sqlite: use refresh token: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: use refresh token: %w", err)
	}
	return n == 1, nil
}
