package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

const eventually, tick = 10 * time.Second, time.Millisecond

// holdWriter occupies the writer with a unit of work until release is
// closed, so that what is submitted meanwhile queues up.
func holdWriter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	held, rel, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- db.WithinTx(t.Context(), func(ports.Repos) error { close(held); <-rel; return nil })
	}()
	<-held
	return func() { close(rel); require.NoError(t, <-done) }
}

// Units of work that queue behind a running one share the next commit,
// and each one's failure or panic undoes only its own writes.
func TestGroupCommit_SharedCommitIsolatesFailures(t *testing.T) {
	db := mustOpenDB(t)
	p := mustPatient(t, db, "p")
	release := holdWriter(t, db)
	before := db.batches.Load()

	const n = 12
	errs := make([]error, n)
	panics := make([]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panics[i] = recover() }()
			errs[i] = db.WithinTx(t.Context(), func(tx ports.Repos) error {
				r := domain.Record{PatientID: p.ID, Title: fmt.Sprint("r", i), Content: "c", CreatedAt: t0, UpdatedAt: t0}
				if err := tx.Records().Create(t.Context(), &r); err != nil {
					return err
				}
				e := domain.NewAssignmentEvent(r, t0)
				if err := tx.Outbox().Add(t.Context(), &e); err != nil {
					return err
				}
				switch i % 4 {
				case 1:
					return errors.New("refused")
				case 2:
					panic("bug")
				}
				return nil
			})
		}()
	}
	// Wait until all twelve are queued, then let the writer go.
	require.Eventually(t, func() bool { return len(db.jobs) == n }, eventually, tick)
	release()
	wg.Wait()

	for i := range n {
		switch i % 4 {
		case 1:
			assert.EqualError(t, errs[i], "refused")
		case 2:
			assert.Equal(t, "bug", panics[i], "the panic reaches its own caller")
		default:
			assert.NoError(t, errs[i])
			assert.Nil(t, panics[i])
		}
	}
	assert.Equal(t, int64(1), db.batches.Load()-before, "the twelve shared one transaction")
	assert.Equal(t, n/2, count(t, db, "records"), "only the successful units' writes committed")
	assert.Equal(t, n/2, count(t, db, "outbox"))
}

// A unit whose caller gave up while it was queued never runs.
func TestGroupCommit_AbandonedUnitNeverRuns(t *testing.T) {
	db := mustOpenDB(t)
	p := mustPatient(t, db, "p")
	release := holdWriter(t, db)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := createRecord(ctx, db, p.ID, 1); done <- err }()
	require.Eventually(t, func() bool { return len(db.jobs) == 1 }, eventually, tick)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	release()
	_, err := createRecord(t.Context(), db, p.ID, 2)
	require.NoError(t, err)
	assert.Equal(t, 1, count(t, db, "records"), "the abandoned unit wrote nothing")
}

// Close lets queued units finish and refuses new ones.
func TestGroupCommit_CloseDrainsThenRefuses(t *testing.T) {
	db, _ := mustOpenDBAt(t)
	p := mustPatient(t, db, "p")
	_, err := createRecord(t.Context(), db, p.ID, 1)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	err = db.WithinTx(t.Context(), func(ports.Repos) error { return nil })
	assert.ErrorIs(t, err, errClosed)
}
