package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tryCreate creates a record assigned to doctorID through s without
// failing the test (it runs on other goroutines): the status, or an
// error when there was no answer.
func (s *server) tryCreate(token string, doctorID int64, title string) (int, error) {
	b, _ := json.Marshal(map[string]any{"title": title, "content": "secret content", "doctor": doctorID})
	req, err := http.NewRequest("POST", s.url+"/api/records/", bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// meCode is the status of GET /api/users/me/ with token.
func (s *server) meCode(token string) int {
	s.t.Helper()
	code, _ := s.call("GET", "/api/users/me/", token, nil, nil)
	return code
}

// refusedWithin polls every instance in others until each refuses token,
// and returns how long the slowest took, failing after limit.
func refusedWithin(t *testing.T, others []*server, token string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var slowest time.Duration
	for _, s := range others {
		for s.meCode(token) != http.StatusUnauthorized {
			require.Less(t, time.Since(start), limit, "%s still takes the revoked token", s.url)
			time.Sleep(5 * time.Millisecond)
		}
		slowest = max(slowest, time.Since(start))
	}
	return slowest
}

// count runs a SELECT count(*) on the shared database; -1 (and a failed
// test) on an error. It may run inside Eventually's goroutine.
func count(t *testing.T, db *pgx.Conn, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(t.Context(), query, args...).Scan(&n); !assert.NoError(t, err) {
		return -1
	}
	return n
}

// Three real `serve` processes on one PostgreSQL database, one SMTP relay:
// every assignment, whichever instance took it, gives exactly one in-app
// notification and one email; a token from one instance works on the
// others, and a revocation on one (or through the CLI) is refused by the
// others within a second; ten failed sign-ins spread over the three make
// the eleventh 429 on each; an instance SIGKILLed while it holds leased
// email deliveries loses none of them (the others deliver them once the
// lease ends) and doubles no notification; the audit trail verifies
// afterwards.
func TestPostgres_ThreeInstancesShareOneDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary three times")
	}
	env := pgEnv(t)
	smtpAddr := freePort(t)
	mb := startMailbox(t, smtpAddr)
	for k, v := range map[string]string{
		"HEALTHRECORD_SMTP_ADDR":              smtpAddr,
		"HEALTHRECORD_SMTP_STARTTLS":          "never",
		"HEALTHRECORD_SMTP_CONNECTIONS":       "2",
		"HEALTHRECORD_OUTBOX_BACKOFF":         "50ms",
		"HEALTHRECORD_OUTBOX_ATTEMPT_TIMEOUT": "5s",
		// A dead instance's claims free up after this.
		"HEALTHRECORD_OUTBOX_LEASE":         "8s",
		"HEALTHRECORD_AUTO_APPROVE_DOCTORS": "true",
	} {
		env[k] = v
	}
	bin := buildBinary(t)
	var srv []*server
	var victimPID int
	var victimKill func()
	for i := range 3 {
		cmd, s := startProcess(t, bin, env)
		srv = append(srv, s)
		if i == 2 {
			victimPID = cmd.Process.Pid
			victimKill = func() { require.NoError(t, cmd.Process.Signal(syscall.SIGKILL)); _ = cmd.Wait() }
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, s := range srv {
				t.Logf("instance %d log:\n%s", i, s.logs.all())
			}
		}
	})
	for i, s := range srv {
		require.Eventually(t, func() bool { return strings.Contains(s.logs.all(), "listening for other instances' changes") },
			30*time.Second, 20*time.Millisecond, "instance %d listens", i)
	}
	db, err := pgx.Connect(t.Context(), env["HEALTHRECORD_DB"])
	require.NoError(t, err)
	defer db.Close(context.Background())

	admin := mustAdmin(t, srv[0])
	_, patient := srv[0].mustUser("pat", "PATIENT")
	doctorID, doctor := srv[1].mustUser("doc", "DOCTOR")

	// A token from one instance works on the others.
	for i, s := range srv {
		assert.Equal(t, http.StatusOK, s.meCode(patient), "instance %d takes the token instance 0 issued", i)
		assert.Equal(t, http.StatusOK, s.meCode(doctor), "instance %d takes the token instance 1 issued", i)
	}

	// Assignments through all three at once.
	const each = 5
	var wg sync.WaitGroup
	for i, s := range srv {
		wg.Go(func() {
			for j := range each {
				code, err := s.tryCreate(patient, doctorID, fmt.Sprintf("via %d, %d", i, j))
				assert.NoError(t, err)
				assert.Equal(t, http.StatusCreated, code)
			}
		})
	}
	wg.Wait()
	const events = 3 * each
	require.Eventually(t, func() bool { return len(mb.byMessageID()) == events }, 60*time.Second, 20*time.Millisecond,
		"one email per event")
	for i, s := range srv {
		var notes []struct{ Record int64 }
		require.Eventually(t, func() bool {
			notes = nil
			s.call("GET", "/api/notifications/?limit=500", doctor, nil, &notes)
			return len(notes) == events
		}, 30*time.Second, 20*time.Millisecond, "instance %d shows every notification", i)
		records := map[int64]bool{}
		for _, n := range notes {
			records[n.Record] = true
		}
		assert.Len(t, records, events, "one notification per record")
	}
	require.Eventually(t, func() bool { return len(srv[2].outbox(admin, "?state=delivered&limit=500")) == events },
		30*time.Second, 20*time.Millisecond)
	msgs, _ := mb.all()
	assert.Len(t, msgs, events, "exactly one email per event: none repeated")

	// Revocations: a deactivation on one instance, then sign-outs, are
	// refused by the others within a second.
	leaverID, leaver := srv[2].mustUser("leaver", "PATIENT")
	for i, s := range srv {
		require.Equal(t, http.StatusOK, s.meCode(leaver), "instance %d", i)
	}
	code, _ := srv[1].call("POST", fmt.Sprintf("/api/admin/users/%d/deactivate/", leaverID), admin, nil, nil)
	require.Equal(t, http.StatusOK, code)
	took := refusedWithin(t, []*server{srv[0], srv[2]}, leaver, time.Second)
	t.Logf("deactivation on instance 1: token refused by instances 0 and 2 after %s", took)
	// The CLI is one more process on the database, with no listener of
	// its own: its deactivation reaches every instance as well.
	_, cliLeaver := srv[0].mustUser("cli-leaver", "PATIENT")
	out, err := runCLI(env, "users", "deactivate", "cli-leaver")
	require.NoError(t, err, out)
	took = refusedWithin(t, srv, cliLeaver, time.Second)
	t.Logf("deactivation through the CLI: token refused by all three after %s", took)
	var slowest time.Duration
	for round := range 5 {
		from := srv[round%3]
		tk := from.signIn("pat", "Corr3ct-Horse-pat")
		code, _ := from.call("POST", "/api/token/blacklist/", "", map[string]string{"refresh": tk.Refresh}, nil)
		require.Equal(t, http.StatusOK, code)
		var others []*server
		for _, s := range srv {
			if s != from {
				others = append(others, s)
			}
		}
		slowest = max(slowest, refusedWithin(t, others, tk.Access, time.Second))
	}
	t.Logf("sign-out on one instance: token refused by the other two after at most %s (5 rounds)", slowest)

	// Failed sign-ins are counted in the database: ten spread over the
	// three, and the eleventh is refused on every one of them.
	_, _ = srv[0].mustUser("guessed", "PATIENT")
	requireGuessesCountedTogether(t, srv, "guessed")

	// A burst through all three; instance 2 is killed while it holds
	// leased email deliveries, the relay stalling so it cannot finish them.
	release := mb.hold()
	t.Cleanup(release)
	stop := make(chan struct{})
	var mu sync.Mutex
	created := map[int]int{}
	for i, s := range srv {
		wg.Go(func() {
			for j := range 100 {
				select {
				case <-stop:
					return
				default:
				}
				code, err := s.tryCreate(patient, doctorID, fmt.Sprintf("burst via %d, %d", i, j))
				if i == 2 && err != nil {
					return // killed
				}
				if assert.NoError(t, err) && assert.Equal(t, http.StatusCreated, code) {
					mu.Lock()
					created[i]++
					mu.Unlock()
				}
			}
		})
	}
	victimLeases := `SELECT count(*) FROM outbox_deliveries
		WHERE sink = 'email' AND state = 'pending' AND claimed_by LIKE '%-' || $1 || '-%'`
	require.Eventually(t, func() bool { return count(t, db, victimLeases, strconv.Itoa(victimPID)) > 0 }, 30*time.Second, 5*time.Millisecond,
		"instance 2 claims email deliveries")
	victimKill()
	killedAt := time.Now()
	stranded := count(t, db, victimLeases, strconv.Itoa(victimPID))
	time.Sleep(200 * time.Millisecond) // the survivors' burst goes on past the kill
	close(stop)
	wg.Wait()
	release()
	total := count(t, db, `SELECT count(*) FROM outbox`)
	require.Eventually(t, func() bool {
		return count(t, db, `SELECT count(*) FROM outbox_deliveries WHERE sink = 'email' AND state = 'delivered'`) == total
	}, 90*time.Second, 50*time.Millisecond, "every email delivered, the dead instance's leased ones too")
	t.Logf("burst: %v created per instance, %d events in all; %d email deliveries leased to the killed instance; all delivered %s after the kill (lease 8s)",
		created, total, stranded, time.Since(killedAt).Round(10*time.Millisecond))
	require.Eventually(t, func() bool { return count(t, db, `SELECT count(*) FROM notifications`) == total },
		30*time.Second, 20*time.Millisecond, "every notification delivered")
	assert.Equal(t, total, count(t, db, `SELECT count(DISTINCT event_id) FROM notifications`), "no notification doubled")
	var notes []struct{ Record int64 }
	srv[0].call("GET", "/api/notifications/?limit=500", doctor, nil, &notes)
	assert.Len(t, notes, total, "the API shows one notification per event")
	byID := mb.byMessageID()
	assert.Len(t, byID, total, "one email per event at least: none lost")
	msgs, _ = mb.all()
	t.Logf("emails after the kill: %d for %d events (%d repeated)", len(msgs), total, len(msgs)-len(byID))

	out, err = runCLI(env, "audit", "verify")
	require.NoError(t, err, out)
}
