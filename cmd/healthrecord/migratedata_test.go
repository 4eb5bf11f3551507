package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/internal/pgtest"
)

// A SQLite database in use (users, records, comments, notifications,
// outbox deliveries, sessions, a deleted record, audit entries) moves to
// PostgreSQL with migrate-data: the same answers there, the tokens issued
// on SQLite still valid, new ids past every old one, the audit chain
// intact under the same key; a second run refuses the filled database.
func TestMigrateData_SQLiteToPostgres(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hr.db")
	keys := filepath.Join(dir, "keys")
	s := startServe(t, map[string]string{"HEALTHRECORD_DB": path, "HEALTHRECORD_KEY_FILE": keys,
		"HEALTHRECORD_AUTO_APPROVE_DOCTORS": "true"})
	patientID, patient := s.mustUser("pat", "PATIENT")
	doctorID, doctor := s.mustUser("doc", "DOCTOR")
	s.createAssigned(patient, doctorID, 3)
	require.Eventually(t, func() bool { return s.notesOf(doctor) == 3 }, 10*time.Second, 20*time.Millisecond)
	var recs []map[string]any
	code, _ := s.call("GET", "/api/records/", patient, nil, &recs)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, recs, 3)
	var c map[string]any
	code, _ = s.call("POST", "/api/comments/", doctor, map[string]any{"record": recs[0]["id"], "comment": "Looks fine."}, &c)
	require.Equal(t, http.StatusCreated, code)
	// The newest record deleted: its id must not come back on PostgreSQL.
	var maxID float64
	for _, r := range recs {
		maxID = max(maxID, r["id"].(float64))
	}
	code, _ = s.call("DELETE", fmt.Sprintf("/api/records/%d/", int64(maxID)), patient, nil, nil)
	require.Equal(t, http.StatusNoContent, code)
	var before []map[string]any
	code, _ = s.call("GET", "/api/records/", doctor, nil, &before)
	require.Equal(t, http.StatusOK, code)
	// The lists above left one entry per record shown, which SQLite keeps
	// in one row a list: PostgreSQL must show the same access log.
	accessLog := fmt.Sprintf("/api/records/%d/access-log/", int64(before[0]["id"].(float64)))
	var logBefore []map[string]any
	code, _ = s.call("GET", accessLog, patient, nil, &logBefore)
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, s.stop())

	pg := pgtest.New(t).Schema(t)
	out, err := runCLI(map[string]string{"HEALTHRECORD_KEY_FILE": keys}, "migrate-data", "--from", "sqlite://"+path, "--to", pg)
	require.NoError(t, err, out)
	assert.Contains(t, out, "Audit trail intact on PostgreSQL")
	assert.Regexp(t, `records\s+2 rows`, out)

	env := map[string]string{"HEALTHRECORD_DB": pg, "HEALTHRECORD_KEY_FILE": keys}
	out, err = runCLI(env, "audit", "verify")
	require.NoError(t, err, out)
	p := startServe(t, env)
	var after []map[string]any
	code, _ = p.call("GET", "/api/records/", doctor, nil, &after) // a token issued on SQLite
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, before, after)
	var logAfter []map[string]any
	code, _ = p.call("GET", accessLog, patient, nil, &logAfter)
	require.Equal(t, http.StatusOK, code)
	require.GreaterOrEqual(t, len(logBefore), 3, "three lists showed the record")
	assert.Equal(t, logBefore, logAfter[len(logAfter)-len(logBefore):], "the access log, oldest entries as on SQLite")
	assert.Equal(t, 3, p.notesOf(doctor))
	var created map[string]any
	code, _ = p.call("POST", "/api/records/", patient, map[string]any{"title": "t", "content": "c"}, &created)
	require.Equal(t, http.StatusCreated, code)
	assert.Greater(t, created["id"].(float64), maxID, "ids are never reused")
	assert.Equal(t, float64(patientID), created["patient"])
	var me map[string]any
	code, _ = p.call("GET", "/api/users/me/", patient, nil, &me)
	require.Equal(t, http.StatusOK, code, "the session copied")
	require.NoError(t, p.stop())
	out, err = runCLI(env, "audit", "verify")
	require.NoError(t, err, out)

	out, err = runCLI(map[string]string{"HEALTHRECORD_KEY_FILE": keys}, "migrate-data", "--from", "sqlite://"+path, "--to", pg)
	require.Error(t, err, out)
	assert.Contains(t, err.Error(), "empty database only")
}

func TestMigrateData_UsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"migrate-data"},
		{"migrate-data", "--from", "/x.db", "--to", "postgres://h/db"},
		{"migrate-data", "--from", "sqlite:///x.db", "--to", "/y.db"},
		{"migrate-data", "--from", "sqlite:///x.db", "--to", "postgres://h/db", "extra"},
	} {
		_, err := runCLI(map[string]string{}, args...)
		var u usageError
		assert.ErrorAs(t, err, &u, "%v", args)
	}
}
