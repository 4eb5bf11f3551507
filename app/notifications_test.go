package app

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

// mustDeliver stores the notification of a fresh event of r, as the
// delivery use case does.
func (e *testEnv) mustDeliver(t *testing.T, r domain.Record) domain.OutboxEvent {
	t.Helper()
	ev := domain.NewAssignmentEvent(r, e.clock.Now())
	require.NoError(t, e.db.Outbox().Add(ctx, &ev))
	n := domain.NotificationFor(ev)
	_, err := e.db.Notifications().Create(ctx, &n)
	require.NoError(t, err)
	e.clock.Advance(time.Millisecond)
	return ev
}

func TestNotifications(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	ev1 := e.mustDeliver(t, c.record)
	ev2 := e.mustDeliver(t, e.mustRecord(t, c.otherPatient, c.doctor))
	e.mustDeliver(t, e.mustRecord(t, c.owner, c.otherDoctor))

	got, next, err := e.app.Notifications(ctx, actorOf(c.doctor), domain.Page{})
	require.NoError(t, err)
	assert.Nil(t, next)
	require.Len(t, got, 2)
	assert.Equal(t, []int64{ev2.ID, ev1.ID}, []int64{got[0].EventID, got[1].EventID}, "newest first, only the caller's")

	t.Run("paginated", func(t *testing.T) {
		page1, next, err := e.app.Notifications(ctx, actorOf(c.doctor), domain.Page{Limit: 1})
		require.NoError(t, err)
		assert.Equal(t, got[:1], page1)
		require.NotNil(t, next)
		page2, next, err := e.app.Notifications(ctx, actorOf(c.doctor), domain.Page{Limit: 1, After: next})
		require.NoError(t, err)
		assert.Equal(t, got[1:], page2)
		assert.Nil(t, next)
	})

	t.Run("mark_read", func(t *testing.T) {
		now := e.clock.Now()
		n, err := e.app.MarkNotificationRead(ctx, actorOf(c.doctor), got[0].ID)
		require.NoError(t, err)
		require.NotNil(t, n.ReadAt)
		assert.Equal(t, now, *n.ReadAt)
		// Another user's notification is not found.
		_, err = e.app.MarkNotificationRead(ctx, actorOf(c.otherDoctor), got[1].ID)
		requireCode(t, err, domain.ENotFound, "")
		_, err = e.app.MarkNotificationRead(ctx, actorOf(c.doctor), 9999)
		requireCode(t, err, domain.ENotFound, "")
	})

	t.Run("patient_has_none", func(t *testing.T) {
		got, _, err := e.app.Notifications(ctx, actorOf(c.owner), domain.Page{})
		require.NoError(t, err)
		assert.Empty(t, got)
	})

	t.Run("store_fails", func(t *testing.T) {
		e.db.Fail = failOn(errBoom, "Notifications.List")
		defer func() { e.db.Fail = nil }()
		_, _, err := e.app.Notifications(ctx, actorOf(c.doctor), domain.Page{})
		assert.ErrorIs(t, err, errBoom)
	})
}

// Another process's notifications wake the live streams of this one, as
// this process's own deliveries do.
func TestNotificationsStoredElsewhere_WakesStreams(t *testing.T) {
	e := newEnv(t, Config{})
	wake := e.app.NotificationWake()
	select {
	case <-wake:
		t.Fatal("woken before anything was stored")
	default:
	}
	e.app.NotificationsStoredElsewhere()
	select {
	case <-wake:
	default:
		t.Fatal("not woken")
	}
	select {
	case <-e.app.NotificationWake():
		t.Fatal("a later waiter waits for the next one")
	default:
	}
}
