package storetest

import (
	"errors"
	"sync"
	"testing"

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
