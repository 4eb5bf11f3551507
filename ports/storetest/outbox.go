package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

func eventIDs(es []domain.OutboxEvent) []int64 {
	return ids(es, func(e domain.OutboxEvent) int64 { return e.ID })
}

// outboxFixture is a store with an assigned record to hang events on.
func outboxFixture(t *testing.T, open Opener) (ports.Store, domain.Record) {
	t.Helper()
	s := open(t)
	p, d := mustPatient(t, s, "p"), mustDoctor(t, s, "d")
	return s, mustRecord(t, s, p.ID, d.ID, at(0))
}

func testOutbox(t *testing.T, open Opener) {
	const lease = 30 * time.Second

	t.Run("add_and_get", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		e := mustEvent(t, s, r, at(1))
		got, err := s.Outbox().Get(ctx(t), e.ID)
		require.NoError(t, err)
		requireSameTime(t, e.NextAttemptAt, got.NextAttemptAt)
		requireSameTime(t, e.CreatedAt, got.CreatedAt)
		assert.Equal(t, domain.KindDoctorAssigned, got.Kind)
		assert.Equal(t, []any{r.ID, r.PatientID, r.DoctorID, domain.OutboxPending, 0},
			[]any{got.RecordID, got.PatientID, got.DoctorID, got.State, got.Attempts})
		assert.Nil(t, got.DeliveredAt)
		assert.Empty(t, got.Done)
		_, err = s.Outbox().Get(ctx(t), 999)
		requireCode(t, domain.ENotFound, err)
	})

	t.Run("claim_leases_to_one_owner", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		e1 := mustEvent(t, s, r, at(1))
		e2 := mustEvent(t, s, r, at(2))
		e3 := mustEvent(t, s, r, at(3))
		notDue := mustEvent(t, s, r, at(1000))
		now := at(10)

		a, err := s.Outbox().Claim(ctx(t), "A", now, lease, 2)
		require.NoError(t, err)
		assert.Equal(t, []int64{e1.ID, e2.ID}, eventIDs(a), "oldest due first")
		b, err := s.Outbox().Claim(ctx(t), "B", now, lease, 10)
		require.NoError(t, err)
		assert.Equal(t, []int64{e3.ID}, eventIDs(b), "leased events are skipped")
		b, err = s.Outbox().Claim(ctx(t), "B", now.Add(lease-time.Second), lease, 10)
		require.NoError(t, err)
		assert.Empty(t, b)

		// The leases run out: another owner may take the events over, and
		// the first owner can no longer record anything about them.
		later := now.Add(lease)
		b, err = s.Outbox().Claim(ctx(t), "B", later, lease, 2)
		require.NoError(t, err)
		assert.Equal(t, []int64{e1.ID, e2.ID}, eventIDs(b))
		requireCode(t, domain.EConflict, s.Outbox().Delivered(ctx(t), "A", e1.ID, later))
		requireCode(t, domain.EConflict, s.Outbox().MarkSinkDone(ctx(t), "A", e1.ID, "email"))
		requireCode(t, domain.EConflict, s.Outbox().Failed(ctx(t), "A", e1.ID, "x", later, false))

		require.NoError(t, s.Outbox().Delivered(ctx(t), "B", e1.ID, later))
		got, err := s.Outbox().Get(ctx(t), e1.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.OutboxDelivered, got.State)
		require.NotNil(t, got.DeliveredAt)
		requireSameTime(t, later, *got.DeliveredAt)
		requireCode(t, domain.EConflict, s.Outbox().Delivered(ctx(t), "B", e1.ID, later))
		requireCode(t, domain.ENotFound, s.Outbox().Delivered(ctx(t), "B", 999, later))

		all, err := s.Outbox().Claim(ctx(t), "C", at(5000), lease, 10)
		require.NoError(t, err)
		assert.Equal(t, []int64{e2.ID, e3.ID, notDue.ID}, eventIDs(all), "delivered events are never claimed")
	})

	t.Run("claim_nothing_due", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		mustEvent(t, s, r, at(100))
		got, err := s.Outbox().Claim(ctx(t), "A", at(99), lease, 10)
		require.NoError(t, err)
		assert.Empty(t, got)
	})

	t.Run("sinks_done_are_remembered", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		e := mustEvent(t, s, r, at(1))
		_, err := s.Outbox().Claim(ctx(t), "A", at(2), lease, 1)
		require.NoError(t, err)
		for _, sink := range []string{"notification", "notification", "email"} {
			require.NoError(t, s.Outbox().MarkSinkDone(ctx(t), "A", e.ID, sink))
		}
		got, err := s.Outbox().Get(ctx(t), e.ID)
		require.NoError(t, err)
		assert.Equal(t, []string{"notification", "email"}, got.Done)
		assert.True(t, got.DeliveredTo("email"))
	})

	t.Run("failed_dead_retry", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		e := mustEvent(t, s, r, at(1))
		_, err := s.Outbox().Claim(ctx(t), "A", at(2), lease, 1)
		require.NoError(t, err)
		require.NoError(t, s.Outbox().MarkSinkDone(ctx(t), "A", e.ID, "notification"))
		require.NoError(t, s.Outbox().Failed(ctx(t), "A", e.ID, "smtp down", at(60), false))

		got, err := s.Outbox().Get(ctx(t), e.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.OutboxPending, got.State)
		assert.Equal(t, 1, got.Attempts)
		assert.Equal(t, "smtp down", got.LastError)
		requireSameTime(t, at(60), got.NextAttemptAt)

		none, err := s.Outbox().Claim(ctx(t), "B", at(59), lease, 10)
		require.NoError(t, err)
		assert.Empty(t, none, "not before the next attempt")
		again, err := s.Outbox().Claim(ctx(t), "B", at(60), lease, 10)
		require.NoError(t, err)
		require.Equal(t, []int64{e.ID}, eventIDs(again), "due again, the failed lease released")

		require.NoError(t, s.Outbox().Failed(ctx(t), "B", e.ID, "still down", at(120), true))
		got, err = s.Outbox().Get(ctx(t), e.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.OutboxDead, got.State)
		assert.Equal(t, 2, got.Attempts)
		none, err = s.Outbox().Claim(ctx(t), "B", at(9999), lease, 10)
		require.NoError(t, err)
		assert.Empty(t, none, "dead events are set aside")

		retried, err := s.Outbox().Retry(ctx(t), e.ID, at(200))
		require.NoError(t, err)
		assert.Equal(t, domain.OutboxPending, retried.State)
		assert.Equal(t, 0, retried.Attempts)
		requireSameTime(t, at(200), retried.NextAttemptAt)
		assert.Equal(t, []string{"notification"}, retried.Done, "only failed sinks are repeated")

		_, err = s.Outbox().Retry(ctx(t), e.ID, at(200))
		requireCode(t, domain.EConflict, err)
		_, err = s.Outbox().Retry(ctx(t), 999, at(200))
		requireCode(t, domain.ENotFound, err)

		back, err := s.Outbox().Claim(ctx(t), "C", at(200), lease, 10)
		require.NoError(t, err)
		assert.Equal(t, []int64{e.ID}, eventIDs(back))
	})

	t.Run("release", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		e := mustEvent(t, s, r, at(1))
		_, err := s.Outbox().Claim(ctx(t), "A", at(2), lease, 1)
		require.NoError(t, err)
		require.NoError(t, s.Outbox().Release(ctx(t), "B", e.ID), "not B's: nothing happens")
		none, err := s.Outbox().Claim(ctx(t), "B", at(2), lease, 1)
		require.NoError(t, err)
		assert.Empty(t, none)

		require.NoError(t, s.Outbox().Release(ctx(t), "A", e.ID))
		got, err := s.Outbox().Claim(ctx(t), "B", at(2), lease, 1)
		require.NoError(t, err)
		assert.Equal(t, []int64{e.ID}, eventIDs(got))
		assert.Equal(t, 0, got[0].Attempts, "a release is not an attempt")
	})

	t.Run("list_by_state_newest_first", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		delivered := mustEvent(t, s, r, at(1))
		dead := mustEvent(t, s, r, at(2))
		p1 := mustEvent(t, s, r, at(3))
		p2 := mustEvent(t, s, r, at(3))
		_, err := s.Outbox().Claim(ctx(t), "A", at(2), lease, 2)
		require.NoError(t, err)
		require.NoError(t, s.Outbox().Delivered(ctx(t), "A", delivered.ID, at(4)))
		require.NoError(t, s.Outbox().Failed(ctx(t), "A", dead.ID, "boom", at(4), true))
		for _, tc := range []struct {
			state string
			want  []int64
		}{
			{"", []int64{p2.ID, p1.ID, dead.ID, delivered.ID}},
			{domain.OutboxPending, []int64{p2.ID, p1.ID}},
			{domain.OutboxDelivered, []int64{delivered.ID}},
			{domain.OutboxDead, []int64{dead.ID}},
		} {
			got := walk(t, 1, func(pg domain.Page) ([]domain.OutboxEvent, error) {
				return s.Outbox().List(ctx(t), tc.state, pg)
			}, func(e domain.OutboxEvent) (time.Time, int64) { return e.CreatedAt, e.ID })
			assert.Equal(t, tc.want, got, "state %q", tc.state)
		}
	})
}
