package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// accessLine is what the access log says of one request: the route
// pattern, never the raw path or query, and no header or body, nothing
// that could carry a token or health data.
type accessLine struct {
	method, route     string
	status, bytes     int
	elapsed           time.Duration
	requestID, remote string
}

// log writes the line: into cfg.AccessLog as slog's JSON handler would
// have, when it is set and every string is plain; through the logger
// otherwise.
func (s *server) logAccess(r *http.Request, l accessLine) {
	if w := s.cfg.AccessLog; w != nil && plainLogString(l.method) && plainLogString(l.route) &&
		plainLogString(l.requestID) && plainLogString(l.remote) {
		buf := accessPool.Get().(*[]byte)
		b := l.appendJSON((*buf)[:0], time.Now())
		_, _ = w.Write(b) // as slog drops a handler's error
		*buf = b[:0]
		accessPool.Put(buf)
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", l.method),
		slog.String("route", l.route),
		slog.Int("status", l.status),
		slog.Int64("duration_us", l.elapsed.Microseconds()),
		slog.Int("bytes", l.bytes),
		slog.String("request_id", l.requestID),
		slog.String("remote", l.remote),
	)
}

// accessPool holds the buffers lines are formatted in; a line is short,
// so none grows much.
var accessPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 512)
	return &b
}}

// appendJSON appends the line exactly as slog.NewJSONHandler writes
// Logger.LogAttrs(ctx, slog.LevelInfo, "request", …) at now, for plain
// strings (plainLogString), without a Record and its attributes.
func (l accessLine) appendJSON(b []byte, now time.Time) []byte {
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","method":"`...)
	b = append(b, l.method...)
	b = append(b, `","route":"`...)
	b = append(b, l.route...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, `,"duration_us":`...)
	b = strconv.AppendInt(b, l.elapsed.Microseconds(), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(l.bytes), 10)
	b = append(b, `,"request_id":"`...)
	b = append(b, l.requestID...)
	b = append(b, `","remote":"`...)
	b = append(b, l.remote...)
	return append(b, "\"}\n"...)
}

// plainLogString: printable ASCII without " or \, which slog's JSON
// handler writes as it is. Anything else is left to slog's escaping.
func plainLogString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
