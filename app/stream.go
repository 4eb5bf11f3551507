package app

import (
	"context"
	"sync"

	"healthrecord/domain"
)

// NotificationsAfter returns at most limit of the caller's notifications
// with an id above afterID, oldest first: what a live stream has yet to
// send.
func (a *App) NotificationsAfter(ctx context.Context, actor domain.Actor, afterID int64, limit int) ([]domain.Notification, error) {
	return a.store.Notifications().After(ctx, actor.ID, afterID, limit)
}

// LatestNotificationID is the id a new stream starts after: the highest
// among the caller's newest notifications, 0 when there are none.
// Notifications are numbered as they are delivered and dated by their
// event, so the two orders can differ slightly; a page's worth covers it.
func (a *App) LatestNotificationID(ctx context.Context, actor domain.Actor) (int64, error) {
	items, err := a.store.Notifications().List(ctx, actor.ID, domain.Page{Limit: domain.DefaultPageSize})
	if err != nil {
		return 0, err
	}
	var latest int64
	for _, n := range items {
		latest = max(latest, n.ID)
	}
	return latest, nil
}

// NotificationWake returns a channel closed when this process next stores
// a notification, or is told (NotificationsStoredElsewhere) that another
// one did, so a live stream need not wait for its next poll.
func (a *App) NotificationWake() <-chan struct{} { return a.notified.wait() }

// NotificationsStoredElsewhere wakes the live streams: another process on
// the same database stored notifications. Without it, streams find those
// at their next poll. It never blocks.
func (a *App) NotificationsStoredElsewhere() { a.notified.notify() }

// broadcast wakes every waiter at once by closing the channel they hold.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
