package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// outboxEnv is a server whose email goes to smtpAddr, retrying fast.
func outboxEnv(t *testing.T, smtpAddr string) map[string]string {
	return map[string]string{
		"HEALTHRECORD_DB":                     filepath.Join(t.TempDir(), "hr.db"),
		"HEALTHRECORD_SMTP_ADDR":              smtpAddr,
		"HEALTHRECORD_SMTP_STARTTLS":          "never",
		"HEALTHRECORD_OUTBOX_BACKOFF":         "50ms",
		"HEALTHRECORD_OUTBOX_ATTEMPT_TIMEOUT": "2s",
		"HEALTHRECORD_OUTBOX_LEASE":           "5s",
		"HEALTHRECORD_AUTO_APPROVE_DOCTORS":   "true",
	}
}

type outboxRow struct {
	ID         int64
	State      string
	Attempts   int
	LastError  string        `json:"last_error"`
	Deliveries []deliveryRow `json:"deliveries"`
}

type deliveryRow struct {
	Sink      string
	State     string
	Attempts  int
	LastError string `json:"last_error"`
}

// delivery returns the row's delivery through sink.
func (r outboxRow) delivery(t *testing.T, sink string) deliveryRow {
	t.Helper()
	for _, d := range r.Deliveries {
		if d.Sink == sink {
			return d
		}
	}
	t.Fatalf("event %d has no %s delivery: %+v", r.ID, sink, r.Deliveries)
	return deliveryRow{}
}

func (s *server) outbox(admin, query string) []outboxRow {
	s.t.Helper()
	var rows []outboxRow
	code, _ := s.call("GET", "/api/admin/outbox/"+query, admin, nil, &rows)
	require.Equal(s.t, http.StatusOK, code)
	return rows
}

// createAssigned creates n records assigned to doctorID.
func (s *server) createAssigned(token string, doctorID int64, n int) {
	s.t.Helper()
	for i := range n {
		code, _ := s.call("POST", "/api/records/", token, map[string]any{
			"title": fmt.Sprintf("secret title %d", i), "content": "secret content", "doctor": doctorID,
		}, nil)
		require.Equal(s.t, http.StatusCreated, code)
	}
}

func TestNotifications_SMTPOutageThenRecovery(t *testing.T) {
	smtpAddr := freePort(t) // nothing listens yet: connections are refused
	s := startServe(t, outboxEnv(t, smtpAddr))
	admin := mustAdmin(t, s)
	_, patient := s.mustUser("pat", "PATIENT")
	doctorID, doctor := s.mustUser("doc", "DOCTOR")
	const n = 10
	s.createAssigned(patient, doctorID, n)

	// The in-API notifications do not wait for the email.
	var notes []map[string]any
	require.Eventually(t, func() bool {
		notes = nil
		s.call("GET", "/api/notifications/", doctor, nil, &notes)
		return len(notes) == n
	}, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		rows := s.outbox(admin, "?state=pending")
		if len(rows) != n {
			return false
		}
		for _, r := range rows {
			if r.Attempts < 1 || r.LastError == "" || r.delivery(t, "notification").State != "delivered" {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "every email failed at least once while SMTP was down, every notification delivered")

	mb := startMailbox(t, smtpAddr)
	require.Eventually(t, func() bool { return len(mb.byMessageID()) == n }, 20*time.Second, 20*time.Millisecond)
	var delivered []outboxRow
	require.Eventually(t, func() bool { delivered = s.outbox(admin, "?state=delivered"); return len(delivered) == n }, 10*time.Second, 20*time.Millisecond)
	for _, r := range delivered {
		assert.Empty(t, r.LastError, "a delivered event has its last error cleared")
		assert.Empty(t, r.delivery(t, "email").LastError)
		assert.GreaterOrEqual(t, r.delivery(t, "email").Attempts, 2)
	}

	msgs, raw := mb.all()
	dups := len(msgs) - len(mb.byMessageID())
	t.Logf("emails: %d distinct, %d duplicates", len(mb.byMessageID()), dups)
	assert.Zero(t, dups, "a refused connection delivers nothing, so nothing is repeated")
	for i, m := range msgs {
		to, err := m.Header.AddressList("To")
		require.NoError(t, err)
		require.Len(t, to, 1)
		assert.Equal(t, "doc@example.com", to[0].Address)
		assert.Equal(t, "New Patient Assigned", m.Header.Get("Subject"))
		assert.Regexp(t, `^<outbox-\d+@`, m.Header.Get("Message-Id"))
		assert.Contains(t, raw[i], "pat")
		assert.NotContains(t, raw[i], "secret")
	}
	// Notifications were not repeated by the email retries.
	notes = nil
	s.call("GET", "/api/notifications/", doctor, nil, &notes)
	assert.Len(t, notes, n)
}

func TestNotifications_PoisonEventGoesDeadAndCanBeRetried(t *testing.T) {
	mbAddr := freePort(t)
	mb := startMailbox(t, mbAddr, "doc@example.com")
	s := startServe(t, outboxEnv(t, mbAddr))
	admin := mustAdmin(t, s)
	_, patient := s.mustUser("pat", "PATIENT")
	doctorID, doctor := s.mustUser("doc", "DOCTOR")
	s.createAssigned(patient, doctorID, 1)

	var dead []outboxRow
	require.Eventually(t, func() bool {
		dead = s.outbox(admin, "?state=dead")
		return len(dead) == 1
	}, 20*time.Second, 20*time.Millisecond)
	// A permanent refusal is not retried: dead after one attempt, with the
	// relay's answer.
	assert.Equal(t, 1, dead[0].Attempts)
	assert.Contains(t, dead[0].LastError, "550")
	email := dead[0].delivery(t, "email")
	assert.Equal(t, []any{"dead", 1}, []any{email.State, email.Attempts})
	assert.Contains(t, email.LastError, "550")
	assert.Equal(t, "delivered", dead[0].delivery(t, "notification").State)
	bySink := s.outbox(admin, "?sink=email&state=dead")
	assert.Equal(t, dead, bySink)
	// The CLI shows the event as the admin API does.
	out, err := s.cli("outbox", "list", "--state", "dead", "--json")
	require.NoError(t, err, out)
	var listed []outboxRow
	require.NoError(t, json.Unmarshal([]byte(out), &listed))
	assert.Equal(t, dead, listed)
	assert.Empty(t, mb.byMessageID())

	var notes []map[string]any
	s.call("GET", "/api/notifications/", doctor, nil, &notes)
	assert.Len(t, notes, 1, "the notification was delivered once although the email failed")

	var back outboxRow
	code, _ := s.call("POST", fmt.Sprintf("/api/admin/outbox/%d/retry/", dead[0].ID), admin, nil, &back)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "pending", back.State)
	code, _ = s.call("POST", fmt.Sprintf("/api/admin/outbox/%d/retry/", dead[0].ID+100), admin, nil, nil)
	assert.Equal(t, http.StatusNotFound, code)
	require.Eventually(t, func() bool { return len(s.outbox(admin, "?state=dead")) == 1 }, 20*time.Second, 20*time.Millisecond)
	notes = nil
	s.call("GET", "/api/notifications/", doctor, nil, &notes)
	assert.Len(t, notes, 1, "retrying the email does not repeat the notification")
}

// buildBinary builds the real program once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "healthrecord")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

// listenRE finds the bound address in a child process's log: a child has
// no other channel to say it (in-process servers are told by run's hook).
var listenRE = regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)

// startProcess runs `healthrecord serve` as a child process and waits for it
// to listen.
func startProcess(t *testing.T, bin string, env map[string]string) (*exec.Cmd, *server) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	logs := &logSink{}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.add(sc.Text())
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case a := <-addr:
		return cmd, &server{t: t, url: "http://" + a, db: env["HEALTHRECORD_DB"], env: env, logs: logs, stop: func() error { return nil }}
	case <-time.After(60 * time.Second):
		t.Fatal("child did not listen")
	}
	return nil, nil
}

// Events committed before a SIGKILL are delivered after the restart, both
// as notifications and as email.
func TestCrash_SIGKILLBeforeDeliveryThenRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	bin := buildBinary(t)
	smtpAddr := freePort(t)
	env := outboxEnv(t, smtpAddr)
	env["HEALTHRECORD_OUTBOX_LEASE"] = "3s" // a crashed dispatcher's claims free up after this

	cmd, s := startProcess(t, bin, env)
	admin := mustAdmin(t, s)
	patientID, patient := s.mustUser("pat", "PATIENT")
	doctorID, doctor := s.mustUser("doc", "DOCTOR")
	const n = 20
	s.createAssigned(patient, doctorID, n)
	// Reads whose audit entries are still buffered when the process dies
	// are what a crash can lose; measure it.
	const reads = 50
	for i := range reads {
		code, _ := s.call("GET", fmt.Sprintf("/api/records/%d/", 1+i%n), patient, nil, nil)
		require.Equal(t, http.StatusOK, code)
	}
	// Kill it at once: some events may not even have been attempted.
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	mb := startMailbox(t, smtpAddr)
	cmd2, s2 := startProcess(t, bin, env)
	require.Eventually(t, func() bool { return len(mb.byMessageID()) == n }, 60*time.Second, 50*time.Millisecond,
		"every email arrives after the restart")
	var notes []map[string]any
	require.Eventually(t, func() bool {
		notes = nil
		s2.call("GET", "/api/notifications/", doctor, nil, &notes)
		return len(notes) == n
	}, 30*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return len(s2.outbox(admin, "?state=delivered")) == n }, 30*time.Second, 50*time.Millisecond)
	var entries []map[string]any
	code, _ := s2.call("GET", fmt.Sprintf("/api/admin/audit/?actor=%d&limit=500", patientID), admin, nil, &entries)
	require.Equal(t, http.StatusOK, code)
	kept := 0
	for _, e := range entries {
		if e["action"] == "record.read" {
			kept++
		}
	}
	assert.LessOrEqual(t, kept, reads)
	t.Logf("after SIGKILL: %d of %d read audit entries survived (a crash loses at most the last flush interval); every create's entry committed with it", kept, reads)
	creates := 0
	for _, e := range entries {
		if e["action"] == "record.create" {
			creates++
		}
	}
	assert.Equal(t, n, creates, "a change's audit entry commits with the change")
	out, err := s2.cli("audit", "verify")
	require.NoError(t, err, out)

	msgs, _ := mb.all()
	t.Logf("after SIGKILL: %d emails for %d events (%d duplicates)", len(msgs), n, len(msgs)-n)
	ids := map[string]bool{}
	for _, m := range msgs {
		ids[m.Header.Get("Message-Id")] = true
		assert.True(t, strings.HasPrefix(m.Header.Get("Message-Id"), "<outbox-"))
	}
	assert.Len(t, ids, n)

	// SIGTERM: a graceful stop, exit status 0, within the shutdown limit.
	require.NoError(t, cmd2.Process.Signal(syscall.SIGTERM))
	exited := make(chan error, 1)
	go func() { exited <- cmd2.Wait() }()
	select {
	case err := <-exited:
		assert.NoError(t, err, "exit status after SIGTERM")
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20s of SIGTERM")
	}
}
