package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"healthrecord/domain"
)

// notifications implements ports.Notifications.
type notifications struct{ s scope }

const notificationCols = "id, user_id, kind, record_id, patient_id, event_id, created_at, read_at"

func scanNotification(row pgx.Row) (domain.Notification, error) {
	var n domain.Notification
	var createdAt int64
	var readAt *int64
	err := row.Scan(&n.ID, &n.UserID, &n.Kind, &n.RecordID, &n.PatientID, &n.EventID, &createdAt, &readAt)
	n.CreatedAt, n.ReadAt = fromNanos(createdAt), fromNullNanos(readAt)
	return n, err
}

// Create is idempotent per event: a redelivered event finds its
// notification and stores no second one.
func (r notifications) Create(ctx context.Context, n *domain.Notification) (bool, error) {
	created := false
	err := r.s.write(ctx, func(t *txn) error {
		err := t.QueryRow(ctx,
			`INSERT INTO notifications (user_id, kind, record_id, patient_id, event_id, created_at, read_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING RETURNING id`,
			n.UserID, n.Kind, n.RecordID, n.PatientID, n.EventID, toNanos(n.CreatedAt), toNullNanos(n.ReadAt)).Scan(&n.ID)
		if err == nil {
			created, t.notified = true, true
			return nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return t.QueryRow(ctx, `SELECT id FROM notifications WHERE event_id = $1`, n.EventID).Scan(&n.ID)
	})
	if err != nil {
		return false, fmt.Errorf("postgres: create notification: %w", err)
	}
	return created, nil
}

func (r notifications) List(ctx context.Context, userID int64, p domain.Page) ([]domain.Notification, error) {
	var w where
	w.add("user_id = ?", userID)
	w.after(p, "created_at", "id")
	out, err := collect(ctx, r.s.reader(), scanNotification,
		`SELECT `+notificationCols+` FROM notifications`+w.String()+` ORDER BY created_at DESC, id DESC LIMIT `+w.next(limit(p)),
		w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list notifications: %w", err)
	}
	return out, nil
}

// After reads from the (user_id, id) index: a live stream polls it often.
func (r notifications) After(ctx context.Context, userID, afterID int64, limit int) ([]domain.Notification, error) {
	out, err := collect(ctx, r.s.reader(), scanNotification,
		`SELECT `+notificationCols+` FROM notifications WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
		userID, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: notifications after %d: %w", afterID, err)
	}
	return out, nil
}

// MarkRead keeps the first read time: marking again changes nothing.
func (r notifications) MarkRead(ctx context.Context, userID, id int64, now time.Time) (domain.Notification, error) {
	var n domain.Notification
	err := r.s.write(ctx, func(t *txn) error {
		if _, err := t.Exec(ctx,
			`UPDATE notifications SET read_at = $1 WHERE id = $2 AND user_id = $3 AND read_at IS NULL`,
			toNanos(now), id, userID); err != nil {
			return err
		}
		var err error
		n, err = one(ctx, t, scanNotification,
			`SELECT `+notificationCols+` FROM notifications WHERE id = $1 AND user_id = $2`, id, userID)
		return err
	})
	if err != nil {
		return domain.Notification{}, fmt.Errorf("postgres: mark notification %d read: %w", id, err)
	}
	return n, nil
}
