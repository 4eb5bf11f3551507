package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawDB opens the database file behind the server's back, as someone with
// write access to the file (but not the key files) could.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestCLI_SecurityEventsAudited: account, key and outbox commands run from
// the command line leave entries with no actor and the "cli" request id.
func TestCLI_SecurityEventsAudited(t *testing.T) {
	s := mustServe(t, nil)
	admin := mustAdmin(t, s)
	_, patient := s.mustUser("erin", "PATIENT")
	doctorID, _ := s.mustUser("drfox", "DOCTOR")
	for _, args := range [][]string{{"users", "approve", "drfox"}, {"users", "deactivate", "drfox"}, {"users", "activate", "drfox"}, {"keys", "rotate"}} {
		out, err := s.cli(args...)
		require.NoError(t, err, out)
	}
	var rec struct{ ID int64 }
	code, _ := s.call("POST", "/api/records/", patient, map[string]any{"title": "t", "content": "c", "doctor": doctorID}, &rec)
	require.Equal(t, http.StatusCreated, code)
	// Make its event dead behind the server's back, then retry it.
	_, err := rawDB(t, s.db).ExecContext(context.Background(), `UPDATE outbox SET state = 'dead' WHERE record_id = ?`, rec.ID)
	require.NoError(t, err)
	var events []struct{ ID int64 }
	code, _ = s.call("GET", "/api/admin/outbox/?state=dead", admin, nil, &events)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, events, 1)
	out, err := s.cli("outbox", "retry", fmt.Sprint(events[0].ID))
	require.NoError(t, err, out)

	for _, action := range []string{"user.approve", "user.deactivate", "user.activate", "keys.rotate", "outbox.retry", "user.create_superuser"} {
		var entries []map[string]any
		code, _ := s.call("GET", "/api/admin/audit/?action="+action, admin, nil, &entries)
		require.Equal(t, http.StatusOK, code)
		require.Len(t, entries, 1, action)
		assert.Equal(t, "cli", entries[0]["request_id"], action)
		assert.Nil(t, entries[0]["record"], action)
		assert.Nil(t, entries[0]["patient"], action)
		if action == "user.create_superuser" {
			assert.Equal(t, "ADMIN", entries[0]["actor_role"], "the account created")
		} else {
			assert.Nil(t, entries[0]["actor"], action)
		}
	}
}
