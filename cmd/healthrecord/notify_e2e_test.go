package main

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// notesOf counts the caller's notifications.
func (s *server) notesOf(token string) int {
	s.t.Helper()
	var notes []map[string]any
	code, _ := s.call("GET", "/api/notifications/", token, nil, &notes)
	require.Equal(s.t, http.StatusOK, code)
	return len(notes)
}

// A relay that accepts connections and never greets holds back no in-API
// notification: each arrives within a second of its commit, for
// assignments made before and after the relay hung the email attempts.
func TestNotifications_HungRelayNeverDelaysInApp(t *testing.T) {
	s := startServe(t, outboxEnv(t, startSilentRelay(t)))
	admin := mustAdmin(t, s)
	_, patient := s.mustUser("pat", "PATIENT")
	doctorID, doctor := s.mustUser("doc", "DOCTOR")

	wantWithinASecond := func(want int) {
		t.Helper()
		start := time.Now()
		require.Eventually(t, func() bool { return s.notesOf(doctor) == want }, time.Second, 10*time.Millisecond,
			"notification %d within a second of its commit", want)
		t.Logf("notification %d after %v", want, time.Since(start))
	}
	for i := range 3 {
		s.createAssigned(patient, doctorID, 1)
		wantWithinASecond(i + 1)
	}
	time.Sleep(time.Second) // the email attempts are hanging on the relay by now
	s.createAssigned(patient, doctorID, 1)
	wantWithinASecond(4)

	rows := s.outbox(admin, "?sink=email&state=pending")
	assert.Len(t, rows, 4, "every email still pending, none lost")
	for _, r := range rows {
		assert.Equal(t, "delivered", r.delivery(t, "notification").State)
	}
}

// A relay that refuses one doctor's mailbox (550 at RCPT): that email is
// dead after one attempt with the relay's answer; the doctor's
// notification and the other doctors' emails are unaffected.
func TestNotifications_550ForOneDoctorDeadAtOnceOthersUnaffected(t *testing.T) {
	addr := freePort(t)
	mb := startMailbox(t, addr, "gone@example.com")
	s := startServe(t, outboxEnv(t, addr))
	admin := mustAdmin(t, s)
	_, patient := s.mustUser("pat", "PATIENT")
	goneID, gone := s.mustUser("gone", "DOCTOR")
	okID, ok := s.mustUser("here", "DOCTOR")
	otherID, _ := s.mustUser("there", "DOCTOR")
	s.createAssigned(patient, goneID, 1)
	s.createAssigned(patient, okID, 2)
	s.createAssigned(patient, otherID, 2)

	var dead []outboxRow
	require.Eventually(t, func() bool { dead = s.outbox(admin, "?state=dead"); return len(dead) == 1 },
		10*time.Second, 20*time.Millisecond)
	email := dead[0].delivery(t, "email")
	assert.Equal(t, []any{"dead", 1}, []any{email.State, email.Attempts}, "dead after one attempt")
	assert.Contains(t, email.LastError, "550")
	assert.Equal(t, "delivered", dead[0].delivery(t, "notification").State)
	assert.Equal(t, 1, s.notesOf(gone))

	require.Eventually(t, func() bool { return len(mb.byMessageID()) == 4 }, 10*time.Second, 20*time.Millisecond,
		"the other doctors' four emails arrive")
	require.Eventually(t, func() bool { return len(s.outbox(admin, "?state=delivered")) == 4 }, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, 2, s.notesOf(ok))
	time.Sleep(300 * time.Millisecond)
	again := s.outbox(admin, "?state=dead")
	require.Len(t, again, 1)
	assert.Equal(t, 1, again[0].delivery(t, "email").Attempts, "a permanent refusal is never retried on its own")
}

// A burst of 30 assignments to 10 doctors goes over the pool: 30 emails,
// never more than 4 connections open at once, most of them reused.
func TestNotifications_BurstUsesAFewReusedConnections(t *testing.T) {
	addr := freePort(t)
	mb := startMailbox(t, addr)
	s := startServe(t, outboxEnv(t, addr))
	_, patient := s.mustUser("pat", "PATIENT")
	var doctors []int64
	for i := range 10 {
		id, _ := s.mustUser(fmt.Sprintf("doc%d", i), "DOCTOR")
		doctors = append(doctors, id)
	}
	// All at once, as a clinic's morning import would.
	var wg sync.WaitGroup
	codes := make(chan int, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := s.call("POST", "/api/records/", patient, map[string]any{
				"title": fmt.Sprintf("t%d", i), "content": "c", "doctor": doctors[i%10]}, nil)
			codes <- code
		}()
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		require.Equal(t, http.StatusCreated, code)
	}
	require.Eventually(t, func() bool { return len(mb.byMessageID()) == 30 }, 20*time.Second, 20*time.Millisecond)
	msgs, _ := mb.all()
	assert.Len(t, msgs, 30, "no email twice")
	opened, maxOpen := mb.conns()
	t.Logf("30 emails over %d connections, at most %d open at once", opened, maxOpen)
	assert.LessOrEqual(t, maxOpen, 4)
	assert.Less(t, opened, 30)
}

// The new settings are refused at start when they cannot be honoured,
// naming the variable.
func TestConfig_NotificationSettings(t *testing.T) {
	for env, bad := range map[string][]string{
		"HEALTHRECORD_SMTP_CONNECTIONS": {"0", "-2", "four"},
		"HEALTHRECORD_OUTBOX_MAX_AGE":   {"0s", "-1h", "forever"},
	} {
		for _, v := range bad {
			var c config
			fs := newFlagSet("serve", mapEnv(map[string]string{env: v}), &bytes.Buffer{})
			fs.serveFlags(&c)
			err := fs.parse(nil)
			if err == nil {
				err = c.validateNotifications()
			}
			require.Error(t, err, "%s=%s", env, v)
			assert.Contains(t, err.Error(), env)
		}
	}
	var c config
	fs := newFlagSet("serve", mapEnv(map[string]string{}), &bytes.Buffer{})
	fs.serveFlags(&c)
	require.NoError(t, fs.parse(nil))
	assert.Equal(t, int64(4), c.SMTPConnections)
	assert.Equal(t, 72*time.Hour, c.OutboxMaxAge)
}
