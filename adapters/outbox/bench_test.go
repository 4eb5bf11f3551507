package outbox_test

import (
	"context"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"healthrecord/adapters/outbox"
	"healthrecord/adapters/sqlite"
	"healthrecord/domain"
	"healthrecord/ports"
)

// notificationSink does what the app's in-API sink does: one notification
// row per event, on the real database; it reports each delivery.
func notificationSink(db *sqlite.DB, delivered func(id int64)) ports.Sink {
	return newSink("notification", func(ctx context.Context, e domain.OutboxEvent) error {
		n := domain.Notification{UserID: e.DoctorID, Kind: e.Kind, RecordID: e.RecordID, PatientID: e.PatientID, EventID: e.ID, CreatedAt: e.CreatedAt}
		if _, err := db.Notifications().Create(ctx, &n); err != nil {
			return err
		}
		delivered(e.ID)
		return nil
	})
}

func benchDB(b *testing.B) *sqlite.DB {
	b.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	require.NoError(b, db.Migrate(ctx))
	// The events name patient 1 and doctor 2; notifications need them.
	for _, u := range []domain.User{
		{Username: "p", Email: "p@example.com", Role: domain.RolePatient, Active: true, PasswordHash: "x", CreatedAt: time.Now()},
		{Username: "d", Email: "d@example.com", Role: domain.RoleDoctor, Approved: true, Active: true, PasswordHash: "x", CreatedAt: time.Now()},
	} {
		require.NoError(b, db.Users().Create(ctx, &u))
	}
	return db
}

func addEvents(b *testing.B, db *sqlite.DB, n int) []int64 {
	b.Helper()
	ctx := context.Background()
	ids := make([]int64, 0, n)
	require.NoError(b, db.WithinTx(ctx, func(tx ports.Tx) error {
		for i := range n {
			e := domain.NewAssignmentEvent(domain.Record{ID: int64(i + 1), PatientID: 1, DoctorID: 2}, time.Now())
			if err := tx.Outbox().Add(ctx, &e); err != nil {
				return err
			}
			ids = append(ids, e.ID)
		}
		return nil
	}))
	return ids
}

// BenchmarkCommitToDelivery measures, on a real SQLite file with durable
// commits, the time from an event's commit to its delivery by a running
// dispatcher woken by the commit (one event at a time: pure latency).
// Reports median and worst over the events of the run (1,000 with
// -benchtime=1000x).
func BenchmarkCommitToDelivery(b *testing.B) {
	db := benchDB(b)
	delivered := make(chan int64, 1)
	d, err := outbox.New(db.Outbox(), []ports.Sink{notificationSink(db, func(id int64) { delivered <- id })},
		outbox.Config{Owner: "bench", PollInterval: time.Minute}, nil)
	require.NoError(b, err)
	db.OnOutboxCommit(d.Wake)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		ids := addEvents(b, db, 1)
		committed := time.Now()
		got := <-delivered
		lat = append(lat, time.Since(committed))
		require.Equal(b, ids[0], got)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}

// BenchmarkBacklogDrain commits a backlog of 10,000 events while no
// dispatcher runs, then times one dispatcher draining it, and reports the
// peak Go heap seen meanwhile (bounded by the batch size, not the backlog).
func BenchmarkBacklogDrain(b *testing.B) {
	const backlog = 10_000
	for range b.N {
		b.StopTimer()
		db := benchDB(b)
		addEvents(b, db, backlog)
		var mu sync.Mutex
		count := 0
		all := make(chan struct{})
		sink := notificationSink(db, func(int64) {
			mu.Lock()
			count++
			if count == backlog {
				close(all)
			}
			mu.Unlock()
		})
		d, err := outbox.New(db.Outbox(), []ports.Sink{sink}, outbox.Config{Owner: "bench"}, nil)
		require.NoError(b, err)
		runtime.GC()
		var peak uint64
		stopSampling := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
				select {
				case <-stopSampling:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		b.StartTimer()
		start := time.Now()
		go func() { _ = d.Run(ctx); close(done) }()
		select {
		case <-all:
		case <-time.After(2 * time.Minute):
			states := map[string]int{}
			for _, st := range []string{domain.OutboxPending, domain.OutboxDelivered, domain.OutboxDead} {
				got, _ := db.Outbox().List(context.Background(), st, domain.Page{Limit: domain.MaxPageSize})
				states[st] = len(got)
				if st == domain.OutboxPending && len(got) > 0 {
					b.Logf("pending example: %+v", got[0])
				}
			}
			mu.Lock()
			b.Fatalf("backlog not drained: %d delivered by the sink; states (first 500 each): %v", count, states)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		cancel()
		<-done
		close(stopSampling)
		<-sampled
		b.ReportMetric(backlog/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	}
}
