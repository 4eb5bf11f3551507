package app

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// slowAuditStore is a store whose every write transaction takes delay and
// only appends audit entries: a writer slower than the reads.
type slowAuditStore struct {
	ports.Store // any other method is a test bug and panics
	delay       time.Duration
	appended    atomic.Int64
}

func (s *slowAuditStore) WithinTx(ctx context.Context, fn func(tx ports.Repos) error) error {
	time.Sleep(s.delay)
	return fn(slowAuditTx{s: s})
}

type slowAuditTx struct {
	ports.Repos
	s *slowAuditStore
}

func (t slowAuditTx) Audit() ports.Audit { return slowAudit{s: t.s} }

type slowAudit struct {
	ports.Audit
	s *slowAuditStore
}

func (a slowAudit) Append(_ context.Context, es ...domain.AuditEntry) error {
	a.s.appended.Add(int64(len(es)))
	return nil
}

// A flood of list reads, each leaving a page of entries, against a writer
// that cannot keep up: the buffer stays bounded, and nothing is dropped.
func TestAuditBatcher_BoundedWhenReadsOutrunTheWriter(t *testing.T) {
	st := &slowAuditStore{delay: 20 * time.Millisecond}
	b := newAuditBatcher(st, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Run(ctx)

	const readers, pages, perPage = 32, 200, 50
	var most atomic.Int64
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			page := make([]domain.AuditEntry, perPage)
			for range pages {
				b.add(page...)
				if n := int64(b.buffered()); n > most.Load() {
					most.Store(n)
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, b.Close(context.Background()))
	// The flood adds 320,000 entries; the buffer never holds more than its
	// bound plus what the readers add while one of them flushes.
	assert.LessOrEqual(t, most.Load(), int64(maxBufferedAudit+readers*perPage), "the buffer is bounded")
	assert.Less(t, most.Load(), int64(readers*pages*perPage/10), "far below what the flood adds")
	assert.Equal(t, int64(readers*pages*perPage), st.appended.Load(), "every entry written")
}

// BenchmarkAuditBatcher queues one flush interval's entries of a busy
// server (350 reads, or 35 lists of 10 records) and flushes them to a
// store that takes them at once: what the buffer costs, per entry.
func BenchmarkAuditBatcher(b *testing.B) {
	for _, shape := range []struct {
		name         string
		calls, shown int
	}{{"reads", 350, 0}, {"lists", 35, 10}} {
		b.Run(shape.name, func(b *testing.B) {
			a := &App{clock: benchClock{}}
			a.audit = newAuditBatcher(&slowAuditStore{}, slog.New(slog.DiscardHandler), time.Hour)
			actor := domain.Actor{ID: 7, Role: domain.RolePatient, RequestID: "0123456789abcdef0123456789abcdef", RemoteAddr: "127.0.0.1"}
			rec := domain.Record{ID: 70, PatientID: 7}
			shown := make([]domain.Record, shape.shown)
			for i := range shown {
				shown[i] = domain.Record{ID: int64(70 + i), PatientID: 7}
			}
			b.ReportAllocs()
			for b.Loop() {
				for range shape.calls {
					if shape.shown == 0 {
						a.auditRead(actor, domain.ActionRecordRead, rec, domain.OutcomeAllowed)
					} else {
						a.auditShown(actor, domain.ActionRecordList, shown)
					}
				}
				require.NoError(b, a.audit.Flush(context.Background()))
			}
		})
	}
}

type benchClock struct{}

func (benchClock) Now() time.Time { return time.Unix(1_800_000_000, 0) }
