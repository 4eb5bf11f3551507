package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var metricsRE = regexp.MustCompile(`"msg":"metrics listening","addr":"([^"]+)"`)

func scrape(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(b))
	return string(b)
}

func TestMetrics_ScrapeTheRealListener(t *testing.T) {
	s := mustServe(t, map[string]string{"HEALTHRECORD_METRICS_ADDR": "127.0.0.1:0", "HEALTHRECORD_AUTO_APPROVE_DOCTORS": "true"})
	m := metricsRE.FindStringSubmatch(s.logs.all())
	require.NotNil(t, m, "serve logs where metrics listen")
	require.Equal(t, s.metricsAddr, m[1], "run's hook and the log agree")
	metricsURL := "http://" + s.metricsAddr + "/metrics"

	doctorID, _ := s.mustUser("drmetrics", "DOCTOR")
	_, patient := s.mustUser("pmetrics", "PATIENT")
	code, _ := s.call("POST", "/api/token/", "", map[string]string{"username": "pmetrics", "password": "wrong-password"}, nil)
	require.Equal(t, http.StatusUnauthorized, code)
	s.createAssigned(patient, doctorID, 1)
	code, _ = s.call("GET", "/api/records/424242/", patient, nil, nil)
	require.Equal(t, http.StatusNotFound, code)

	// Metrics are never on the API's listener.
	code, _ = s.call("GET", "/metrics", "", nil, nil)
	assert.Equal(t, http.StatusNotFound, code)

	var body string
	require.Eventually(t, func() bool {
		body = scrape(t, metricsURL)
		return strings.Contains(body, `healthrecord_outbox_attempts_total{outcome="delivered",sink="notification"} 1`)
	}, 10*time.Second, 100*time.Millisecond, "the assignment's delivery is counted")

	for _, want := range []string{
		`healthrecord_http_requests_total{code="404",method="GET",route="/api/records/{id}/"} 1`,
		`healthrecord_http_requests_total{code="201",method="POST",route="/api/records/"} 1`,
		`healthrecord_http_request_duration_seconds_count{method="POST",route="/api/users/register/"} 2`,
		`healthrecord_signins_total{outcome="ok"} 2`,
		`healthrecord_signins_total{outcome="denied"} 1`,
		`healthrecord_signins_total{outcome="throttled"} 0`,
		`healthrecord_outbox_events{state="delivered"} 1`,
		`healthrecord_outbox_events{state="dead"} 0`,
		`healthrecord_outbox_events{state="pending"} 0`,
		`healthrecord_outbox_oldest_pending_seconds 0`,
		`healthrecord_outbox_delivery_seconds_count{sink="notification"} 1`,
		"go_goroutines ", "process_resident_memory_bytes ",
	} {
		assert.Contains(t, body, want)
	}
	assert.Regexp(t, `healthrecord_audit_entries_total [1-9]`, body)
	assert.NotContains(t, body, "424242", "route labels are patterns, never raw paths")
	for _, name := range []string{
		"healthrecord_http_requests_total", "healthrecord_http_request_duration_seconds", "healthrecord_outbox_events",
		"healthrecord_outbox_delivery_seconds", "healthrecord_outbox_attempts_total", "healthrecord_signins_total",
		"healthrecord_audit_entries_total", "healthrecord_outbox_oldest_pending_seconds",
	} {
		assert.Regexp(t, `(?m)^# HELP `+name+` \S`, body, "%s has a help text", name)
	}
}

func TestMetrics_OffByDefault(t *testing.T) {
	s := mustServe(t, nil)
	assert.NotContains(t, s.logs.all(), "metrics listening")
	code, _ := s.call("GET", "/metrics", "", nil, nil)
	assert.Equal(t, http.StatusNotFound, code)
}

// TestCLI_RefusesMissingDatabase: every command but serve, migrate and
// createsuperuser refuses a database that does not exist and creates
// nothing. Before, `audit verify` said "intact" and `backup` wrote an
// empty backup.
func TestCLI_RefusesMissingDatabase(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "typo.db")
	env := mapEnv(map[string]string{"HEALTHRECORD_DB": db})
	backup := filepath.Join(dir, "backup.db")
	for _, args := range [][]string{
		{"audit", "verify"}, {"backup", backup}, {"users", "list"}, {"users", "approve", "x"},
		{"outbox", "list"}, {"outbox", "retry", "1"}, {"keys", "rotate"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), args, env, nil, &out, &out, nil)
		require.Error(t, err, "%v", args)
		assert.Contains(t, err.Error(), "no database at "+db, "%v", args)
		assert.NotContains(t, out.String(), "intact")
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Empty(t, entries, "%v created a file", args)
	}
}

func TestCLI_VersionHelpAndArguments(t *testing.T) {
	env := mapEnv(map[string]string{"HEALTHRECORD_DB": filepath.Join(t.TempDir(), "hr.db")})
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		require.NoError(t, run(context.Background(), args, env, nil, &out, io.Discard, nil))
		assert.Regexp(t, `(?s)^healthrecord \S+\ncommit \S+.*\ngo1\.\d+`, out.String())
	}
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"}, {"serve", "-h"}, {"serve", "--help"}, {"migrate", "-h"}, {"createsuperuser", "--help"},
		{"users", "-h"}, {"users", "list", "-h"}, {"backup", "-h"}, {"outbox", "list", "--help"}, {"audit", "verify", "-h"},
		{"keys", "rotate", "-h"}, {"version", "-h"},
	} {
		var out bytes.Buffer
		require.NoError(t, run(context.Background(), args, env, nil, &out, &out, nil), "%v exits 0", args)
		assert.Contains(t, out.String(), "usage: healthrecord", "%v prints help", args)
	}
	for _, args := range [][]string{
		{"serve", "extra"}, {"version", "extra"}, {"backup", "a", "b"}, {"users", "list", "extra"}, {"audit", "verify", "now"},
		{"migrate", "status", "extra"}, {"keys", "rotate", "twice"}, {"createsuperuser", "bob"},
	} {
		err := run(context.Background(), args, env, nil, io.Discard, io.Discard, nil)
		var u usageError
		assert.ErrorAs(t, err, &u, "%v: an unknown argument is a usage error", args)
	}
	entries, err := os.ReadDir(filepath.Dir(env("HEALTHRECORD_DB")))
	require.NoError(t, err)
	assert.Empty(t, entries, "help and usage errors create nothing")
}

func TestCLI_FlagsBeforeOrAfterArguments(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "hr.db")
	env := mapEnv(map[string]string{"HEALTHRECORD_SUPERUSER_PASSWORD": "Adm1n-Passphrase!"})
	require.NoError(t, run(context.Background(), []string{"createsuperuser", "--noinput", "--username", "root", "--email", "r@example.com", "--db", db}, env, nil, io.Discard, io.Discard, nil))

	var table, asJSON, before bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"users", "list", "--db", db}, env, nil, &table, io.Discard, nil))
	assert.Regexp(t, `(?m)^ID\s+USERNAME\s+EMAIL\s+ROLE\s+APPROVED\s+ACTIVE\n1\s+root\s+r@example.com\s+ADMIN`, table.String())
	require.NoError(t, run(context.Background(), []string{"users", "list", "--json", "--db", db}, env, nil, &asJSON, io.Discard, nil))
	require.NoError(t, run(context.Background(), []string{"users", "--json", "list"}, mapEnv(map[string]string{"HEALTHRECORD_DB": db}), nil, &before, io.Discard, nil))
	assert.JSONEq(t, `[{"id":1,"username":"root","email":"r@example.com","role":"ADMIN","is_active":true}]`, asJSON.String())
	assert.JSONEq(t, asJSON.String(), before.String())

	var outboxTable, outboxJSON bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"outbox", "--db", db, "list"}, env, nil, &outboxTable, io.Discard, nil))
	assert.Contains(t, outboxTable.String(), "ID  KIND")
	require.NoError(t, run(context.Background(), []string{"outbox", "list", "--db", db, "--json"}, env, nil, &outboxJSON, io.Discard, nil))
	assert.JSONEq(t, `[]`, outboxJSON.String())

	dest := filepath.Join(dir, "copy.db")
	require.NoError(t, run(context.Background(), []string{"backup", dest, "--db", db}, env, nil, io.Discard, io.Discard, nil))
	require.FileExists(t, dest)
}

// TestConfig_RefusesUnhonourableValues: a value that cannot be honoured is
// an error at start naming the variable or flag, without Go's internals,
// and nothing is created.
func TestConfig_RefusesUnhonourableValues(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "hr.db")
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{env: map[string]string{"HEALTHRECORD_ACCESS_TTL": "0"}, want: "HEALTHRECORD_ACCESS_TTL"},
		{env: map[string]string{"HEALTHRECORD_REFRESH_TTL": "-5m"}, want: "HEALTHRECORD_REFRESH_TTL"},
		{env: map[string]string{"HEALTHRECORD_SHUTDOWN_TIMEOUT": "soon"}, want: "HEALTHRECORD_SHUTDOWN_TIMEOUT"},
		{env: map[string]string{"HEALTHRECORD_AUTO_APPROVE_DOCTORS": "yes"}, want: "HEALTHRECORD_AUTO_APPROVE_DOCTORS"},
		{env: map[string]string{"HEALTHRECORD_MAX_BODY": "-1"}, want: "HEALTHRECORD_MAX_BODY"},
		{env: map[string]string{"HEALTHRECORD_OUTBOX_MAX_AGE": "0"}, want: "HEALTHRECORD_OUTBOX_MAX_AGE"},
		{env: map[string]string{"HEALTHRECORD_SMTP_CONNECTIONS": "-2"}, want: "HEALTHRECORD_SMTP_CONNECTIONS"},
		{env: map[string]string{"HEALTHRECORD_OUTBOX_BACKOFF": "0s"}, want: "HEALTHRECORD_OUTBOX_BACKOFF"},
		{env: map[string]string{"HEALTHRECORD_METRICS_ADDR": "nowhere"}, want: "HEALTHRECORD_METRICS_ADDR"},
		{args: []string{"--access-ttl", "0"}, want: "-access-ttl"},
		{args: []string{"--auto-approve-doctors=yes"}, want: "-auto-approve-doctors"},
		{args: []string{"--max-body", "-3"}, want: "-max-body"},
		{args: []string{"--metrics-addr", "127.0.0.1:8000"}, want: "--metrics-addr"},
	} {
		env := map[string]string{"HEALTHRECORD_DB": db}
		for k, v := range tc.env {
			env[k] = v
		}
		err := run(context.Background(), append([]string{"serve"}, tc.args...), mapEnv(env), nil, io.Discard, io.Discard, nil)
		require.Error(t, err, "%v %v", tc.env, tc.args)
		msg := err.Error()
		assert.Contains(t, msg, tc.want)
		for _, internal := range []string{"strconv", "ParseBool", "ParseInt", "time:", "AccessTTL", "invalid syntax"} {
			assert.NotContains(t, msg, internal, "Go internals in %q", msg)
		}
		assert.NoFileExists(t, db)
	}
}

func TestServe_LogsDatabaseCreationAndMigrations(t *testing.T) {
	env := map[string]string{"HEALTHRECORD_DB": filepath.Join(t.TempDir(), "hr.db")}
	s := startServe(t, env)
	logs := s.logs.all()
	assert.Contains(t, logs, `"msg":"created a new database"`)
	assert.Contains(t, logs, `"msg":"applied migration","migration":"00001_init.sql"`)
	require.NoError(t, s.stop())

	again := startServe(t, env)
	assert.NotContains(t, again.logs.all(), "created a new database")
	assert.NotContains(t, again.logs.all(), "applied migration")
}

func TestServe_RefusesNewerDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hr.db")
	env := mapEnv(map[string]string{"HEALTHRECORD_DB": db})
	require.NoError(t, run(context.Background(), []string{"migrate"}, env, nil, io.Discard, io.Discard, nil))
	c, err := sql.Open("sqlite", db)
	require.NoError(t, err)
	_, err = c.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, 1)`)
	require.NoError(t, err)
	require.NoError(t, c.Close())

	for _, args := range [][]string{{"serve", "--addr", "127.0.0.1:0"}, {"migrate"}, {"users", "list"}} {
		var logs bytes.Buffer
		err := run(context.Background(), args, env, nil, io.Discard, &logs, nil)
		require.Error(t, err, "%v", args)
		assert.Contains(t, err.Error(), "newer healthrecord", "%v", args)
		assert.Contains(t, err.Error(), "99999")
		assert.NotContains(t, logs.String(), `"msg":"listening"`)
	}
}

func TestServe_FailsEarlyOnBusyPortOrBadTLS(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "cert.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a certificate"), 0o600))

	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"api_port":     {[]string{"--addr", busy.Addr().String()}, busy.Addr().String()},
		"metrics_port": {[]string{"--addr", "127.0.0.1:0", "--metrics-addr", busy.Addr().String()}, "--metrics-addr"},
		"tls_files":    {[]string{"--addr", "127.0.0.1:0", "--tls-cert", garbage, "--tls-key", filepath.Join(dir, "missing.pem")}, garbage},
	} {
		t.Run(name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "hr.db")
			var logs bytes.Buffer
			err := run(context.Background(), append([]string{"serve"}, tc.args...), mapEnv(map[string]string{"HEALTHRECORD_DB": db}), nil, io.Discard, &logs, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NoFileExists(t, db, "nothing created")
			assert.NoFileExists(t, db+".keys")
			assert.NotContains(t, logs.String(), "listening")
		})
	}
}

// scriptedPrompter answers createsuperuser's questions from a script and
// records them.
type scriptedPrompter struct {
	answers []string
	asked   []string
}

func (p *scriptedPrompter) next(prompt string) (string, error) {
	p.asked = append(p.asked, prompt)
	if len(p.answers) == 0 {
		return "", errors.New("script exhausted")
	}
	a := p.answers[0]
	p.answers = p.answers[1:]
	return a, nil
}

func (p *scriptedPrompter) Read([]byte) (int, error)             { return 0, io.EOF }
func (p *scriptedPrompter) Line(prompt string) (string, error)   { return p.next(prompt) }
func (p *scriptedPrompter) Secret(prompt string) (string, error) { return p.next(prompt) }

func TestCreateSuperuser_AsksLikeDjango(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hr.db")
	env := mapEnv(map[string]string{"HEALTHRECORD_DB": db})

	p := &scriptedPrompter{answers: []string{
		"", "root", "root@example.com",
		"Adm1n-Passphrase!", "Adm1n-Passphrase?", // mismatch
		"short", "short", // too weak
		"Adm1n-Passphrase!", "Adm1n-Passphrase!",
	}}
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"createsuperuser"}, env, p, &out, &errOut, nil), errOut.String())
	assert.Equal(t, []string{"Username: ", "Username: ", "Email address: ", "Password: ", "Password (again): ",
		"Password: ", "Password (again): ", "Password: ", "Password (again): "}, p.asked)
	assert.Contains(t, errOut.String(), "Error: Your passwords didn't match.")
	assert.Contains(t, errOut.String(), "too short")
	assert.Contains(t, out.String(), `Superuser "root" created`)

	// Given flags are not asked for; three bad tries give up.
	p = &scriptedPrompter{answers: []string{"a", "b", "weak", "weak", "c", "d"}}
	err := run(context.Background(), []string{"createsuperuser", "--username", "root2", "--email", "r2@example.com"}, env, p, io.Discard, io.Discard, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "3 tries")
	assert.NotContains(t, fmt.Sprint(p.asked), "Username")
	var list bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"users", "list"}, env, nil, &list, io.Discard, nil))
	assert.NotContains(t, list.String(), "root2")
}

func TestCLI_ErrorsNameTheirFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "hr.db")
	env := mapEnv(map[string]string{"HEALTHRECORD_DB": db})
	require.NoError(t, run(context.Background(), []string{"migrate"}, env, nil, io.Discard, io.Discard, nil))

	keys := db + ".keys"
	require.NoError(t, os.WriteFile(keys, []byte("{not json"), 0o600))
	for _, args := range [][]string{{"serve", "--addr", "127.0.0.1:0"}, {"keys", "rotate"}} {
		err := run(context.Background(), args, env, nil, io.Discard, io.Discard, nil)
		require.Error(t, err, "%v", args)
		assert.Contains(t, err.Error(), keys, "%v", args)
	}

	notDB := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notDB, []byte("this is not a database, but long enough to look like a header........"), 0o600))
	err := run(context.Background(), []string{"users", "list", "--db", notDB}, env, nil, io.Discard, io.Discard, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), notDB)

	err = run(context.Background(), []string{"backup", filepath.Join(dir, "no", "such", "dir.db")}, env, nil, io.Discard, io.Discard, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(dir, "no", "such", "dir.db"))
}

// TestServe_StreamEndsAtShutdown: an open notification stream does not
// hold a graceful stop until its deadline.
func TestServe_StreamEndsAtShutdown(t *testing.T) {
	s := mustServe(t, map[string]string{"HEALTHRECORD_SHUTDOWN_TIMEOUT": "20s"})
	_, token := s.mustUser("drstream", "DOCTOR")
	req, err := http.NewRequest("GET", s.url+"/api/notifications/stream/", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))

	start := time.Now()
	require.NoError(t, s.stop())
	assert.Less(t, time.Since(start), 10*time.Second, "the stream ended with the server")
	_, err = io.ReadAll(res.Body)
	assert.NoError(t, err, "the stream ends cleanly")
}

func TestLogger_DurationsAreReadable(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf, "info").Info("waited", "delay", 90*time.Second, "short", 1500*time.Microsecond)
	assert.Contains(t, buf.String(), `"delay":"1m30s"`)
	assert.Contains(t, buf.String(), `"short":"1.5ms"`)
}

func TestConfig_CountWhereZeroIsOff(t *testing.T) {
	var n int64
	fs := newFlagSet("x", mapEnv(map[string]string{"HEALTHRECORD_X": "0"}), io.Discard)
	fs.int64OrOff(&n, "x", "HEALTHRECORD_X", 7, "a limit")
	require.NoError(t, fs.parse(nil))
	assert.Zero(t, n, "0 is off, not refused")
	fs = newFlagSet("x", mapEnv(map[string]string{"HEALTHRECORD_X": "-1"}), io.Discard)
	fs.int64OrOff(&n, "x", "HEALTHRECORD_X", 7, "a limit")
	err := fs.parse(nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HEALTHRECORD_X")
	fs = newFlagSet("x", mapEnv(nil), io.Discard)
	fs.int64OrOff(&n, "x", "HEALTHRECORD_X", 7, "a limit")
	require.NoError(t, fs.parse([]string{"--x", "12"}))
	assert.EqualValues(t, 12, n)
}
