package outbox_test

import (
	"context"
	"path/filepath"
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
