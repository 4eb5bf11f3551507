package outbox_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/outbox"
	"healthrecord/adapters/sqlite"
	"healthrecord/domain"
	"healthrecord/ports"
)

// mustOpenDB opens (and migrates, when migrate is set) the SQLite file at path.
func mustOpenDB(t *testing.T, path string, migrate bool) *sqlite.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	if migrate {
		require.NoError(t, db.Migrate(ctx))
	}
	return db
}

// Two dispatchers, each with its own connection pools as two processes
// would have, share one SQLite file: the leases taken in SQL must keep them
// from ever running the same attempt.
func TestDispatcher_TwoDispatchersOnOneSQLiteFile(t *testing.T) {
	const total = 500
	path := filepath.Join(t.TempDir(), "healthrecord.db")
	db1 := mustOpenDB(t, path, true)
	db2 := mustOpenDB(t, path, false)
	ctx := context.Background()

	notify := newSink("notification", nil)
	// One event in five has its email fail on the first attempt, so retries
	// run beside first attempts; the notification must still go out once.
	email := newSink("email", func(_ context.Context, e domain.OutboxEvent) error {
		if e.ID%5 == 0 && e.Attempts == 0 {
			return errors.New("421 4.7.0 busy, try later")
		}
		return nil
	})
	cfg := func(owner string) outbox.Config {
		return outbox.Config{
			Owner: owner, BatchSize: 25, PollInterval: 5 * time.Millisecond,
			BaseBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		}
	}
	d1 := mustDispatcher(t, db1.Outbox(), cfg("a"), notify, email)
	d2 := mustDispatcher(t, db2.Outbox(), cfg("b"), notify, email)
	db1.OnOutboxCommit(d1.Wake)
	startRun(t, d1)
	startRun(t, d2)

	// Events arrive while both dispatchers run, in commits of ten, as
	// assignments would.
	for i := 0; i < total; i += 10 {
		require.NoError(t, db1.WithinTx(ctx, func(tx ports.Tx) error {
			for j := range 10 {
				r := domain.Record{ID: int64(i + j + 1), PatientID: 1, DoctorID: 2}
				e := domain.NewAssignmentEvent(r, time.Now())
				if err := tx.Outbox().Add(ctx, &e); err != nil {
					return err
				}
			}
			return nil
		}))
	}

	require.Eventually(t, func() bool {
		got, err := db1.Outbox().List(ctx, domain.OutboxDelivered, domain.Page{Limit: domain.MaxPageSize})
		return err == nil && len(got) == total
	}, 30*time.Second, 20*time.Millisecond)

	assert.Empty(t, notify.repeats(), "an event attempt ran twice")
	assert.Empty(t, email.repeats(), "an event attempt ran twice")
	assert.Equal(t, total, notify.delivered())
	assert.Equal(t, total, email.delivered())
	for _, state := range []string{domain.OutboxPending, domain.OutboxDead} {
		got, err := db1.Outbox().List(ctx, state, domain.Page{Limit: domain.MaxPageSize})
		require.NoError(t, err)
		assert.Empty(t, got, "events left %s", state)
	}
	for id := int64(5); id <= total; id += 5 {
		e, err := db1.Outbox().Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, 1, e.Attempts, "event %d failed once", id)
		assert.Equal(t, 1, notify.callsFor(id), "event %d: notification repeated on retry", id)
		assert.Equal(t, 2, email.callsFor(id))
	}
}
