package sqlite

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// BenchmarkCreateUnit is app.CreateRecord's unit of work without HTTP:
// quota read, doctor check, record, outbox event and audit entry, from
// many goroutines at once so that units share commits (each caller's
// context cancellable, as a request's is). units/commit is how many
// shared one transaction on average; cpu-ns/op the process's CPU time per
// unit, steadier than the wall time on a shared machine.
func BenchmarkCreateUnit(b *testing.B) {
	db, err := Open(b.Context(), b.TempDir()+"/bench.db")
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	require.NoError(b, db.Migrate(b.Context()))
	const patients = 200
	for i := range patients {
		mustUser(b, db, fmt.Sprint("p", i), domain.RolePatient)
	}
	doctor := mustUser(b, db, "d", domain.RoleDoctor)
	var n atomic.Int64
	before := db.commits.batches.Load()
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		ctx, cancel := context.WithCancel(b.Context())
		defer cancel()
		for pb.Next() {
			i := n.Add(1)
			if err := createUnit(ctx, db, 1+i%patients, doctor.ID, i); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/float64(db.commits.batches.Load()-before), "units/commit")
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var u syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &u))
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// createUnit runs the statements app.CreateRecord runs, in its order.
func createUnit(ctx context.Context, db *DB, patient, doctor, i int64) error {
	return db.WithinTx(ctx, func(tx ports.Repos) error { return createInTx(ctx, tx, patient, doctor, i) })
}

// createInTx is createUnit's work, inside tx.
func createInTx(ctx context.Context, tx ports.Repos, patient, doctor, i int64) error {
	now := time.Now()
	if _, err := tx.Records().StoredBytes(ctx, patient); err != nil {
		return err
	}
	if _, err := tx.Users().ByID(ctx, doctor); err != nil {
		return err
	}
	r := domain.Record{PatientID: patient, DoctorID: doctor, Title: "Blood test", Content: "Cholesterol 5.2",
		CreatedAt: now, UpdatedAt: now}
	if err := tx.Records().Create(ctx, &r); err != nil {
		return err
	}
	ev := domain.NewAssignmentEvent(r, now)
	ev.Delivered(domain.SinkNotification, now)
	if err := tx.Outbox().Add(ctx, &ev); err != nil {
		return err
	}
	n := domain.NotificationFor(ev)
	if _, err := tx.Notifications().Create(ctx, &n); err != nil {
		return err
	}
	return tx.Audit().Append(ctx, domain.AuditEntry{At: now, ActorID: patient, ActorRole: domain.RolePatient,
		Action: domain.ActionRecordCreate, RecordID: r.ID, PatientID: patient, Outcome: domain.OutcomeAllowed,
		RequestID: fmt.Sprintf("%016x", i), RemoteAddr: "127.0.0.1"})
}

// BenchmarkCreatePages counts the pages one commit of 32 creates writes
// to the WAL (each is a frame: a write call and 4 KiB), the commit's cost
// beside the statements', over hrbench's data set (200 patients, 20
// doctors, 2,000 records). Deterministic, unlike the time on a shared
// machine.
func BenchmarkCreatePages(b *testing.B) {
	ctx := b.Context()
	path := b.TempDir() + "/bench.db"
	db, err := Open(ctx, path)
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	require.NoError(b, db.Migrate(ctx))
	const patients, doctors, batch = 200, 20, 32
	hash := "$argon2id$v=19$m=65536,t=1,p=2$" + strings.Repeat("s", 22) + "$" + strings.Repeat("h", 43)
	var pats, docs []int64
	for i := range patients + doctors {
		role := domain.RolePatient
		if i >= patients {
			role = domain.RoleDoctor
		}
		u := domain.User{Username: fmt.Sprint("u", i), Email: fmt.Sprint("u", i, "@example.com"), Role: role,
			Approved: true, Active: true, PasswordHash: hash, CreatedAt: t0}
		require.NoError(b, db.Users().Create(ctx, &u))
		if role == domain.RolePatient {
			pats = append(pats, u.ID)
		} else {
			docs = append(docs, u.ID)
		}
	}
	var i int64
	commit := func() {
		require.NoError(b, db.WithinTx(ctx, func(tx ports.Repos) error {
			for range batch {
				i++
				if err := createInTx(ctx, tx, pats[i*7%patients], docs[i%doctors], i); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	for range 2000 / batch {
		commit()
	}
	_, err = db.write.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 0")
	require.NoError(b, err)
	frames := func() int64 {
		st, err := os.Stat(path + "-wal")
		require.NoError(b, err)
		return (st.Size() - 32) / (24 + 4096)
	}
	var total int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		_, err = db.write.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
		require.NoError(b, err)
		commit() // the first frames after a reset rewrite the WAL's start
		before := frames()
		b.StartTimer()
		commit()
		total += frames() - before
	}
	b.ReportMetric(float64(total)/float64(b.N), "frames/commit")
	b.ReportMetric(float64(total)/float64(b.N*batch), "frames/create")
}
