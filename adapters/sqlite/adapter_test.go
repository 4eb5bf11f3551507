package sqlite

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/migrations"
	"healthrecord/ports"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// mustUser creates an active account with role; a doctor is approved.
func mustUser(tb testing.TB, db *DB, name string, role domain.Role) domain.User {
	tb.Helper()
	u := domain.User{Username: name, Email: name + "@example.com", Role: role, Approved: role == domain.RoleDoctor,
		Active: true, PasswordHash: "h", CreatedAt: t0}
	require.NoError(tb, db.Users().Create(tb.Context(), &u))
	return u
}

// mustPatient creates a patient account.
func mustPatient(t *testing.T, db *DB, name string) domain.User {
	t.Helper()
	return mustUser(t, db, name, domain.RolePatient)
}

// createRecord creates a record of patient with its assignment event in one
// transaction, as the app does.
func createRecord(ctx context.Context, db *DB, patient int64, i int) (int64, error) {
	var id int64
	err := db.WithinTx(ctx, func(tx ports.Repos) error {
		r := domain.Record{PatientID: patient, Title: "t", Content: "some content", CreatedAt: t0.Add(time.Duration(i)), UpdatedAt: t0}
		if err := tx.Records().Create(ctx, &r); err != nil {
			return err
		}
		id = r.ID
		e := domain.NewAssignmentEvent(r, t0)
		return tx.Outbox().Add(ctx, &e)
	})
	return id, err
}

func TestMigrations_StatusAndReady(t *testing.T) {
	db := mustOpenRaw(t, filepath.Join(t.TempDir(), "m.db"))
	ctx := t.Context()

	require.ErrorIs(t, db.Ready(ctx), errPending, "not ready before Migrate")
	st, err := db.MigrationStatus(ctx)
	require.NoError(t, err)
	embedded, err := fs.Glob(migrations.FS, "*.sql")
	require.NoError(t, err)
	require.Len(t, st, len(embedded))
	assert.Equal(t, MigrationStatus{Version: 1, Name: "00001_init.sql"}, st[0])
	assert.Equal(t, MigrationStatus{Version: 2, Name: "00002_record_version.sql"}, st[1])

	require.NoError(t, db.Migrate(ctx))
	require.NoError(t, db.Ready(ctx))
	st, err = db.MigrationStatus(ctx)
	require.NoError(t, err)
	require.Len(t, st, len(embedded))
	for _, m := range st {
		assert.True(t, m.Applied, m.Name)
		assert.False(t, m.AppliedAt.IsZero(), m.Name)
	}

	require.NoError(t, db.Migrate(ctx), "migrating again does nothing")
	require.NoError(t, db.Ready(ctx))
}

func TestMigrate_RefusesNewerDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	db := mustOpenRaw(t, path)
	ctx := t.Context()
	require.NoError(t, db.Migrate(ctx))
	_, err := db.write.ExecContext(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, 1)`)
	require.NoError(t, err)
	applied, err := db.ApplyMigrations(ctx)
	require.ErrorIs(t, err, ErrNewerDatabase)
	assert.Contains(t, err.Error(), "99999")
	assert.Empty(t, applied)
}

func TestOpen_PragmasOnEveryConnection(t *testing.T) {
	db := mustOpenDB(t)
	for _, tc := range []struct {
		name      string
		pool      func() *sqlConns
		queryOnly int
	}{
		{"write", func() *sqlConns { return &sqlConns{db.write, 1} }, 0},
		{"read", func() *sqlConns { return &sqlConns{db.read, readConns} }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.pool()
			// Hold every connection of the pool at once, so each is a distinct one.
			for i, c := range p.all(t) {
				var fk, sync, busy, qo, temp int
				var mode string
				for q, dest := range map[string]any{
					"PRAGMA foreign_keys": &fk, "PRAGMA synchronous": &sync, "PRAGMA busy_timeout": &busy,
					"PRAGMA journal_mode": &mode, "PRAGMA query_only": &qo, "PRAGMA temp_store": &temp,
				} {
					require.NoError(t, c.QueryRowContext(t.Context(), q).Scan(dest), q)
				}
				assert.Equal(t, 1, fk, "conn %d foreign_keys", i)
				assert.Equal(t, 2, sync, "conn %d synchronous FULL", i)
				assert.Equal(t, 10000, busy, "conn %d busy_timeout", i)
				assert.Equal(t, "wal", mode, "conn %d journal_mode", i)
				assert.Equal(t, tc.queryOnly, qo, "conn %d query_only", i)
				assert.Equal(t, 2, temp, "conn %d temp_store MEMORY", i)
			}
		})
	}

	t.Run("foreign_keys_enforced", func(t *testing.T) {
		r := domain.Record{PatientID: 999, Title: "t", Content: "c", CreatedAt: t0, UpdatedAt: t0}
		require.Error(t, db.Records().Create(t.Context(), &r))
	})
	t.Run("read_pool_cannot_write", func(t *testing.T) {
		_, err := db.read.ExecContext(t.Context(), `DELETE FROM users`)
		require.Error(t, err)
	})
}

func TestOpen_OwnerOnlyFiles(t *testing.T) {
	db, path := mustOpenDBAt(t)
	mustPatient(t, db, "p")
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
	}
	dest := filepath.Join(t.TempDir(), "backup.db")
	require.NoError(t, db.Backup(t.Context(), dest))
	fi, err := os.Stat(dest)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the backup holds the same health data")
}

func TestBackup_UnderConcurrentWrites(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	p := mustPatient(t, db, "p")
	var before []int64
	for i := range 200 {
		id, err := createRecord(ctx, db, p.ID, i)
		require.NoError(t, err)
		before = append(before, id)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	var writeErr error
	wg.Go(func() {
		for i := 1000; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := createRecord(ctx, db, p.ID, i); err != nil {
				writeErr = err
				return
			}
			writes.Add(1)
		}
	})
	for writes.Load() < 10 { // the writer is under way before the copy starts
		time.Sleep(time.Millisecond)
	}
	dest := filepath.Join(t.TempDir(), "backup.db")
	backupErr := db.Backup(ctx, dest)
	close(stop)
	wg.Wait()
	require.NoError(t, backupErr)
	require.NoError(t, writeErr)

	// The copy is a database of its own: migrated, intact, with every
	// record committed before the backup began.
	cp := mustOpenRaw(t, dest)
	require.NoError(t, cp.Ready(ctx))
	var ok string
	require.NoError(t, cp.read.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok))
	assert.Equal(t, "ok", ok)
	for _, id := range before {
		_, err := cp.Records().Get(ctx, id)
		require.NoError(t, err, "record %d", id)
	}
	assert.GreaterOrEqual(t, count(t, cp, "records"), len(before))
	assert.Equal(t, count(t, cp, "records"), count(t, cp, "outbox"), "a consistent snapshot")

	t.Run("refuses_to_overwrite", func(t *testing.T) {
		old, err := os.ReadFile(dest)
		require.NoError(t, err)
		require.Error(t, db.Backup(ctx, dest))
		now, err := os.ReadFile(dest)
		require.NoError(t, err)
		assert.Equal(t, old, now)
	})

	t.Run("leaves_no_temporary_files", func(t *testing.T) {
		ents, err := os.ReadDir(filepath.Dir(dest))
		require.NoError(t, err)
		for _, e := range ents {
			assert.Contains(t, []string{"backup.db", "backup.db-wal", "backup.db-shm"}, e.Name())
		}
	})
}

func TestOnOutboxCommit_OnlyAfterCommit(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	p := mustPatient(t, db, "p")
	var calls, visible atomic.Int64
	db.OnOutboxCommit(func() {
		calls.Add(1)
		// Woken after commit, a dispatcher finds the event.
		visible.Store(int64(count(t, db, "outbox")))
	})

	t.Run("commit", func(t *testing.T) {
		err := db.WithinTx(ctx, func(tx ports.Repos) error {
			r := domain.Record{PatientID: p.ID, Title: "t", Content: "c", CreatedAt: t0, UpdatedAt: t0}
			require.NoError(t, tx.Records().Create(ctx, &r))
			e := domain.NewAssignmentEvent(r, t0)
			require.NoError(t, tx.Outbox().Add(ctx, &e))
			assert.Zero(t, calls.Load(), "not before commit")
			return nil
		})
		require.NoError(t, err)
		assert.Equal(t, int64(1), calls.Load())
		assert.Equal(t, int64(1), visible.Load())
	})

	t.Run("rollback", func(t *testing.T) {
		calls.Store(0)
		err := db.WithinTx(ctx, func(tx ports.Repos) error {
			r := domain.Record{PatientID: p.ID, Title: "t", Content: "c", CreatedAt: t0, UpdatedAt: t0}
			require.NoError(t, tx.Records().Create(ctx, &r))
			e := domain.NewAssignmentEvent(r, t0)
			require.NoError(t, tx.Outbox().Add(ctx, &e))
			return errors.New("boom")
		})
		require.Error(t, err)
		assert.Zero(t, calls.Load())
	})

	t.Run("no_outbox_write", func(t *testing.T) {
		calls.Store(0)
		require.NoError(t, db.WithinTx(ctx, func(tx ports.Repos) error {
			return tx.Audit().Append(ctx, domain.AuditEntry{At: t0, ActorID: p.ID, Action: domain.ActionRecordList})
		}))
		assert.Zero(t, calls.Load())
	})

	t.Run("add_and_retry_on_the_db", func(t *testing.T) {
		calls.Store(0)
		r := domain.Record{ID: 1, PatientID: p.ID}
		e := domain.NewAssignmentEvent(r, t0)
		require.NoError(t, db.Outbox().Add(ctx, &e))
		assert.Equal(t, int64(1), calls.Load())
		_, err := db.Outbox().Claim(ctx, domain.SinkNotification, "A", t0, time.Minute, 10)
		require.NoError(t, err)
		_, err = db.Outbox().Record(ctx, "A", []domain.DeliveryResult{{EventID: e.ID, Sink: domain.SinkNotification, Outcome: domain.OutcomeDead, Error: "x", At: t0}})
		require.NoError(t, err)
		_, err = db.Outbox().Retry(ctx, e.ID, t0)
		require.NoError(t, err)
		assert.Equal(t, int64(2), calls.Load(), "a retried event is due now")
	})
}

func TestWAL_StaysSmall(t *testing.T) {
	db, path := mustOpenDBAt(t)
	ctx := t.Context()
	p := mustPatient(t, db, "p")
	var largest int64
	for i := range 3000 {
		_, err := createRecord(ctx, db, p.ID, i)
		require.NoError(t, err)
		if i%10 == 0 { // readers come and go, as in the service
			_, err := db.Records().List(ctx, ports.RecordFilter{PatientID: p.ID}, domain.Page{Limit: 5})
			require.NoError(t, err)
		}
		if i%100 == 99 {
			fi, err := os.Stat(path + "-wal")
			require.NoError(t, err)
			largest = max(largest, fi.Size())
		}
	}
	// Checkpoints keep the log near wal_autocheckpoint (1000 pages, ~4 MiB);
	// a statement left open would stop them and the log would grow past it.
	assert.Less(t, largest, int64(6<<20), "largest -wal seen: %d bytes", largest)
}

func TestAuditVerify_DetectsTampering(t *testing.T) {
	const rehash = "rehash"
	for _, tc := range []struct {
		name   string
		tamper string
		want   int64
	}{
		{"intact", ``, 0},
		{"edited_entry", `UPDATE audit SET action = 'record.delete' WHERE id = 3`, 3},
		{"edited_time", `UPDATE audit SET at = at + 1 WHERE id = 2`, 2},
		{"edited_hash", `UPDATE audit SET hash = 'beef' WHERE id = 3`, 3},
		// Rehashed without the key: its own hash no longer verifies.
		{"edited_entry_rehashed", rehash, 3},
		{"deleted_middle", `DELETE FROM audit WHERE id = 3`, 4},
		{"deleted_first", `DELETE FROM audit WHERE id = 1`, 2},
		{"deleted_tail", `DELETE FROM audit WHERE id >= 4`, 5},
		{"deleted_all", `DELETE FROM audit`, 5},
		{"deleted_tail_and_head_rewound", `DELETE FROM audit WHERE id = 5;
			UPDATE audit_head SET last_id = 4`, 4},
		// The head's MAC is keyed: a head moved back to an earlier entry,
		// hash and all, does not verify.
		{"deleted_tail_and_head_moved_back", `DELETE FROM audit WHERE id = 5;
			UPDATE audit_head SET last_id = 4, last_hash = (SELECT hash FROM audit WHERE id = 4)`, 4},
		{"head_mac_erased", `UPDATE audit_head SET head_mac = ''`, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, path := mustOpenDBAt(t)
			ctx := t.Context()
			for i := range 5 {
				require.NoError(t, db.Audit().Append(ctx, domain.AuditEntry{
					At: t0.Add(time.Duration(i) * time.Second), ActorID: 1, ActorRole: domain.RolePatient,
					Action: domain.ActionRecordRead, RecordID: 9, PatientID: 1, Outcome: domain.OutcomeAllowed,
				}))
			}
			switch tc.tamper {
			case "":
			case rehash:
				// A careful intruder edits entry 3 and recomputes its hash:
				// entry 4 still names the old one.
				es, err := db.Audit().List(ctx, ports.AuditFilter{}, domain.Page{Limit: 10})
				require.NoError(t, err)
				e := es[2]
				require.Equal(t, int64(3), e.ID)
				e.Outcome = domain.OutcomeDenied
				_, err = rawSQL(t, path).ExecContext(ctx, `UPDATE audit SET outcome = ?, hash = ? WHERE id = 3`,
					e.Outcome, e.LegacyChainHash(e.PrevHash))
				require.NoError(t, err)
			default:
				_, err := rawSQL(t, path).ExecContext(ctx, tc.tamper)
				require.NoError(t, err)
			}
			c, err := db.Audit().Verify(ctx, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.FirstBroken)
		})
	}
}

// A list's entries are kept in one row with an index row per patient
// (auditgroup.go); tampering with either part is caught.
func TestAuditVerify_DetectsTamperingWithAList(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper string
		want   int64
	}{
		{"intact", ``, 0},
		// Entries 2–4 are one list of records 21, 22, 23 (patient 2).
		{"edited_packed_record", `UPDATE audit SET more = x'1802' || substr(more, 3) WHERE id = 2`, 2},
		{"truncated_packed_entries", `UPDATE audit SET more = substr(more, 1, 2) WHERE id = 2`, 2},
		{"count_lowered", `UPDATE audit SET n = 2, more = substr(more, 1, 2) WHERE id = 2`, 2},
		{"first_record_edited", `UPDATE audit SET record_id = 24 WHERE id = 2`, 2},
		// Deleting the patient's index row would empty its records' access log.
		{"access_log_emptied", `DELETE FROM audit_users WHERE user_id = 2`, 2},
		{"index_row_moved", `UPDATE audit_users SET user_id = 3 WHERE user_id = 2`, 2},
		{"index_row_added", `INSERT INTO audit_users (user_id, at, id) SELECT 7, at, id FROM audit WHERE id = 2`, 2},
		{"index_row_naming_no_entry", `INSERT INTO audit_users (user_id, at, id) VALUES (7, 1, 99)`, 99},
		{"list_deleted", `DELETE FROM audit WHERE id = 2`, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, path := mustOpenDBAt(t)
			ctx := t.Context()
			entry := func(at time.Duration, record int64) domain.AuditEntry {
				return domain.AuditEntry{At: t0.Add(at), ActorID: 1, ActorRole: domain.RolePatient, Action: domain.ActionRecordList,
					RecordID: record, PatientID: record / 10, Outcome: domain.OutcomeAllowed, RequestID: "r1"}
			}
			require.NoError(t, db.Audit().Append(ctx, entry(0, 11),
				entry(time.Second, 21), entry(time.Second, 22), entry(time.Second, 23), entry(2*time.Second, 31)))
			var n int
			require.NoError(t, rawSQL(t, path).QueryRowContext(ctx, `SELECT n FROM audit WHERE id = 2`).Scan(&n))
			require.Equal(t, 3, n, "the list's entries are one row")
			if tc.tamper != "" {
				_, err := rawSQL(t, path).ExecContext(ctx, tc.tamper)
				require.NoError(t, err)
			}
			c, err := db.Audit().Verify(ctx, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.FirstBroken)
		})
	}
}

func TestContext_Cancellation(t *testing.T) {
	db := mustOpenDB(t)
	p := mustPatient(t, db, "p")
	canceled, cancel := context.WithCancel(t.Context())
	cancel()

	t.Run("before_the_call", func(t *testing.T) {
		called := false
		err := db.WithinTx(canceled, func(ports.Repos) error { called = true; return nil })
		require.ErrorIs(t, err, context.Canceled)
		assert.False(t, called)
		_, err = db.Records().Get(canceled, 1)
		require.ErrorIs(t, err, context.Canceled)
		u := domain.User{Username: "x", Role: domain.RolePatient, CreatedAt: t0}
		require.ErrorIs(t, db.Users().Create(canceled, &u), context.Canceled)
		require.ErrorIs(t, db.Audit().Append(canceled, domain.AuditEntry{At: t0}), context.Canceled)
		_, err = db.Outbox().Claim(canceled, domain.SinkEmail, "A", t0, time.Minute, 1)
		require.ErrorIs(t, err, context.Canceled)
		_, err = db.Audit().Verify(canceled, nil)
		require.ErrorIs(t, err, context.Canceled)
		require.Error(t, db.Ready(canceled))
		_, err = Open(canceled, filepath.Join(t.TempDir(), "x.db"))
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("inside_a_transaction", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		err := db.WithinTx(ctx, func(tx ports.Repos) error {
			r := domain.Record{PatientID: p.ID, Title: "t", Content: "c", CreatedAt: t0, UpdatedAt: t0}
			require.NoError(t, tx.Records().Create(ctx, &r))
			cancel()
			return tx.Records().Create(ctx, &r)
		})
		require.Error(t, err)
		assert.Zero(t, count(t, db, "records"), "rolled back")
		_, err = createRecord(t.Context(), db, p.ID, 1)
		require.NoError(t, err, "the write connection is usable again")
	})

	t.Run("waiting_for_the_writer", func(t *testing.T) {
		held, release := make(chan struct{}), make(chan struct{})
		done := make(chan error)
		go func() {
			done <- db.WithinTx(t.Context(), func(ports.Repos) error { close(held); <-release; return nil })
		}()
		<-held
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_, err := createRecord(ctx, db, p.ID, 2)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		close(release)
		require.NoError(t, <-done)
	})
}

func TestRecords_ListNeedsAnActor(t *testing.T) {
	db := mustOpenDB(t)
	_, err := db.Records().List(t.Context(), ports.RecordFilter{}, domain.Page{})
	require.ErrorIs(t, err, errNoRecordFilter)
}
