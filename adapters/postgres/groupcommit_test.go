package postgres

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

var gt0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// count is how many rows table holds.
func count(t *testing.T, db *DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.pool.QueryRow(t.Context(), `SELECT count(*) FROM `+table).Scan(&n))
	return n
}

// requireIntact verifies the audit chain and returns how many entries it
// holds.
func requireIntact(t *testing.T, db *DB) int64 {
	t.Helper()
	c, err := db.Audit().Verify(t.Context(), nil)
	require.NoError(t, err)
	require.True(t, c.OK(), "broken at %d", c.FirstBroken)
	return c.Entries
}

func auditEntry(actor, record int64, i int) domain.AuditEntry {
	return domain.AuditEntry{At: gt0.Add(time.Duration(i)), ActorID: actor, ActorRole: domain.RolePatient,
		Action: domain.ActionRecordCreate, RecordID: record, PatientID: actor, Outcome: domain.OutcomeAllowed,
		RequestID: fmt.Sprint("req-", i), RemoteAddr: "192.0.2.1"}
}

// Units of work that queue behind a running one share the next commit,
// and each one's failure or panic undoes only its own writes, audit
// entries included: the chain the others leave verifies.
func TestGroupCommit_SharedCommitIsolatesFailures(t *testing.T) {
	db := mustBenchDB(t, &tripCounter{})
	p := mustBenchUser(t, db, "p", domain.RolePatient)
	release := holdWriter(t, db)
	before := db.commits.batches.Load()

	const n = 16
	errs := make([]error, n)
	panics := make([]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			errs[i] = db.WithinTx(t.Context(), func(tx ports.Repos) error {
				if i%8 == 6 {
					return errors.New("refused before any statement")
				}
				r := domain.Record{PatientID: p.ID, Title: fmt.Sprint("r", i), Content: "c", CreatedAt: gt0, UpdatedAt: gt0}
				if err := tx.Records().Create(t.Context(), &r); err != nil {
					return err
				}
				e := domain.NewAssignmentEvent(r, gt0)
				if err := tx.Outbox().Add(t.Context(), &e); err != nil {
					return err
				}
				if err := tx.Audit().Append(t.Context(), auditEntry(p.ID, r.ID, i)); err != nil {
					return err
				}
				switch i % 8 {
				case 1:
					return errors.New("refused")
				case 2:
					panic("bug")
				case 3:
					// A statement PostgreSQL refuses (no such record), its
					// error passed over: the transaction is failed, so the
					// unit is undone all the same.
					c := domain.Comment{RecordID: 1 << 40, DoctorID: p.ID, Text: "x", CreatedAt: gt0}
					_ = tx.Comments().Create(t.Context(), &c)
				case 5:
					// A record whose INSERT goes at the unit's end, refused
					// there (no such patient).
					bad := domain.Record{PatientID: 1 << 40, Title: "x", Content: "c", CreatedAt: gt0, UpdatedAt: gt0}
					return tx.Records().Create(t.Context(), &bad)
				}
				return nil
			})
		})
	}
	// Wait until all are queued, then let the commit loop go.
	require.Eventually(t, func() bool { return len(db.commits.jobs) == n }, eventually, tick)
	release()
	wg.Wait()

	for i := range n {
		switch i % 8 {
		case 6:
			assert.EqualError(t, errs[i], "refused before any statement")
		case 1:
			assert.EqualError(t, errs[i], "refused")
		case 2:
			assert.Equal(t, "bug", panics[i], "the panic reaches its own caller")
		case 3, 5:
			assert.ErrorContains(t, errs[i], "violates foreign key constraint")
		default:
			assert.NoError(t, errs[i])
			assert.Nil(t, panics[i])
		}
	}
	const ok = 3 * n / 8
	assert.Equal(t, int64(1), db.commits.batches.Load()-before, "the units shared one transaction")
	assert.Equal(t, ok, count(t, db, "records"), "only the successful units' writes committed")
	assert.Equal(t, ok, count(t, db, "outbox"))
	assert.Equal(t, int64(ok), requireIntact(t, db), "their audit entries, chained without a gap")

	// The next batch goes on from the head they left.
	require.NoError(t, db.Audit().Append(t.Context(), auditEntry(p.ID, 0, n)))
	assert.Equal(t, int64(ok+1), requireIntact(t, db))
}

// A unit whose caller gave up while it was queued never runs.
func TestGroupCommit_AbandonedUnitNeverRuns(t *testing.T) {
	db := mustBenchDB(t, &tripCounter{})
	p := mustBenchUser(t, db, "p", domain.RolePatient)
	release := holdWriter(t, db)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	ran := false
	go func() {
		done <- db.WithinTx(ctx, func(tx ports.Repos) error {
			ran = true
			r := domain.Record{PatientID: p.ID, Title: "t", Content: "c", CreatedAt: gt0, UpdatedAt: gt0}
			return tx.Records().Create(ctx, &r)
		})
	}()
	require.Eventually(t, func() bool { return len(db.commits.jobs) == 1 }, eventually, tick)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	release()
	require.NoError(t, createUnit(t.Context(), db, p.ID, 0, 1))
	assert.False(t, ran)
	assert.Equal(t, 1, count(t, db, "records"), "the abandoned unit wrote nothing")
}

// A unit whose context ends while it runs fails at its next statement,
// and only it is undone.
func TestGroupCommit_ContextEndingInsideAUnit(t *testing.T) {
	db := mustBenchDB(t, &tripCounter{})
	p := mustBenchUser(t, db, "p", domain.RolePatient)
	d := mustBenchUser(t, db, "d", domain.RoleDoctor)
	release := holdWriter(t, db)
	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 2)
	go func() {
		errs <- db.WithinTx(ctx, func(tx ports.Repos) error {
			r := domain.Record{PatientID: p.ID, Title: "t", Content: "c", CreatedAt: gt0, UpdatedAt: gt0}
			if err := tx.Records().Create(ctx, &r); err != nil {
				return err
			}
			cancel()
			return tx.Audit().Append(ctx, auditEntry(p.ID, r.ID, 1))
		})
	}()
	require.Eventually(t, func() bool { return len(db.commits.jobs) == 1 }, eventually, tick)
	go func() { errs <- createUnit(t.Context(), db, p.ID, d.ID, 2) }()
	require.Eventually(t, func() bool { return len(db.commits.jobs) == 2 }, eventually, tick)
	release()
	var failed int
	for range 2 {
		if err := <-errs; err != nil {
			failed++
			require.ErrorIs(t, err, context.Canceled)
		}
	}
	assert.Equal(t, 1, failed)
	assert.Equal(t, 1, count(t, db, "records"))
	assert.Equal(t, int64(1), requireIntact(t, db))
}

// Close lets queued units finish and refuses new ones.
func TestGroupCommit_CloseDrainsThenRefuses(t *testing.T) {
	db := mustBenchDB(t, &tripCounter{})
	p := mustBenchUser(t, db, "p", domain.RolePatient)
	release := holdWriter(t, db)
	queued := make(chan error, 1)
	go func() { queued <- createUnit(t.Context(), db, p.ID, 0, 1) }()
	require.Eventually(t, func() bool { return len(db.commits.jobs) == 1 }, eventually, tick)
	closed := make(chan struct{})
	go func() { db.commits.close(); close(closed) }()
	release()
	<-closed
	require.NoError(t, <-queued, "queued before close: it ran")
	err := db.WithinTx(t.Context(), func(ports.Repos) error { return nil })
	assert.ErrorIs(t, err, errClosed)
	var n int
	require.NoError(t, db.pool.QueryRow(t.Context(), `SELECT count(*) FROM records`).Scan(&n))
	assert.Equal(t, 1, n)
}

// A write through the DB from inside WithinTx would wait for the very
// transaction it runs in: it fails at once instead, and the transaction
// goes on. A write from another goroutine meanwhile still waits its turn.
func TestWithinTx_WriteThroughTheDBInsideFailsAtOnce(t *testing.T) {
	db := mustBenchDB(t, &tripCounter{})
	p := mustBenchUser(t, db, "p", domain.RolePatient)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	other := make(chan error, 1)
	err := db.WithinTx(ctx, func(tx ports.Repos) error {
		r := domain.Record{PatientID: p.ID, Title: "t", Content: "c", CreatedAt: gt0, UpdatedAt: gt0}
		assert.ErrorIs(t, db.Records().Create(ctx, &r), errWriteInsideTx, "the same context")
		assert.ErrorIs(t, db.Audit().Append(ctx, auditEntry(p.ID, 0, 1)), errWriteInsideTx)
		assert.ErrorIs(t, db.WithinTx(ctx, func(ports.Repos) error { return nil }), errWriteInsideTx, "a nested transaction")
		go func() { other <- createUnit(ctx, db, p.ID, 0, 2) }()
		return tx.Records().Create(ctx, &r)
	})
	require.NoError(t, err, "the transaction itself commits")
	require.NoError(t, ctx.Err(), "nothing waited for the deadline")
	require.NoError(t, <-other, "another goroutine's write waited and ran")
	assert.Equal(t, 2, count(t, db, "records"))
}

// Two stores on one database (two processes) writing at once: their
// batches take turns under the advisory lock, so the audit chain has one
// head and verifies, every entry in it, and every acknowledged write is
// there.
func TestGroupCommit_TwoStoresOneDatabase(t *testing.T) {
	a := mustBenchDB(t, &tripCounter{})
	b, err := Open(t.Context(), a.connConfig.ConnString())
	require.NoError(t, err)
	t.Cleanup(b.Close)
	key := make(domain.AuditKey, domain.MinAuditKeyLen)
	require.NoError(t, a.UseAuditKey(t.Context(), key, true))
	require.NoError(t, b.UseAuditKey(t.Context(), key, false))
	p := mustBenchUser(t, a, "p", domain.RolePatient)
	d := mustBenchUser(t, a, "d", domain.RoleDoctor)

	const writers, each = 24, 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers*each)
	for _, db := range []*DB{a, b} {
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					errs <- createUnit(t.Context(), db, p.ID, d.ID, int64(w*each+i))
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	const total = 2 * writers * each
	assert.Equal(t, total, count(t, a, "records"))
	assert.Equal(t, total, count(t, a, "outbox"))
	assert.Equal(t, int64(total), requireIntact(t, a))
	assert.Equal(t, int64(total), requireIntact(t, b))
	// Record ids are taken under the writer lock and the unused given
	// back: with no unit failing they run from 1 without a gap, and the
	// next id follows them.
	var lo, hi int64
	require.NoError(t, a.pool.QueryRow(t.Context(), `SELECT min(id), max(id) FROM records`).Scan(&lo, &hi))
	assert.Equal(t, [2]int64{1, total}, [2]int64{lo, hi})
	var next int64
	require.NoError(t, a.pool.QueryRow(t.Context(), `INSERT INTO records (patient_id, title, content, created_at, updated_at)
		VALUES ($1, 't', 'c', 0, 0) RETURNING id`, p.ID).Scan(&next))
	assert.Equal(t, int64(total+1), next)
	for _, db := range []*DB{a, b} {
		assert.Less(t, db.commits.batches.Load(), int64(total), "units shared commits")
	}
}

// A write of one store waits while another store on the database holds
// the writer lock, and gives up when its context ends.
func TestGroupCommit_WaitsForAnotherStoresTransaction(t *testing.T) {
	a := mustBenchDB(t, &tripCounter{})
	b, err := Open(t.Context(), a.connConfig.ConnString())
	require.NoError(t, err)
	t.Cleanup(b.Close)
	p := mustBenchUser(t, a, "p", domain.RolePatient)
	release := holdWriter(t, a)
	waiting, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, createUnit(waiting, b, p.ID, 0, 1), context.DeadlineExceeded)
	release()
	require.NoError(t, createUnit(t.Context(), b, p.ID, 0, 2), "b writes once a is done")
	assert.Equal(t, 1, count(t, a, "records"))
}
