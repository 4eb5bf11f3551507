package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
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
	// Once the dispatcher is done with its event, make it dead behind the
	// server's back (delivery and summary alike), then retry it.
	raw := rawDB(t, s.db)
	require.Eventually(t, func() bool {
		var state string
		err := raw.QueryRow(`SELECT state FROM outbox WHERE record_id = ?`, rec.ID).Scan(&state)
		return err == nil && state == "delivered"
	}, 10*time.Second, 20*time.Millisecond)
	_, err := raw.ExecContext(context.Background(), `UPDATE outbox_deliveries SET state = 'dead', last_error = 'refused'
		WHERE event_id = (SELECT id FROM outbox WHERE record_id = ?)`, rec.ID)
	require.NoError(t, err)
	_, err = raw.ExecContext(context.Background(), `UPDATE outbox SET state = 'dead' WHERE record_id = ?`, rec.ID)
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

// withActivity runs serve on env (a fresh database when nil), makes a few
// audited requests and stops it, so the CLI works on a quiet file.
func withActivity(t *testing.T, s *server, name string) *server {
	t.Helper()
	if s == nil {
		s = mustServe(t, nil)
	} else {
		s = startServe(t, s.env)
	}
	_, tok := s.mustUser(name, "PATIENT")
	for i := range 3 {
		var rec struct{ ID int64 }
		code, _ := s.call("POST", "/api/records/", tok, map[string]any{"title": fmt.Sprint("r", i), "content": "c"}, &rec)
		require.Equal(t, http.StatusCreated, code)
		code, _ = s.call("GET", fmt.Sprintf("/api/records/%d/", rec.ID), tok, nil, nil)
		require.Equal(t, http.StatusOK, code)
	}
	require.NoError(t, s.stop())
	return s
}

// mustHead runs `audit head` and parses its {id, hash}.
func mustHead(t *testing.T, s *server) (int64, string) {
	t.Helper()
	out, err := s.cli("audit", "head")
	require.NoError(t, err, out)
	var h struct {
		ID   int64  `json:"id"`
		Hash string `json:"hash"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &h), out)
	require.Positive(t, h.ID)
	require.Len(t, h.Hash, 64)
	return h.ID, h.Hash
}

// auditRows reads the chain as stored.
func auditRows(t *testing.T, db *sql.DB) []domain.AuditEntry {
	t.Helper()
	rows, err := db.Query(`SELECT id, at, actor_id, actor_role, action, record_id, patient_id, outcome,
		request_id, remote_addr, prev_hash, hash FROM audit ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var out []domain.AuditEntry
	for rows.Next() {
		var e domain.AuditEntry
		var at int64
		var role string
		require.NoError(t, rows.Scan(&e.ID, &at, &e.ActorID, &role, &e.Action, &e.RecordID, &e.PatientID, &e.Outcome,
			&e.RequestID, &e.RemoteAddr, &e.PrevHash, &e.Hash))
		e.At, e.ActorRole = time.Unix(0, at).UTC(), domain.Role(role)
		out = append(out, e)
	}
	require.NoError(t, rows.Err())
	return out
}

// rechain rewrites every entry from id on with hash, and the head with
// head (nil: the head's MAC is left as it is), as an intruder who edits
// an entry and recomputes the chain after it would.
func rechain(t *testing.T, db *sql.DB, from int64, hash func(e domain.AuditEntry, prev string) string, head func(id int64, h string) string) {
	t.Helper()
	es := auditRows(t, db)
	prev := ""
	for _, e := range es {
		if e.ID >= from {
			e.PrevHash, e.Hash = prev, hash(e, prev)
			_, err := db.Exec(`UPDATE audit SET outcome = ?, prev_hash = ?, hash = ? WHERE id = ?`, e.Outcome, e.PrevHash, e.Hash, e.ID)
			require.NoError(t, err)
		}
		prev = e.Hash
	}
	last := es[len(es)-1]
	_, err := db.Exec(`UPDATE audit_head SET last_id = ?, last_hash = ?`, last.ID, prev)
	require.NoError(t, err)
	if head != nil {
		_, err = db.Exec(`UPDATE audit_head SET head_mac = ?`, head(last.ID, prev))
		require.NoError(t, err)
	}
}

// TestAuditChain_TruncatedTailAndHeadMovedBack: an intruder deletes the
// newest entries and puts back a head row it saved earlier (its MAC was
// genuine then); only the head kept outside catches it, and it does.
func TestAuditChain_TruncatedTailAndHeadMovedBack(t *testing.T) {
	s := withActivity(t, nil, "gina")
	assert.Contains(t, s.logs.all(), `"msg":"audit head"`, "serve logs the head (at start, then hourly)")
	out, err := s.cli("audit", "verify")
	require.NoError(t, err, out)
	earlyID, _ := mustHead(t, s)
	raw := rawDB(t, s.db)
	var savedHash, savedMAC string
	require.NoError(t, raw.QueryRow(`SELECT last_hash, head_mac FROM audit_head`).Scan(&savedHash, &savedMAC))

	s = withActivity(t, s, "hank")
	lateID, lateHash := mustHead(t, s)
	require.Greater(t, lateID, earlyID)
	kept := fmt.Sprintf("%d:%s", lateID, lateHash)
	out, err = s.cli("audit", "verify", "--head", kept)
	require.NoError(t, err, out)

	// Moved back without a MAC for the new head: verify alone sees it.
	_, err = raw.Exec(`DELETE FROM audit WHERE id > ?; UPDATE audit_head SET last_id = ?, last_hash = ?`, earlyID, earlyID, savedHash)
	require.NoError(t, err)
	out, err = s.cli("audit", "verify")
	require.Error(t, err, out)

	// With the head row saved earlier put back, the chain is a consistent
	// older one: the head kept outside is no longer in it.
	_, err = raw.Exec(`UPDATE audit_head SET head_mac = ?`, savedMAC)
	require.NoError(t, err)
	out, err = s.cli("audit", "verify", "--head", kept)
	require.Error(t, err, out)
	assert.Contains(t, err.Error(), fmt.Sprint(earlyID+1), "names the first entry missing")
	assert.Contains(t, err.Error(), "head")
}

// TestAuditChain_EditedAndRechained: an intruder edits an entry and
// recomputes the chain after it, unkeyed (the SHA-256 chain of revision 1,
// even marking the chain as not yet keyed) or under a key of its own;
// verify fails at the edited entry either way.
func TestAuditChain_EditedAndRechained(t *testing.T) {
	wrong := domain.NewAuditHasher(domain.AuditKey(bytes.Repeat([]byte{7}, 32)))
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, raw *sql.DB, id int64)
	}{
		{"unkeyed", func(t *testing.T, raw *sql.DB, id int64) {
			rechain(t, raw, id, func(e domain.AuditEntry, prev string) string { return e.LegacyChainHash(prev) }, nil)
			_, err := raw.Exec(`UPDATE audit_head SET keyed = 0, head_mac = ''`)
			require.NoError(t, err)
		}},
		{"wrong_key", func(t *testing.T, raw *sql.DB, id int64) {
			rechain(t, raw, id, wrong.Entry, wrong.Head)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := withActivity(t, nil, "ivan")
			raw := rawDB(t, s.db)
			const edited = 3
			_, err := raw.Exec(`UPDATE audit SET outcome = 'denied' WHERE id = ?`, edited)
			require.NoError(t, err)
			tc.tamper(t, raw, edited)
			out, err := s.cli("audit", "verify")
			require.Error(t, err, out)
			assert.Contains(t, err.Error(), fmt.Sprintf("entry %d", edited))
			_, err = s.cli("audit", "head")
			require.Error(t, err, "no head is printed for a broken chain")
		})
	}
}

// TestAuditChain_UpgradeRekeysAVerifiedLegacyChain: a database written
// before the chain was keyed (SHA-256, no audit key yet) is verified, then
// re-keyed from its first entry when the key is made; a legacy chain that
// does not verify is refused rather than laundered into a keyed one.
func TestAuditChain_UpgradeRekeysAVerifiedLegacyChain(t *testing.T) {
	legacy := func(t *testing.T) (*server, *sql.DB) {
		s := withActivity(t, nil, "judy")
		raw := rawDB(t, s.db)
		rechain(t, raw, 1, func(e domain.AuditEntry, prev string) string { return e.LegacyChainHash(prev) }, nil)
		_, err := raw.Exec(`UPDATE audit_head SET keyed = 0, head_mac = ''`)
		require.NoError(t, err)
		require.NoError(t, os.Remove(s.db+".keys.audit"))
		return s, raw
	}
	t.Run("intact", func(t *testing.T) {
		s, raw := legacy(t)
		n := len(auditRows(t, raw))
		out, err := s.cli("audit", "verify")
		require.NoError(t, err, out)
		assert.Contains(t, out, fmt.Sprint(n))
		fi, err := os.Stat(s.db + ".keys.audit")
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		for _, e := range auditRows(t, raw) {
			assert.NotEqual(t, e.LegacyChainHash(e.PrevHash), e.Hash, "entry %d re-keyed", e.ID)
		}
		// Re-keyed once: marking it legacy again does not re-key it again.
		_, err = raw.Exec(`UPDATE audit_head SET keyed = 0`)
		require.NoError(t, err)
		rechain(t, raw, 1, func(e domain.AuditEntry, prev string) string { return e.LegacyChainHash(prev) }, nil)
		_, err = s.cli("audit", "verify")
		require.Error(t, err)
	})
	t.Run("broken", func(t *testing.T) {
		s, raw := legacy(t)
		_, err := raw.Exec(`UPDATE audit SET outcome = 'denied' WHERE id = 2`)
		require.NoError(t, err)
		out, err := s.cli("audit", "verify")
		require.Error(t, err, out)
		assert.Contains(t, err.Error(), "entry 2")
		_, err = os.Stat(s.db + ".keys.audit")
		assert.ErrorIs(t, err, os.ErrNotExist, "no key is kept for a chain that was not re-keyed")
	})
}
