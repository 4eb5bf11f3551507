package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lineWriter hands every complete log line to fn.
type lineWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	fn  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.fn(strings.TrimSpace(line))
	}
}

// server is a running `healthrecord serve` started through run.
type server struct {
	t   *testing.T
	url string
	// metricsAddr is where the metrics listener is bound, "" when off.
	metricsAddr string
	db          string
	env         map[string]string
	logs        *logSink
	stop        func() error
}

// logSink keeps every log line, to assert what was (not) logged.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) add(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }
func (l *logSink) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// mustServe runs serve on 127.0.0.1:0 with a fresh database and waits for
// it to listen. Extra environment entries override the defaults.
func mustServe(t *testing.T, extraEnv map[string]string, extraArgs ...string) *server {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{"HEALTHRECORD_DB": filepath.Join(dir, "hr.db")}
	for k, v := range extraEnv {
		env[k] = v
	}
	return startServe(t, env, extraArgs...)
}

func startServe(t *testing.T, env map[string]string, extraArgs ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	type bound struct{ api, metrics string }
	addr := make(chan bound, 1)
	ready := func(api, metrics string) { addr <- bound{api, metrics} }
	logs := &logSink{}
	w := &lineWriter{fn: logs.add}
	done := make(chan error, 1)
	args := append([]string{"serve", "--addr", "127.0.0.1:0"}, extraArgs...)
	// Every test client is 127.0.0.1: request rates are off unless a test
	// sets them.
	serveEnv := map[string]string{"HEALTHRECORD_RATE_REGISTER": "0", "HEALTHRECORD_RATE_USER": "0", "HEALTHRECORD_RATE_ANON": "0"}
	for k, v := range env {
		serveEnv[k] = v
	}
	go func() { done <- run(ctx, args, mapEnv(serveEnv), strings.NewReader(""), io.Discard, w, ready) }()
	s := &server{t: t, db: env["HEALTHRECORD_DB"], env: env, logs: logs}
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				t.Error("serve did not stop within 30s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = s.stop() })
	select {
	case a := <-addr:
		s.url, s.metricsAddr = "http://"+a.api, a.metrics
	case err := <-done:
		t.Fatalf("serve exited early: %v\n%s", err, logs.all())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start listening")
	}
	return s
}

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// cli runs one command against the server's database and returns stdout.
func (s *server) cli(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, mapEnv(s.env), strings.NewReader(""), &out, &errOut, nil)
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// call makes a JSON request and decodes the answer into out (when not nil).
func (s *server) call(method, path, token string, body any, out any) (int, http.Header) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(s.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	require.NoError(s.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	if out != nil && len(raw) > 0 {
		require.NoError(s.t, json.Unmarshal(raw, out), "body: %s", raw)
	}
	return resp.StatusCode, resp.Header
}

// mustUser registers and signs in a user, returning its id and access token.
func (s *server) mustUser(name, role string) (int64, string) {
	s.t.Helper()
	var u struct{ ID int64 }
	code, _ := s.call("POST", "/api/users/register/", "", map[string]any{
		"username": name, "email": name + "@example.com", "password": "Corr3ct-Horse-" + name, "role": role,
	}, &u)
	require.Equal(s.t, http.StatusCreated, code)
	return u.ID, s.signIn(name, "Corr3ct-Horse-"+name).Access
}

type tokens struct{ Access, Refresh string }

func (s *server) signIn(name, password string) tokens {
	s.t.Helper()
	var tk tokens
	code, _ := s.call("POST", "/api/token/", "", map[string]string{"username": name, "password": password}, &tk)
	require.Equal(s.t, http.StatusOK, code)
	require.NotEmpty(s.t, tk.Access)
	return tk
}
