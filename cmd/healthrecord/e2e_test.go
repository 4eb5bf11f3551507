package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's walk-through, end to end through run: register, approve by
// CLI, sign in, create an assigned record, notification, read, comment,
// access log, clean shutdown with the read audit entries on disk. Once
// per store.
func TestServe_WalkThrough(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { walkThrough(t, nil) })
	t.Run("postgres", func(t *testing.T) { walkThrough(t, pgEnv(t)) })
}

func walkThrough(t *testing.T, env map[string]string) {
	s := mustServe(t, env)
	patientID, patient := s.mustUser("alice", "PATIENT")
	doctorID, doctor := s.mustUser("drbob", "DOCTOR")

	// An unapproved doctor cannot be assigned.
	var errBody map[string][]string
	code, _ := s.call("POST", "/api/records/", patient, map[string]any{"title": "t", "content": "c", "doctor": doctorID}, &errBody)
	require.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, []string{fmt.Sprintf("Invalid pk \"%d\" - object does not exist.", doctorID)}, errBody["doctor"])

	out, err := s.cli("users", "approve", "drbob")
	require.NoError(t, err, out)
	assert.Contains(t, out, "drbob")

	var doctors []map[string]any
	code, _ = s.call("GET", "/api/doctors/", patient, nil, &doctors)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, doctors, 1)
	assert.Equal(t, map[string]any{"id": float64(doctorID), "username": "drbob"}, doctors[0])

	var rec struct {
		ID      int64
		Patient int64
		Doctor  int64
		Title   string
	}
	code, _ = s.call("POST", "/api/records/", patient, map[string]any{"title": "Blood test", "content": "Cholesterol 5.2", "doctor": doctorID}, &rec)
	require.Equal(t, http.StatusCreated, code)
	assert.Equal(t, patientID, rec.Patient)
	assert.Equal(t, doctorID, rec.Doctor)

	// The dispatcher delivers the notification without a request's help.
	var notes []map[string]any
	require.Eventually(t, func() bool {
		notes = nil
		code, _ := s.call("GET", "/api/notifications/", doctor, nil, &notes)
		return code == http.StatusOK && len(notes) == 1
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, "doctor_assigned", notes[0]["kind"])
	assert.Equal(t, float64(rec.ID), notes[0]["record"])
	assert.Equal(t, float64(patientID), notes[0]["patient"])

	code, _ = s.call("GET", fmt.Sprintf("/api/records/%d/", rec.ID), doctor, nil, nil)
	require.Equal(t, http.StatusOK, code)
	var comment map[string]any
	code, _ = s.call("POST", "/api/comments/", doctor, map[string]any{"record": rec.ID, "comment": "Within range."}, &comment)
	require.Equal(t, http.StatusCreated, code)

	var full struct{ Comments []map[string]any }
	code, _ = s.call("GET", fmt.Sprintf("/api/records/%d", rec.ID), patient, nil, &full)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, full.Comments, 1)
	assert.Equal(t, "Within range.", full.Comments[0]["comment"])

	var log []map[string]any
	code, _ = s.call("GET", fmt.Sprintf("/api/records/%d/access-log/", rec.ID), patient, nil, &log)
	require.Equal(t, http.StatusOK, code)
	actions := map[string]bool{}
	for _, e := range log {
		actions[e["action"].(string)] = true
	}
	for _, a := range []string{"record.create", "record.read", "comment.create"} {
		assert.True(t, actions[a], "access log lacks %s: %v", a, log)
	}

	// A doctor cannot create; the original's own test.
	code, _ = s.call("POST", "/api/records/", doctor, map[string]any{"title": "x", "content": "y"}, nil)
	assert.Equal(t, http.StatusForbidden, code)

	// Reads made just before a clean shutdown are not lost.
	for range 3 {
		s.call("GET", fmt.Sprintf("/api/records/%d/", rec.ID), doctor, nil, nil)
	}
	require.NoError(t, s.stop())
	out, err = s.cli("audit", "verify")
	require.NoError(t, err, out)
	assert.Contains(t, out, "intact")

	s2 := startServe(t, s.env)
	admin := mustAdmin(t, s2)
	var entries []map[string]any
	code, _ = s2.call("GET", fmt.Sprintf("/api/admin/audit/?record=%d&actor=%d&limit=500", rec.ID, doctorID), admin, nil, &entries)
	require.Equal(t, http.StatusOK, code)
	reads := 0
	for _, e := range entries {
		if e["action"] == "record.read" {
			reads++
		}
	}
	assert.Equal(t, 4, reads, "every read by the doctor is in the audit trail after shutdown")

	// No secret or health content in the logs; each request has its line.
	logs := s.logs.all() + s2.logs.all()
	assert.Regexp(t, `(?m)^\{"time":"[^"]+","level":"INFO","msg":"request","method":"GET","route":"/api/records/\{id\}/","status":200,"duration_us":\d+,"bytes":\d+,"request_id":"[0-9a-f]{32}","remote":"127\.0\.0\.1"\}$`, logs)
	for _, secret := range []string{"Corr3ct-Horse", "Blood test", "Cholesterol", "Within range", patient, doctor} {
		assert.NotContains(t, logs, secret)
	}
}

// mustAdmin creates an admin through the CLI and signs it in.
func mustAdmin(t *testing.T, s *server) string {
	t.Helper()
	env := map[string]string{"HEALTHRECORD_SUPERUSER_PASSWORD": "Adm1n-Passphrase!"}
	for k, v := range s.env {
		env[k] = v
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"createsuperuser", "--username", "root", "--email", "root@example.com", "--noinput"},
		mapEnv(env), strings.NewReader(""), &out, &out, nil)
	require.NoError(t, err, out.String())
	return s.signIn("root", "Adm1n-Passphrase!").Access
}

func TestCreateSuperuser_NeedsTerminalOrNoinput(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"HEALTHRECORD_DB": filepath.Join(dir, "hr.db")}
	var out bytes.Buffer
	err := run(context.Background(), []string{"createsuperuser", "--username", "root", "--email", "r@example.com"},
		mapEnv(env), strings.NewReader("secret\n"), &out, &out, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HEALTHRECORD_SUPERUSER_PASSWORD")

	err = run(context.Background(), []string{"createsuperuser", "--username", "root", "--email", "r@example.com", "--noinput"},
		mapEnv(env), strings.NewReader(""), &out, &out, nil)
	require.Error(t, err, "--noinput without the variable")

	env["HEALTHRECORD_SUPERUSER_PASSWORD"] = "short"
	err = run(context.Background(), []string{"createsuperuser", "--username", "root", "--email", "r@example.com", "--noinput"},
		mapEnv(env), strings.NewReader(""), &out, &out, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "too short")

	env["HEALTHRECORD_SUPERUSER_PASSWORD"] = "Adm1n-Passphrase!"
	out.Reset()
	err = run(context.Background(), []string{"createsuperuser", "--username", "root", "--email", "r@example.com", "--noinput"},
		mapEnv(env), strings.NewReader(""), &out, &out, nil)
	require.NoError(t, err, out.String())
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"users", "list"}, mapEnv(env), nil, &out, &out, nil))
	assert.Regexp(t, `root\s+r@example.com\s+ADMIN`, out.String())
}

func TestCLI_UsageErrors(t *testing.T) {
	env := mapEnv(map[string]string{"HEALTHRECORD_DB": filepath.Join(t.TempDir(), "hr.db")})
	for _, args := range [][]string{
		{}, {"nope"}, {"users"}, {"users", "approve"}, {"users", "frob", "x"}, {"outbox"}, {"outbox", "retry", "abc"},
		{"audit"}, {"keys"}, {"backup"}, {"migrate", "sideways"}, {"serve", "--no-such-flag"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), args, env, nil, &out, &out, nil)
		require.Error(t, err, "%v", args)
		var u usageError
		assert.ErrorAs(t, err, &u, "%v is a usage error: %v", args, err)
	}
}

func TestConfig_FlagsWinOverEnvironment(t *testing.T) {
	var c config
	fs := newFlagSet("serve", mapEnv(map[string]string{
		"HEALTHRECORD_ADDR": "127.0.0.1:9", "HEALTHRECORD_ACCESS_TTL": "10m", "HEALTHRECORD_AUTO_APPROVE_DOCTORS": "true",
	}), &bytes.Buffer{})
	fs.serveFlags(&c)
	require.NoError(t, fs.parse([]string{"--addr", "127.0.0.1:10"}))
	require.NoError(t, c.validate())
	assert.Equal(t, "127.0.0.1:10", c.Addr)
	assert.Equal(t, 10*time.Minute, c.AccessTTL)
	assert.True(t, c.AutoApproveDoctors)
	assert.Equal(t, "./healthrecord.db.keys", c.KeyFile)

	for env, want := range map[string]string{
		"HEALTHRECORD_ACCESS_TTL":           "HEALTHRECORD_ACCESS_TTL",
		"HEALTHRECORD_AUTO_APPROVE_DOCTORS": "HEALTHRECORD_AUTO_APPROVE_DOCTORS",
		"HEALTHRECORD_MAX_BODY":             "HEALTHRECORD_MAX_BODY",
	} {
		fs := newFlagSet("serve", mapEnv(map[string]string{env: "bogus"}), &bytes.Buffer{})
		fs.serveFlags(&c)
		err := fs.parse(nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), want)
	}
	bad := config{DB: "x", Addr: "nocolon", TLSCert: "a", LogLevel: "loud", SMTPStartTLS: "maybe", AccessTTL: time.Hour, RefreshTTL: time.Minute}
	err := bad.validate()
	require.Error(t, err)
	for _, want := range []string{"--addr", "--tls-cert", "--log-level", "--smtp-starttls", "--access-ttl"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestCLI_MigrateBackupKeysAndUsers(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"HEALTHRECORD_DB": filepath.Join(dir, "hr.db")}
	s := startServe(t, env)
	_, patient := s.mustUser("carol", "PATIENT")
	_, doctorTok := s.mustUser("drdan", "DOCTOR")
	for i := range 5 {
		code, _ := s.call("POST", "/api/records/", patient, map[string]any{"title": fmt.Sprint("r", i), "content": "c"}, nil)
		require.Equal(t, http.StatusCreated, code)
	}

	out, err := s.cli("migrate", "status")
	require.NoError(t, err)
	assert.Contains(t, out, "applied")
	assert.NotContains(t, out, "pending")

	dest := filepath.Join(dir, "copy.db")
	out, err = s.cli("backup", dest)
	require.NoError(t, err, out)
	fi, err := os.Stat(dest)
	require.NoError(t, err)
	assert.Positive(t, fi.Size())
	_, err = s.cli("backup", dest)
	assert.Error(t, err, "a backup never overwrites a file")

	// Rotation: the token issued before keeps working, new ones work too.
	out, err = s.cli("keys", "rotate")
	require.NoError(t, err, out)
	code, _ := s.call("GET", "/api/users/me/", patient, nil, nil)
	assert.Equal(t, http.StatusOK, code)
	fresh := s.signIn("carol", "Corr3ct-Horse-carol").Access
	code, _ = s.call("GET", "/api/users/me/", fresh, nil, nil)
	assert.Equal(t, http.StatusOK, code)

	// Deactivation from the CLI stops the running server's tokens quickly.
	out, err = s.cli("users", "deactivate", "drdan")
	require.NoError(t, err, out)
	require.Eventually(t, func() bool {
		code, _ := s.call("GET", "/api/users/me/", doctorTok, nil, nil)
		return code == http.StatusUnauthorized
	}, 5*time.Second, 50*time.Millisecond)
	_, err = s.cli("users", "approve", "nobody")
	assert.ErrorContains(t, err, "nobody")
	_, err = s.cli("users", "approve", "carol")
	assert.Error(t, err, "patients need no approval")

	out, err = s.cli("outbox", "list", "--state", "dead", "--json")
	require.NoError(t, err, out)
	assert.JSONEq(t, "[]", out)
	_, err = s.cli("outbox", "list", "--state", "weird")
	assert.Error(t, err)
	_, err = s.cli("outbox", "retry", "999")
	assert.Error(t, err)
}
