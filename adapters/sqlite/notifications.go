package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"healthrecord/domain"
)

// notifications implements ports.Notifications.
type notifications struct{ in repos }

const notificationCols = "id, user_id, kind, record_id, patient_id, event_id, created_at, read_at"

func scanNotification(sc scanner) (domain.Notification, error) {
	var n domain.Notification
	var createdAt int64
	var readAt sql.NullInt64
	err := sc.Scan(&n.ID, &n.UserID, &n.Kind, &n.RecordID, &n.PatientID, &n.EventID, &createdAt, &readAt)
	n.CreatedAt, n.ReadAt = fromNanos(createdAt), fromNullNanos(readAt)
	return n, err
}

// Create is idempotent per event: a redelivered event finds its
// notification and stores no second one.
func (r notifications) Create(ctx context.Context, n *domain.Notification) (bool, error) {
	q := r.in.writes()
	res, err := q.ExecContext(ctx,
		`INSERT INTO notifications (user_id, kind, record_id, patient_id, event_id, created_at, read_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
		n.UserID, n.Kind, n.RecordID, n.PatientID, n.EventID, toNanos(n.CreatedAt), toNullNanos(n.ReadAt))
	if err != nil {
		return false, fmt.Errorf("sqlite: create notification: %w", err)
	}
	// RowsAffected first: after DO NOTHING, LastInsertId is a stale value.
	if k, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("sqlite: create notification: %w", err)
	} else if k == 1 {
		if n.ID, err = res.LastInsertId(); err != nil {
			return false, fmt.Errorf("sqlite: create notification: %w", err)
		}
		return true, nil
	}
	if err := r.in.reads().QueryRowContext(ctx, `SELECT id FROM notifications WHERE event_id = ?`, n.EventID).Scan(&n.ID); err != nil {
		return false, fmt.Errorf("sqlite: create notification: %w", err)
	}
	return false, nil
}

func (r notifications) List(ctx context.Context, userID int64, p domain.Page) ([]domain.Notification, error) {
	var w where
	w.add("user_id = ?", userID)
	w.after(p, "created_at", "id")
	out, err := queryAll(ctx, r.in.reads(), scanNotification,
		`SELECT `+notificationCols+` FROM notifications`+w.String()+` ORDER BY created_at DESC, id DESC LIMIT ?`,
		append(w.args, limit(p))...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list notifications: %w", err)
	}
	return out, nil
}

// After reads from the (user_id, id) index: a live stream polls it often.
func (r notifications) After(ctx context.Context, userID, afterID int64, limit int) ([]domain.Notification, error) {
	out, err := queryAll(ctx, r.in.reads(), scanNotification,
		`SELECT `+notificationCols+` FROM notifications WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?`,
		userID, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: notifications after %d: %w", afterID, err)
	}
	return out, nil
}

// MarkRead keeps the first read time: marking again changes nothing.
func (r notifications) MarkRead(ctx context.Context, userID, id int64, now time.Time) (domain.Notification, error) {
	q := r.in.writes()
	if _, err := q.ExecContext(ctx,
		`UPDATE notifications SET read_at = ? WHERE id = ? AND user_id = ? AND read_at IS NULL`,
		toNanos(now), id, userID); err != nil {
		return domain.Notification{}, fmt.Errorf("sqlite: mark notification %d read: %w", id, err)
	}
	n, err := scanNotification(r.in.reads().QueryRowContext(ctx,
		`SELECT `+notificationCols+` FROM notifications WHERE id = ? AND user_id = ?`, id, userID))
	if err != nil {
		return domain.Notification{}, fmt.Errorf("sqlite: mark notification %d read: %w", id, notFoundIf(err))
	}
	return n, nil
}
