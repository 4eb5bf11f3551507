package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

func testTx(t *testing.T, open Opener) {
	t.Run("outbox_commits_with_its_record", func(t *testing.T) {
		s := open(t)
		p, d := mustPatient(t, s, "p"), mustDoctor(t, s, "d")
		var rec domain.Record
		var ev domain.OutboxEvent
		err := s.WithinTx(ctx(t), func(tx ports.Repos) error {
			rec = mustRecord(t, tx, p.ID, d.ID, at(1))
			// The transaction sees its own writes.
			got, err := tx.Records().Get(ctx(t), rec.ID)
			require.NoError(t, err)
			assert.Equal(t, rec.ID, got.ID)
			ev = mustEvent(t, tx, rec, at(1))
			return nil
		})
		require.NoError(t, err)
		_, err = s.Records().Get(ctx(t), rec.ID)
		require.NoError(t, err)
		got, err := s.Outbox().Get(ctx(t), ev.ID)
		require.NoError(t, err)
		assert.Equal(t, rec.ID, got.RecordID)
	})

	t.Run("outbox_rolls_back_with_its_record", func(t *testing.T) {
		s := open(t)
		p, d := mustPatient(t, s, "p"), mustDoctor(t, s, "d")
		boom := errors.New("boom")
		err := s.WithinTx(ctx(t), func(tx ports.Repos) error {
			rec := mustRecord(t, tx, p.ID, d.ID, at(1))
			mustEvent(t, tx, rec, at(1))
			return boom
		})
		require.ErrorIs(t, err, boom)
		requireNothingStored(t, s, p.ID)
	})

	t.Run("domain_error_passes_through", func(t *testing.T) {
		s := open(t)
		err := s.WithinTx(ctx(t), func(tx ports.Repos) error { return domain.Forbidden("no") })
		requireCode(t, domain.EForbidden, err)
	})

	t.Run("panic_rolls_back", func(t *testing.T) {
		s := open(t)
		p, d := mustPatient(t, s, "p"), mustDoctor(t, s, "d")
		assert.PanicsWithValue(t, "boom", func() {
			_ = s.WithinTx(ctx(t), func(tx ports.Repos) error {
				rec := mustRecord(t, tx, p.ID, d.ID, at(1))
				mustEvent(t, tx, rec, at(1))
				panic("boom")
			})
		})
		requireNothingStored(t, s, p.ID)
		// The connection came back: the next transaction works.
		require.NoError(t, s.WithinTx(ctx(t), func(tx ports.Repos) error {
			mustRecord(t, tx, p.ID, 0, at(2))
			return nil
		}))
	})

	t.Run("canceled_context", func(t *testing.T) {
		s := open(t)
		p := mustPatient(t, s, "p")
		canceled, cancel := context.WithCancel(ctx(t))
		cancel()
		called := false
		err := s.WithinTx(canceled, func(ports.Repos) error { called = true; return nil })
		require.ErrorIs(t, err, context.Canceled)
		assert.False(t, called)
		_, err = s.Records().Get(canceled, 1)
		require.ErrorIs(t, err, context.Canceled)
		u := domain.User{Username: "x", Role: domain.RolePatient, CreatedAt: t0}
		require.ErrorIs(t, s.Users().Create(canceled, &u), context.Canceled)
		require.ErrorIs(t, s.Audit().Append(canceled, entry(1, 1, 1, at(1))), context.Canceled)
		_, err = s.Outbox().Claim(canceled, domain.SinkEmail, "A", t0, time.Minute, 1)
		require.ErrorIs(t, err, context.Canceled)
		_, err = s.Audit().Verify(canceled, nil)
		require.ErrorIs(t, err, context.Canceled)

		// Canceled inside a transaction: the transaction rolls back.
		inside, cancel := context.WithCancel(ctx(t))
		err = s.WithinTx(inside, func(tx ports.Repos) error {
			mustRecord(t, tx, p.ID, 0, at(1))
			cancel()
			r := domain.Record{PatientID: p.ID, Title: "t", Content: "c", CreatedAt: at(2), UpdatedAt: at(2)}
			return tx.Records().Create(inside, &r)
		})
		require.Error(t, err)
		requireNothingStored(t, s, p.ID)
		mustRecord(t, s, p.ID, 0, at(3)) // the store writes again
	})

	// A write waiting for another transaction gives up when its context
	// ends, instead of waiting for ever.
	t.Run("waiting_for_the_writer_honours_the_context", func(t *testing.T) {
		s := open(t)
		p := mustPatient(t, s, "p")
		held, release := make(chan struct{}), make(chan struct{})
		done := make(chan error)
		go func() {
			done <- s.WithinTx(ctx(t), func(ports.Repos) error { close(held); <-release; return nil })
		}()
		<-held
		waiting, cancel := context.WithTimeout(ctx(t), 20*time.Millisecond)
		defer cancel()
		r := domain.Record{PatientID: p.ID, Title: "t", Content: "c", CreatedAt: t0, UpdatedAt: t0}
		require.ErrorIs(t, s.Records().Create(waiting, &r), context.DeadlineExceeded)
		close(release)
		require.NoError(t, <-done)
	})

	t.Run("concurrent_writers", func(t *testing.T) {
		s := open(t)
		p, d := mustPatient(t, s, "p"), mustDoctor(t, s, "d")
		const n = 50
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs <- s.WithinTx(ctx(t), func(tx ports.Repos) error {
					rec := domain.Record{PatientID: p.ID, DoctorID: d.ID, Title: "t", Content: "c", CreatedAt: at(i), UpdatedAt: at(i)}
					if err := tx.Records().Create(ctx(t), &rec); err != nil {
						return err
					}
					e := domain.NewAssignmentEvent(rec, at(i))
					return tx.Outbox().Add(ctx(t), &e)
				})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		recs, err := s.Records().List(ctx(t), ports.RecordFilter{PatientID: p.ID}, domain.Page{Limit: 2 * n})
		require.NoError(t, err)
		assert.Len(t, recs, n)
		evs, err := s.Outbox().List(ctx(t), ports.OutboxFilter{}, domain.Page{Limit: 2 * n})
		require.NoError(t, err)
		assert.Len(t, evs, n)
	})
}

// requireNothingStored checks that patient has no record and the outbox is empty.
func requireNothingStored(t *testing.T, s ports.Store, patient int64) {
	t.Helper()
	recs, err := s.Records().List(ctx(t), ports.RecordFilter{PatientID: patient}, domain.Page{Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, recs)
	evs, err := s.Outbox().List(ctx(t), ports.OutboxFilter{}, domain.Page{Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, evs)
}
