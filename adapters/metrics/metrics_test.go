package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stats is a Stats with function fields.
type stats struct {
	counts func() (map[string]int64, error)
	oldest func() (time.Time, error)
	audit  func() (int64, error)
}

func (s stats) OutboxCounts(context.Context) (map[string]int64, error) { return s.counts() }
func (s stats) OldestPending(context.Context) (time.Time, error)       { return s.oldest() }
func (s stats) AuditEntries(context.Context) (int64, error)            { return s.audit() }

var _ Stats = stats{}

// serve runs m on a real listener and returns its /metrics URL.
func serve(t *testing.T, m *Metrics) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return "http://" + ln.Addr().String() + "/metrics"
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

func TestMetrics_StoreCountsAndHooks(t *testing.T) {
	m := New(stats{
		counts: func() (map[string]int64, error) { return map[string]int64{"pending": 3, "dead": 1}, nil },
		oldest: func() (time.Time, error) { return time.Now().Add(-time.Hour), nil },
		audit:  func() (int64, error) { return 42, nil },
	}, nil)
	m.ObserveRequest("GET", "/api/records/{id}/", 200, 3*time.Millisecond)
	m.ObserveRequest("GET", "", 404, time.Millisecond)
	m.ObserveSignIn("throttled")
	m.ObserveDelivery("email", "retry", time.Second)
	m.ObserveDelivery("notification", "delivered", 2*time.Second)

	code, body := get(t, serve(t, m))
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		`healthrecord_outbox_events{state="pending"} 3`,
		`healthrecord_outbox_events{state="dead"} 1`,
		`healthrecord_outbox_events{state="delivered"} 0`,
		`healthrecord_audit_entries_total 42`,
		`healthrecord_http_requests_total{code="200",method="GET",route="/api/records/{id}/"} 1`,
		`healthrecord_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`healthrecord_signins_total{outcome="throttled"} 1`,
		`healthrecord_outbox_attempts_total{outcome="retry",sink="email"} 1`,
		`healthrecord_outbox_delivery_seconds_sum{sink="notification"} 2`,
	} {
		assert.Contains(t, body, want)
	}
	assert.Regexp(t, `healthrecord_outbox_oldest_pending_seconds 36\d\d`, body)
}

// A database that does not answer costs its metrics, not the scrape.
func TestMetrics_ScrapeSurvivesAStoreError(t *testing.T) {
	fail := errors.New("database is locked")
	m := New(stats{
		counts: func() (map[string]int64, error) { return nil, fail },
		oldest: func() (time.Time, error) { return time.Time{}, fail },
		audit:  func() (int64, error) { return 0, fail },
	}, nil)
	url := serve(t, m)
	code, body := get(t, url)
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "go_goroutines")
	assert.NotContains(t, body, "healthrecord_outbox_events{")

	code, _ = get(t, strings.TrimSuffix(url, "/metrics")+"/other")
	assert.Equal(t, http.StatusNotFound, code)
}
