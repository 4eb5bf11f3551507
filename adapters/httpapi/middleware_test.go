package httpapi

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRecoverer_PanicIsLogged500(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := newServer(nil, Config{}, slog.New(slog.NewJSONHandler(&logs, nil)))
	h := s.requestID(s.securityHeaders(s.accessLog(s.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	})))))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("X-Request-ID", "panic-1")
	h.ServeHTTP(rec, req)

	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.JSONEq(t, `{"detail": "A server error occurred."}`, rec.Body.String())
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	assert.Contains(t, logs.String(), `"msg":"panic"`)
	assert.Contains(t, logs.String(), `"request_id":"panic-1"`)
	assert.Contains(t, logs.String(), `"status":500`)
}

func TestWriteError_LogsOnlyInternal(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := newServer(nil, Config{}, slog.New(slog.NewJSONHandler(&logs, nil)))
	req := httptest.NewRequest("GET", "/x", nil)
	s.writeError(httptest.NewRecorder(), req, errNoCredentials)
	assert.Empty(t, logs.String())
	s.writeError(httptest.NewRecorder(), req, assert.AnError)
	assert.Contains(t, logs.String(), `"level":"ERROR"`)
}
