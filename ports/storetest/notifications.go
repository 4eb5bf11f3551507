package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

func testNotifications(t *testing.T, open Opener) {
	s := open(t)
	p, d, d2 := mustPatient(t, s, "p"), mustDoctor(t, s, "d"), mustDoctor(t, s, "d2")
	add := func(user, event int64, when time.Time) (domain.Notification, bool) {
		t.Helper()
		n := domain.Notification{UserID: user, Kind: domain.KindDoctorAssigned, RecordID: 7, PatientID: p.ID, EventID: event, CreatedAt: when}
		created, err := s.Notifications().Create(ctx(t), &n)
		require.NoError(t, err)
		require.NotZero(t, n.ID)
		return n, created
	}
	n1, created := add(d.ID, 1, at(1))
	require.True(t, created)
	n2, _ := add(d.ID, 2, at(2))
	n3, _ := add(d2.ID, 3, at(2))
	n4, _ := add(d.ID, 4, at(2))

	t.Run("idempotent_per_event", func(t *testing.T) {
		again, created := add(d.ID, 1, at(9))
		assert.False(t, created)
		assert.Equal(t, n1.ID, again.ID)
		got, err := s.Notifications().List(ctx(t), d.ID, domain.Page{Limit: 10})
		require.NoError(t, err)
		assert.Len(t, got, 3)
	})

	t.Run("list_own_newest_first", func(t *testing.T) {
		got := walk(t, 1, func(pg domain.Page) ([]domain.Notification, error) {
			return s.Notifications().List(ctx(t), d.ID, pg)
		}, func(n domain.Notification) (time.Time, int64) { return n.CreatedAt, n.ID })
		assert.Equal(t, []int64{n4.ID, n2.ID, n1.ID}, got)
		mine, err := s.Notifications().List(ctx(t), d2.ID, domain.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, mine, 1)
		requireSameTime(t, n3.CreatedAt, mine[0].CreatedAt)
		mine[0].CreatedAt = n3.CreatedAt
		assert.Equal(t, n3, mine[0])
	})

	t.Run("after_in_id_order", func(t *testing.T) {
		got, err := s.Notifications().After(ctx(t), d.ID, 0, 10)
		require.NoError(t, err)
		var ids []int64
		for _, n := range got {
			ids = append(ids, n.ID)
		}
		assert.Equal(t, []int64{n1.ID, n2.ID, n4.ID}, ids)
		got, err = s.Notifications().After(ctx(t), d.ID, n1.ID, 1)
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, n2.ID, got[0].ID)
		got, err = s.Notifications().After(ctx(t), d.ID, n4.ID, 10)
		require.NoError(t, err)
		assert.Empty(t, got)
		got, err = s.Notifications().After(ctx(t), d2.ID, 0, 10)
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, n3.ID, got[0].ID)
	})

	t.Run("mark_read_only_by_owner_once", func(t *testing.T) {
		_, err := s.Notifications().MarkRead(ctx(t), d2.ID, n1.ID, at(10))
		requireCode(t, domain.ENotFound, err)
		_, err = s.Notifications().MarkRead(ctx(t), d.ID, 999, at(10))
		requireCode(t, domain.ENotFound, err)

		got, err := s.Notifications().MarkRead(ctx(t), d.ID, n1.ID, at(10))
		require.NoError(t, err)
		assert.Equal(t, n1.ID, got.ID)
		require.NotNil(t, got.ReadAt)
		requireSameTime(t, at(10), *got.ReadAt)

		got, err = s.Notifications().MarkRead(ctx(t), d.ID, n1.ID, at(20))
		require.NoError(t, err)
		requireSameTime(t, at(10), *got.ReadAt)

		other, err := s.Notifications().List(ctx(t), d.ID, domain.Page{Limit: 10})
		require.NoError(t, err)
		for _, n := range other {
			if n.ID != n1.ID {
				assert.Nil(t, n.ReadAt)
			}
		}
	})
}
