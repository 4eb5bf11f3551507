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

// holdWriter occupies the commit loop with a unit of work until release is
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
	before := db.commits.batches.Load()

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
	// Wait until all twelve are queued, then let the commit loop go.
	require.Eventually(t, func() bool { return len(db.commits.jobs) == n }, eventually, tick)
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
	assert.Equal(t, int64(1), db.commits.batches.Load()-before, "the twelve shared one transaction")
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
	require.Eventually(t, func() bool { return len(db.commits.jobs) == 1 }, eventually, tick)
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

// A write through the DB from inside WithinTx would wait for the very
// transaction it runs in: it fails at once instead, whatever context it
// carries, and the transaction goes on. A write from another goroutine
// meanwhile still just waits its turn.
func TestWithinTx_WriteThroughTheDBInsideFailsAtOnce(t *testing.T) {
	db := mustOpenDB(t)
	p := mustPatient(t, db, "p")
	// Long enough never to end first when the guard works; short enough
	// that a hang fails the test instead of stalling the suite.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	other := make(chan error, 1)
	err := db.WithinTx(ctx, func(tx ports.Repos) error {
		r := domain.Record{PatientID: p.ID, Title: "t", Content: "c", CreatedAt: t0, UpdatedAt: t0}
		assert.ErrorIs(t, db.Records().Create(ctx, &r), errWriteInsideTx, "the same context")
		unrelated, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.ErrorIs(t, db.Records().Create(unrelated, &r), errWriteInsideTx, "an unrelated context")
		assert.ErrorIs(t, db.Audit().Append(ctx, domain.AuditEntry{At: t0}), errWriteInsideTx, "a write of several statements")
		assert.ErrorIs(t, db.WithinTx(ctx, func(ports.Repos) error { return nil }), errWriteInsideTx, "a nested transaction")
		assert.ErrorIs(t, db.Migrate(ctx), errWriteInsideTx, "migrations, on the write pool")
		_, err := db.MigrationStatus(ctx)
		assert.ErrorIs(t, err, errWriteInsideTx, "migration status, on the write pool")
		go func() { _, err := createRecord(ctx, db, p.ID, 1); other <- err }()
		return tx.Records().Create(ctx, &r)
	})
	require.NoError(t, err, "the transaction itself commits")
	require.NoError(t, ctx.Err(), "nothing waited for the deadline")
	require.NoError(t, <-other, "another goroutine's write waited and ran")
	assert.Equal(t, 2, count(t, db, "records"))
}
