package main

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/internal/pgtest"
)

// pgEnv is the environment of an instance on a fresh PostgreSQL schema,
// with a key file of its own.
func pgEnv(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{
		"HEALTHRECORD_DB":       pgtest.New(t).Schema(t),
		"HEALTHRECORD_KEY_FILE": filepath.Join(t.TempDir(), "keys"),
	}
}

// runCLI runs one command with env and returns its output.
func runCLI(env map[string]string, args ...string) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), args, mapEnv(env), strings.NewReader(""), &out, &out, nil)
	return out.String(), err
}

func TestPostgres_MigrateAndStatus(t *testing.T) {
	env := pgEnv(t)
	out, err := runCLI(env, "migrate", "status")
	require.NoError(t, err, out)
	assert.Contains(t, out, "00001  pending  00001_init.sql")
	out, err = runCLI(env, "migrate")
	require.NoError(t, err, out)
	assert.Contains(t, out, "00001  applied  00001_init.sql")
}

func TestPostgres_BackupSaysUsePgDump(t *testing.T) {
	out, err := runCLI(pgEnv(t), "backup", filepath.Join(t.TempDir(), "b.db"))
	require.Error(t, err)
	assert.Contains(t, err.Error()+out, "pg_dump")
}

func TestPostgres_KeyFileRequired(t *testing.T) {
	env := pgEnv(t)
	delete(env, "HEALTHRECORD_KEY_FILE")
	_, err := runCLI(env, "migrate")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HEALTHRECORD_KEY_FILE")
}

func TestPostgres_ErrorsNeverShowThePassword(t *testing.T) {
	env := pgEnv(t)
	env["HEALTHRECORD_DB"] = "postgres://u:s3cret-pw@127.0.0.1:1/db?connect_timeout=2"
	out, err := runCLI(env, "migrate")
	require.Error(t, err)
	assert.NotContains(t, err.Error()+out, "s3cret-pw")
}

// The same binary serves on PostgreSQL: an assignment's in-API
// notification arrives, and the audit trail verifies.
func TestPostgres_Serve(t *testing.T) {
	env := pgEnv(t)
	env["HEALTHRECORD_AUTO_APPROVE_DOCTORS"] = "true"
	s := startServe(t, env)
	_, patient := s.mustUser("pat", "PATIENT")
	doctorID, doctor := s.mustUser("doc", "DOCTOR")
	s.createAssigned(patient, doctorID, 2)
	require.Eventually(t, func() bool { return s.notesOf(doctor) == 2 }, 10*time.Second, 20*time.Millisecond)
	var recs []map[string]any
	code, _ := s.call("GET", "/api/records/", doctor, nil, &recs)
	require.Equal(t, http.StatusOK, code)
	assert.Len(t, recs, 2)
	out, err := s.cli("audit", "verify")
	require.NoError(t, err, out)
}
