package app

import (
	"context"

	"healthrecord/domain"
)

// Notifications lists the caller's notifications, newest first.
func (a *App) Notifications(ctx context.Context, actor domain.Actor, p domain.Page) ([]domain.Notification, *domain.Cursor, error) {
	items, err := a.store.Notifications().List(ctx, actor.ID, pageQuery(p))
	if err != nil {
		return nil, nil, err
	}
	items, next := trimPage(items, p, func(n domain.Notification) domain.Cursor {
		return domain.Cursor{CreatedAt: n.CreatedAt, ID: n.ID}
	})
	return items, next, nil
}

// MarkNotificationRead marks one of the caller's notifications read.
// ENotFound for another user's.
func (a *App) MarkNotificationRead(ctx context.Context, actor domain.Actor, id int64) (domain.Notification, error) {
	return a.store.Notifications().MarkRead(ctx, actor.ID, id, a.clock.Now())
}
