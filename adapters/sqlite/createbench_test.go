package sqlite

import (
	"context"
	"fmt"
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
	return db.WithinTx(ctx, func(tx ports.Repos) error {
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
		if err := tx.Outbox().Add(ctx, &ev); err != nil {
			return err
		}
		return tx.Audit().Append(ctx, domain.AuditEntry{At: now, ActorID: patient, ActorRole: domain.RolePatient,
			Action: domain.ActionRecordCreate, RecordID: r.ID, PatientID: patient, Outcome: domain.OutcomeAllowed,
			RequestID: fmt.Sprintf("%016x", i), RemoteAddr: "127.0.0.1"})
	})
}
