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
