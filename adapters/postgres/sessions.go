package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"healthrecord/domain"
	"healthrecord/ports"
)

// sessions implements ports.Sessions.
type sessions struct{ s scope }

func (r sessions) Create(ctx context.Context, s domain.Session) error {
	err := r.s.write(ctx, func(t *txn) error {
		_, err := t.Exec(ctx,
			`INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5)`,
			s.ID, s.UserID, toNanos(s.CreatedAt), toNanos(s.ExpiresAt), toNullNanos(s.RevokedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create session: %w", err)
	}
	return nil
}

func (r sessions) Get(ctx context.Context, id string) (domain.Session, error) {
	s, err := one(ctx, r.s.reader(), func(row pgx.Row) (domain.Session, error) {
		s := domain.Session{ID: id}
		var created, expires int64
		var revoked *int64
		err := row.Scan(&s.UserID, &created, &expires, &revoked)
		s.CreatedAt, s.ExpiresAt, s.RevokedAt = fromNanos(created), fromNanos(expires), fromNullNanos(revoked)
		return s, err
	}, `SELECT user_id, created_at, expires_at, revoked_at FROM sessions WHERE id = $1`, id)
	if err != nil {
		return domain.Session{}, fmt.Errorf("postgres: session: %w", err)
	}
	return s, nil
}

// nextRevokedSeq numbers a revocation inside its write transaction. Writers
// hold the writer lock until they commit, so numbers commit in order and a
// poller (of any instance) that has seen n has seen every revocation
// numbered n or less; a sequence would hand out numbers in the order
// transactions asked, not the order they committed.
const nextRevokedSeq = `(SELECT coalesce(max(revoked_seq), 0) + 1 FROM sessions)`

// Revoke keeps the first revocation time and number.
func (r sessions) Revoke(ctx context.Context, id string, now time.Time) error {
	err := r.s.write(ctx, func(t *txn) error {
		if err := mustChange(t.Exec(ctx,
			`UPDATE sessions SET revoked_at = coalesce(revoked_at, $1), revoked_seq = coalesce(revoked_seq, `+nextRevokedSeq+`)
			 WHERE id = $2`, toNanos(now), id)); err != nil {
			return err
		}
		t.revoked = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: revoke session: %w", err)
	}
	return nil
}

// RevokeUser leaves expired sign-ins alone: they are dead already.
func (r sessions) RevokeUser(ctx context.Context, userID int64, keep string, now time.Time) error {
	err := r.s.write(ctx, func(t *txn) error {
		tag, err := t.Exec(ctx,
			`UPDATE sessions SET revoked_at = $1, revoked_seq = `+nextRevokedSeq+`
			 WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL AND expires_at > $1`,
			toNanos(now), userID, keep)
		t.revoked = t.revoked || tag.RowsAffected() > 0
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: revoke sessions of user %d: %w", userID, err)
	}
	return nil
}

func (r sessions) RevokedAfter(ctx context.Context, afterSeq int64, notBefore time.Time) ([]ports.RevokedSession, error) {
	out, err := collect(ctx, r.s.reader(), func(row pgx.Row) (ports.RevokedSession, error) {
		var s ports.RevokedSession
		var at int64
		err := row.Scan(&s.ID, &at, &s.Seq)
		s.RevokedAt = fromNanos(at)
		return s, err
	}, `SELECT id, revoked_at, revoked_seq FROM sessions WHERE revoked_seq > $1 AND revoked_at >= $2
	    ORDER BY revoked_seq, id COLLATE "C"`, afterSeq, toNanos(notBefore))
	if err != nil {
		return nil, fmt.Errorf("postgres: revoked sessions: %w", err)
	}
	return out, nil
}

// UseRefresh first forgets refresh tokens that have expired: presenting one
// fails its expiry check before it gets here, so its row protects nothing.
func (r sessions) UseRefresh(ctx context.Context, jti, sessionID string, expiresAt, now time.Time) (bool, error) {
	fresh := false
	err := r.s.write(ctx, func(t *txn) error {
		if _, err := t.Exec(ctx, `DELETE FROM used_refresh WHERE expires_at < $1`, toNanos(now)); err != nil {
			return err
		}
		tag, err := t.Exec(ctx,
			`INSERT INTO used_refresh (jti, session_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING`,
			jti, sessionID, toNanos(expiresAt))
		fresh = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: use refresh token: %w", err)
	}
	return fresh, nil
}
