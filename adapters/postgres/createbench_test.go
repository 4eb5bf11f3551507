package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/internal/pgtest"
	"healthrecord/ports"
)

// BenchmarkCreateUnit is app.CreateRecord's unit of work without HTTP:
// quota read, doctor check, record, outbox event and audit entry, from
// many goroutines at once so that units share commits (each caller's
// context cancellable, as a request's is). units/commit is how many
// shared one transaction on average; trips/op the round trips to
// PostgreSQL per unit; cpu-ns/op the process's CPU time per unit (the
// server's is not in it).
func BenchmarkCreateUnit(b *testing.B) {
	trips := &tripCounter{}
	db := mustBenchDB(b, trips)
	const patients = 200
	for i := range patients {
		mustBenchUser(b, db, fmt.Sprint("p", i), domain.RolePatient)
	}
	doctor := mustBenchUser(b, db, "d", domain.RoleDoctor)
	var n atomic.Int64
	batches0, trips0 := db.commits.batches.Load(), trips.n.Load()
	b.ReportAllocs()
	b.ResetTimer()
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
	b.ReportMetric(float64(b.N)/float64(db.commits.batches.Load()-batches0), "units/commit")
	b.ReportMetric(float64(trips.n.Load()-trips0)/float64(b.N), "trips/op")
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// TestRoundTrips_CreateAndDeliver counts the round trips of creates that
// share a commit and of delivering their in-API notifications, as the
// dispatcher does: what a create costs PostgreSQL besides its rows.
func TestRoundTrips_CreateAndDeliver(t *testing.T) {
	trips := &tripCounter{}
	db := mustBenchDB(t, trips)
	p := mustBenchUser(t, db, "p", domain.RolePatient)
	d := mustBenchUser(t, db, "d", domain.RoleDoctor)
	warm := func() { require.NoError(t, createUnit(t.Context(), db, p.ID, d.ID, 0)) }
	warm() // statements prepared

	const n = 16
	release := holdWriter(t, db)
	trips0 := trips.n.Load()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { require.NoError(t, createUnit(t.Context(), db, p.ID, d.ID, int64(i+1))) })
	}
	require.Eventually(t, func() bool { return len(db.commits.jobs) == n }, 10*time.Second, time.Millisecond)
	release()
	wg.Wait()
	created := trips.n.Load() - trips0
	t.Logf("%d creates in one commit: %d round trips, %.1f per create", n, created, float64(created)/n)

	trips0 = trips.n.Load()
	delivered, err := deliverUnit(t.Context(), db, "bench", 100)
	require.NoError(t, err)
	require.Equal(t, n+1, delivered)
	sent := trips.n.Load() - trips0
	t.Logf("delivering %d notifications in one unit: %d round trips, %.1f per notification", delivered, sent,
		float64(sent)/float64(delivered))
}

// holdWriter occupies the commit loop with a unit of work until release is
// called, so that what is submitted meanwhile queues up.
func holdWriter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	held, rel, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- db.WithinTx(t.Context(), func(ports.Repos) error { close(held); <-rel; return nil })
	}()
	<-held
	return func() { close(rel); require.NoError(t, <-done) }
}

// createUnit runs the statements app.CreateRecord runs, in its order.
func createUnit(ctx context.Context, db *DB, patient, doctor, i int64) error {
	return db.WithinTx(ctx, func(tx ports.Repos) error {
		now := time.Now()
		if _, err := tx.Records().StoredBytes(ctx, patient); err != nil {
			return err
		}
		if doctor != 0 {
			if _, err := tx.Users().ByID(ctx, doctor); err != nil {
				return err
			}
		}
		r := domain.Record{PatientID: patient, DoctorID: doctor, Title: "Blood test", Content: "Cholesterol 5.2",
			CreatedAt: now, UpdatedAt: now}
		if err := tx.Records().Create(ctx, &r); err != nil {
			return err
		}
		if doctor != 0 {
			ev := domain.NewAssignmentEvent(r, now, domain.SinkNotification)
			if err := tx.Outbox().Add(ctx, &ev); err != nil {
				return err
			}
		}
		return tx.Audit().Append(ctx, domain.AuditEntry{At: now, ActorID: patient, ActorRole: domain.RolePatient,
			Action: domain.ActionRecordCreate, RecordID: r.ID, PatientID: patient, Outcome: domain.OutcomeAllowed,
			RequestID: fmt.Sprintf("%016x", i), RemoteAddr: "127.0.0.1"})
	})
}

// deliverUnit runs the statements app.DeliverNotifications runs.
func deliverUnit(ctx context.Context, db *DB, owner string, limit int) (int, error) {
	n := 0
	err := db.WithinTx(ctx, func(tx ports.Repos) error {
		now := time.Now()
		evs, err := tx.Outbox().Claim(ctx, domain.SinkNotification, owner, now, time.Minute, limit)
		if err != nil || len(evs) == 0 {
			return err
		}
		results := make([]domain.DeliveryResult, 0, len(evs))
		for _, e := range evs {
			nt := domain.NotificationFor(e)
			if _, err := tx.Notifications().Create(ctx, &nt); err != nil {
				return err
			}
			results = append(results, domain.DeliveryResult{
				EventID: e.ID, Sink: domain.SinkNotification, Outcome: domain.OutcomeDelivered, At: now,
			})
		}
		n, err = tx.Outbox().Record(ctx, owner, results)
		return err
	})
	return n, err
}

// mustBenchDB opens and migrates a store on a database of its own whose
// statements trips counts.
func mustBenchDB(tb testing.TB, trips *tripCounter) *DB {
	tb.Helper()
	pg, drop, err := pgtest.Create()
	var down *pgtest.ErrUnreachable
	if errors.As(err, &down) {
		pgtest.Unreachable(tb, os.Getenv("CI") == "true", err.Error())
	}
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, drop()) })
	db, err := Open(tb.Context(), pg.URL, func(db *DB) { db.tracer = trips })
	require.NoError(tb, err)
	tb.Cleanup(db.Close)
	require.NoError(tb, db.Migrate(tb.Context()))
	return db
}

func mustBenchUser(tb testing.TB, db *DB, name string, role domain.Role) domain.User {
	tb.Helper()
	u := domain.User{Username: name, Email: name + "@example.com", Role: role, Approved: true, Active: true,
		PasswordHash: "h", CreatedAt: time.Now()}
	require.NoError(tb, db.Users().Create(tb.Context(), &u))
	return u
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var u syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &u))
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// tripCounter counts the round trips of the statements pgx sends: one per
// statement or pipelined batch, one more for a statement prepared first,
// two per COPY (its start is answered before the rows go).
type tripCounter struct{ n atomic.Int64 }

var (
	_ pgx.QueryTracer    = (*tripCounter)(nil)
	_ pgx.BatchTracer    = (*tripCounter)(nil)
	_ pgx.CopyFromTracer = (*tripCounter)(nil)
	_ pgx.PrepareTracer  = (*tripCounter)(nil)
)

func (c *tripCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *tripCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *tripCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *tripCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *tripCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
func (c *tripCounter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	c.n.Add(2)
	return ctx
}
func (c *tripCounter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}
func (c *tripCounter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *tripCounter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}
