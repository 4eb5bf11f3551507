package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

const (
	inApp = domain.SinkNotification
	email = domain.SinkEmail
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

func result(id int64, sink, outcome, msg string, when, next time.Time) domain.DeliveryResult {
	return domain.DeliveryResult{EventID: id, Sink: sink, Outcome: outcome, Error: msg, At: when, Next: next}
}

func mustRecordResults(t *testing.T, s ports.Store, owner string, want int, rs ...domain.DeliveryResult) {
	t.Helper()
	n, err := s.Outbox().Record(ctx(t), owner, rs)
	require.NoError(t, err)
	require.Equal(t, want, n, "results stored")
}

func mustGet(t *testing.T, s ports.Store, id int64) domain.OutboxEvent {
	t.Helper()
	e, err := s.Outbox().Get(ctx(t), id)
	require.NoError(t, err)
	return e
}

func delivery(t *testing.T, e domain.OutboxEvent, sink string) domain.Delivery {
	t.Helper()
	d, ok := e.Delivery(sink)
	require.True(t, ok, "event %d has a %s delivery", e.ID, sink)
	return d
}

func testOutbox(t *testing.T, open Opener) {
	const lease = 30 * time.Second

	t.Run("add_and_get", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		e := mustEvent(t, s, r, at(1))
		got := mustGet(t, s, e.ID)
		requireSameTime(t, e.NextAttemptAt, got.NextAttemptAt)
		requireSameTime(t, e.CreatedAt, got.CreatedAt)
		assert.Equal(t, domain.KindDoctorAssigned, got.Kind)
		assert.Equal(t, []any{r.ID, r.PatientID, r.DoctorID, domain.OutboxPending, 0},
			[]any{got.RecordID, got.PatientID, got.DoctorID, got.State, got.Attempts})
		assert.Nil(t, got.DeliveredAt)
		require.Len(t, got.Deliveries, 2)
		for _, sink := range []string{inApp, email} {
			d := delivery(t, got, sink)
			assert.Equal(t, []any{e.ID, domain.OutboxPending, 0, ""}, []any{d.EventID, d.State, d.Attempts, d.LastError})
			requireSameTime(t, at(1), d.NextAttemptAt)
			requireSameTime(t, at(1), d.Since)
		}
		_, err := s.Outbox().Get(ctx(t), 999)
		requireCode(t, domain.ENotFound, err)
	})

	t.Run("claim_leases_each_sink_to_one_owner", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		e1 := mustEvent(t, s, r, at(1))
		e2 := mustEvent(t, s, r, at(2))
		e3 := mustEvent(t, s, r, at(3))
		notDue := mustEvent(t, s, r, at(1000))
		now := at(10)

		a, err := s.Outbox().Claim(ctx(t), email, "A", now, lease, 2)
		require.NoError(t, err)
		assert.Equal(t, []int64{e1.ID, e2.ID}, eventIDs(a), "oldest due first")
		require.Len(t, a[0].Deliveries, 1)
		assert.Equal(t, email, a[0].Deliveries[0].Sink, "the claimed delivery alone")
		b, err := s.Outbox().Claim(ctx(t), email, "B", now, lease, 10)
		require.NoError(t, err)
		assert.Equal(t, []int64{e3.ID}, eventIDs(b), "leased deliveries are skipped")
		// The other sink is claimed on its own: email leases do not hold it.
		n, err := s.Outbox().Claim(ctx(t), inApp, "B", now, lease, 10)
		require.NoError(t, err)
		assert.Equal(t, []int64{e1.ID, e2.ID, e3.ID}, eventIDs(n))
		b, err = s.Outbox().Claim(ctx(t), email, "B", now.Add(lease-time.Second), lease, 10)
		require.NoError(t, err)
		assert.Empty(t, b)

		// The leases run out: another owner may take the deliveries over,
		// and the first owner's results no longer count.
		later := now.Add(lease)
		b, err = s.Outbox().Claim(ctx(t), email, "B", later, lease, 2)
		require.NoError(t, err)
		assert.Equal(t, []int64{e1.ID, e2.ID}, eventIDs(b))
		mustRecordResults(t, s, "A", 0, result(e1.ID, email, domain.OutcomeDelivered, "", later, time.Time{}))
		mustRecordResults(t, s, "B", 1, result(e1.ID, email, domain.OutcomeDelivered, "", later, time.Time{}))
		got := mustGet(t, s, e1.ID)
		assert.Equal(t, domain.OutboxDelivered, delivery(t, got, email).State)
		assert.Equal(t, domain.OutboxPending, got.State, "its notification is still pending")
		mustRecordResults(t, s, "B", 0, result(e1.ID, email, domain.OutcomeDelivered, "", later, time.Time{}))

		all, err := s.Outbox().Claim(ctx(t), email, "C", at(5000), lease, 10)
		require.NoError(t, err)
		assert.Equal(t, []int64{e2.ID, e3.ID, notDue.ID}, eventIDs(all), "delivered deliveries are never claimed")
	})

	t.Run("claim_nothing_due", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		mustEvent(t, s, r, at(100))
		got, err := s.Outbox().Claim(ctx(t), inApp, "A", at(99), lease, 10)
		require.NoError(t, err)
		assert.Empty(t, got)
	})

	t.Run("results_summary_dead_retry", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		e := mustEvent(t, s, r, at(1))
		_, err := s.Outbox().Claim(ctx(t), inApp, "A", at(2), lease, 1)
		require.NoError(t, err)
		_, err = s.Outbox().Claim(ctx(t), email, "A", at(2), lease, 1)
		require.NoError(t, err)
		mustRecordResults(t, s, "A", 2,
			result(e.ID, inApp, domain.OutcomeDelivered, "", at(3), time.Time{}),
			result(e.ID, email, domain.OutcomeRetry, "smtp down", at(3), at(60)))

		got := mustGet(t, s, e.ID)
		assert.Equal(t, domain.OutboxPending, got.State)
		assert.Equal(t, 1, got.Attempts)
		assert.Equal(t, "email: smtp down", got.LastError)
		requireSameTime(t, at(60), got.NextAttemptAt)
		n := delivery(t, got, inApp)
		assert.Equal(t, []any{domain.OutboxDelivered, 1, ""}, []any{n.State, n.Attempts, n.LastError})
		require.NotNil(t, n.DeliveredAt)
		requireSameTime(t, at(3), *n.DeliveredAt)

		none, err := s.Outbox().Claim(ctx(t), email, "B", at(59), lease, 10)
		require.NoError(t, err)
		assert.Empty(t, none, "not before the next attempt")
		again, err := s.Outbox().Claim(ctx(t), email, "B", at(60), lease, 10)
		require.NoError(t, err)
		require.Equal(t, []int64{e.ID}, eventIDs(again), "due again, the failed lease released")
		assert.Equal(t, 1, again[0].Deliveries[0].Attempts)

		mustRecordResults(t, s, "B", 1, result(e.ID, email, domain.OutcomeDead, "550 no such user", at(61), time.Time{}))
		got = mustGet(t, s, e.ID)
		assert.Equal(t, domain.OutboxDead, got.State)
		assert.Equal(t, 2, got.Attempts)
		assert.Equal(t, "email: 550 no such user", got.LastError)
		none, err = s.Outbox().Claim(ctx(t), email, "B", at(9999), lease, 10)
		require.NoError(t, err)
		assert.Empty(t, none, "dead deliveries are set aside")

		retried, err := s.Outbox().Retry(ctx(t), e.ID, at(200))
		require.NoError(t, err)
		assert.Equal(t, domain.OutboxPending, retried.State)
		d := delivery(t, retried, email)
		assert.Equal(t, []any{domain.OutboxPending, 0}, []any{d.State, d.Attempts})
		requireSameTime(t, at(200), d.NextAttemptAt)
		requireSameTime(t, at(200), d.Since) // its age counts from the retry
		assert.Equal(t, domain.OutboxDelivered, delivery(t, retried, inApp).State, "only failed sinks are repeated")

		_, err = s.Outbox().Retry(ctx(t), e.ID, at(200))
		requireCode(t, domain.EConflict, err)
		_, err = s.Outbox().Retry(ctx(t), 999, at(200))
		requireCode(t, domain.ENotFound, err)

		none, err = s.Outbox().Claim(ctx(t), inApp, "C", at(200), lease, 10)
		require.NoError(t, err)
		assert.Empty(t, none)
		back, err := s.Outbox().Claim(ctx(t), email, "C", at(200), lease, 10)
		require.NoError(t, err)
		assert.Equal(t, []int64{e.ID}, eventIDs(back))
		mustRecordResults(t, s, "C", 1, result(e.ID, email, domain.OutcomeDelivered, "", at(201), time.Time{}))
		got = mustGet(t, s, e.ID)
		assert.Equal(t, domain.OutboxDelivered, got.State)
		assert.Empty(t, got.LastError, "a delivered event has its last error cleared")
		assert.Empty(t, delivery(t, got, email).LastError)
		require.NotNil(t, got.DeliveredAt)
		requireSameTime(t, at(201), *got.DeliveredAt)
	})

	t.Run("release", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		e := mustEvent(t, s, r, at(1))
		_, err := s.Outbox().Claim(ctx(t), email, "A", at(2), lease, 1)
		require.NoError(t, err)
		require.NoError(t, s.Outbox().Release(ctx(t), "B", email, []int64{e.ID}), "not B's: nothing happens")
		none, err := s.Outbox().Claim(ctx(t), email, "B", at(2), lease, 1)
		require.NoError(t, err)
		assert.Empty(t, none)

		require.NoError(t, s.Outbox().Release(ctx(t), "A", email, []int64{e.ID}))
		got, err := s.Outbox().Claim(ctx(t), email, "B", at(2), lease, 1)
		require.NoError(t, err)
		assert.Equal(t, []int64{e.ID}, eventIDs(got))
		assert.Equal(t, 0, got[0].Deliveries[0].Attempts, "a release is not an attempt")
	})

	t.Run("list_by_state_and_sink_newest_first", func(t *testing.T) {
		s, r := outboxFixture(t, open)
		delivered := mustEvent(t, s, r, at(1))
		dead := mustEvent(t, s, r, at(2))
		p1 := mustEvent(t, s, r, at(3))
		p2 := mustEvent(t, s, r, at(3))
		for _, sink := range []string{inApp, email} {
			_, err := s.Outbox().Claim(ctx(t), sink, "A", at(2), lease, 2)
			require.NoError(t, err)
		}
		mustRecordResults(t, s, "A", 4,
			result(delivered.ID, inApp, domain.OutcomeDelivered, "", at(4), time.Time{}),
			result(delivered.ID, email, domain.OutcomeDelivered, "", at(4), time.Time{}),
			result(dead.ID, inApp, domain.OutcomeDelivered, "", at(4), time.Time{}),
			result(dead.ID, email, domain.OutcomeDead, "boom", at(4), time.Time{}))
		for _, tc := range []struct {
			f    ports.OutboxFilter
			want []int64
		}{
			{ports.OutboxFilter{}, []int64{p2.ID, p1.ID, dead.ID, delivered.ID}},
			{ports.OutboxFilter{State: domain.OutboxPending}, []int64{p2.ID, p1.ID}},
			{ports.OutboxFilter{State: domain.OutboxDelivered}, []int64{delivered.ID}},
			{ports.OutboxFilter{State: domain.OutboxDead}, []int64{dead.ID}},
			{ports.OutboxFilter{Sink: inApp, State: domain.OutboxDelivered}, []int64{dead.ID, delivered.ID}},
			{ports.OutboxFilter{Sink: email, State: domain.OutboxDead}, []int64{dead.ID}},
			{ports.OutboxFilter{Sink: email}, []int64{p2.ID, p1.ID, dead.ID, delivered.ID}},
		} {
			got := walk(t, 1, func(pg domain.Page) ([]domain.OutboxEvent, error) {
				return s.Outbox().List(ctx(t), tc.f, pg)
			}, func(e domain.OutboxEvent) (time.Time, int64) { return e.CreatedAt, e.ID })
			assert.Equal(t, tc.want, got, "filter %+v", tc.f)
		}
		page, err := s.Outbox().List(ctx(t), ports.OutboxFilter{}, domain.Page{Limit: 10})
		require.NoError(t, err)
		for _, e := range page {
			assert.Len(t, e.Deliveries, 2, "a list carries each event's deliveries")
		}
	})
}
