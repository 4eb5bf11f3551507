package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slogLine is the line slog's JSON handler writes for l at t.
func slogLine(t *testing.T, l accessLine, at time.Time) string {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, nil)
	r := slog.NewRecord(at, slog.LevelInfo, "request", 0)
	r.AddAttrs(slog.String("method", l.method), slog.String("route", l.route), slog.Int("status", l.status),
		slog.Int64("duration_us", l.elapsed.Microseconds()), slog.Int("bytes", l.bytes),
		slog.String("request_id", l.requestID), slog.String("remote", l.remote))
	require.NoError(t, h.Handle(context.Background(), r))
	return buf.String()
}

func TestAccessLine_AsSlogWritesIt(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 5, 7, 4, 687624741, time.UTC)
	for _, l := range []accessLine{
		{method: "GET", route: "/api/records/{id}/", status: 200, elapsed: 31 * time.Microsecond, bytes: 610,
			requestID: "81a185ca918b57e14c718db85a9fded3", remote: "127.0.0.1"},
		{method: "POST", route: "", status: 404, elapsed: 2 * time.Second, bytes: 0, requestID: "a.b:c-d_e", remote: "2001:db8::1"},
	} {
		for _, when := range []time.Time{at, at.Truncate(time.Second), at.In(time.FixedZone("", 2*3600))} {
			assert.Equal(t, slogLine(t, l, when), string(l.appendJSON(nil, when)))
		}
	}
}

func TestAccessLog_WriterAndLogger(t *testing.T) {
	t.Parallel()
	var lines, logs bytes.Buffer
	s := newServer(nil, Config{AccessLog: &lines}, slog.New(slog.NewJSONHandler(&logs, nil)))
	h := s.requestID(s.accessLog(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})))
	serve := func(method, remote string) {
		req := httptest.NewRequest(method, "/x", nil)
		req.RemoteAddr = remote
		req.Header.Set("X-Request-ID", "line-1")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}

	serve("GET", "192.0.2.1:1234")
	assert.Empty(t, logs.String())
	assert.Contains(t, lines.String(), `"msg":"request","method":"GET","route":"","status":418,`)
	assert.Contains(t, lines.String(), `"request_id":"line-1","remote":"192.0.2.1"}`+"\n")

	// A string slog would escape goes through the logger, escaped there.
	lines.Reset()
	serve("GET", `odd"peer`)
	assert.Empty(t, lines.String())
	assert.Contains(t, logs.String(), `"remote":"odd\"peer"`)
}

// BenchmarkAccessLog is one access log line: through slog's JSON handler
// (as serve configures it, with a ReplaceAttr), or formatted into the
// AccessLog writer.
func BenchmarkAccessLog(b *testing.B) {
	replace := func(_ []string, a slog.Attr) slog.Attr { return a }
	log := slog.New(slog.NewJSONHandler(discard{}, &slog.HandlerOptions{ReplaceAttr: replace}))
	req := httptest.NewRequest("GET", "/api/records/1/", nil)
	l := accessLine{method: "GET", route: "/api/records/{id}/", status: 200, elapsed: 31 * time.Microsecond, bytes: 610,
		requestID: "81a185ca918b57e14c718db85a9fded3", remote: "127.0.0.1"}
	for _, c := range []struct {
		name string
		cfg  Config
	}{{"slog", Config{}}, {"writer", Config{AccessLog: discard{}}}} {
		b.Run(c.name, func(b *testing.B) {
			s := &server{cfg: c.cfg, log: log}
			b.ReportAllocs()
			for b.Loop() {
				s.logAccess(req, l)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
