package outbox_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"healthrecord/adapters/outbox"
	"healthrecord/domain"
	"healthrecord/ports"
)

// BenchmarkBacklogDrain commits a backlog of 10,000 assignments while no
// dispatcher runs, then times one dispatcher delivering their in-API
// notifications (one write transaction per batch).
func BenchmarkBacklogDrain(b *testing.B) {
	const backlog = 10_000
	for range b.N {
		b.StopTimer()
		db := mustOpenDB(b, filepath.Join(b.TempDir(), "bench.db"), true)
		a := newApp(db, nil)
		p := mustUser(b, db, "pat", domain.RolePatient)
		doc := mustUser(b, db, "doc", domain.RoleDoctor)
		ctx := context.Background()
		for i := 0; i < backlog; i += 100 {
			require.NoError(b, db.WithinTx(ctx, func(tx ports.Repos) error {
				for range 100 {
					e := domain.NewAssignmentEvent(domain.Record{ID: 1, PatientID: p.ID, DoctorID: doc.ID}, time.Now())
					if err := tx.Outbox().Add(ctx, &e); err != nil {
						return err
					}
				}
				return nil
			}))
		}
		d, err := outbox.New(a, outbox.Config{Owner: "bench", PollInterval: 10 * time.Millisecond}, nil)
		require.NoError(b, err)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		b.StartTimer()
		start := time.Now()
		go func() { _ = d.Run(rctx); close(done) }()
		for {
			left, err := db.Outbox().List(ctx, ports.OutboxFilter{State: domain.OutboxPending}, domain.Page{Limit: 1})
			require.NoError(b, err)
			if len(left) == 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		cancel()
		<-done
		b.ReportMetric(backlog/elapsed.Seconds(), "events/s")
	}
}

// BenchmarkCreateDelivered is hrbench's create scenario without HTTP:
// app.CreateRecord from 32 goroutines (so that units share commits) with
// the dispatcher running, timed until every event's in-API notification
// is delivered. cpu-ns/op is the process's CPU per create, delivery
// included: steadier than the wall time on a shared machine.
func BenchmarkCreateDelivered(b *testing.B) {
	db := mustOpenDB(b, filepath.Join(b.TempDir(), "bench.db"), true)
	a := newApp(db, nil)
	const patients, doctors = 200, 20
	var pats, docs []domain.User
	for i := range patients {
		pats = append(pats, mustUser(b, db, fmt.Sprint("p", i), domain.RolePatient))
	}
	for i := range doctors {
		docs = append(docs, mustUser(b, db, fmt.Sprint("d", i), domain.RoleDoctor))
	}
	d, err := outbox.New(a, outbox.Config{Owner: "bench"}, nil)
	require.NoError(b, err)
	db.OnOutboxCommit(d.Wake)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	title, content := "Blood test", "Cholesterol 5.2"
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	start := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			p := pats[i%patients]
			c := domain.RecordChange{Title: &title, Content: &content, SetDoctor: true, DoctorID: docs[i%doctors].ID}
			if _, err := a.CreateRecord(ctx, domain.Actor{ID: p.ID, Role: domain.RolePatient}, c); err != nil {
				b.Error(err)
				return
			}
		}
	})
	for {
		left, err := db.Outbox().List(ctx, ports.OutboxFilter{State: domain.OutboxPending}, domain.Page{Limit: 1})
		require.NoError(b, err)
		if len(left) == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var u syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
