package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSoak runs on demand only (HR_SOAK=10m; HR_SOAK_RATE creates per
// second, default 20 — set it to half the peak `hrbench create` rate of
// the machine): assignments at a steady rate, the relay up 30 s and down
// 30 s in turn, the server SIGKILLed and restarted every 2 minutes. At the
// end every acknowledged assignment has exactly one notification and at
// least one email; RSS and the WAL's size are logged along the way.
func TestSoak(t *testing.T) {
	spec := os.Getenv("HR_SOAK")
	if spec == "" {
		t.Skip("set HR_SOAK=10m (and HR_SOAK_RATE) to run the soak test")
	}
	length, err := time.ParseDuration(spec)
	require.NoError(t, err)
	rate := 20
	if v := os.Getenv("HR_SOAK_RATE"); v != "" {
		rate, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	const flap, killEvery = 30 * time.Second, 2 * time.Minute

	bin := buildBinary(t)
	relay := newMailbox(freePort(t))
	env := outboxEnv(t, relay.Addr)
	env["HEALTHRECORD_OUTBOX_BACKOFF"] = "1s"
	env["HEALTHRECORD_ACCESS_TTL"] = "12h"
	env["HEALTHRECORD_REFRESH_TTL"] = "24h"
	env["HEALTHRECORD_OUTBOX_ATTEMPT_TIMEOUT"] = "5s"
	env["HEALTHRECORD_OUTBOX_LEASE"] = "10s"

	// The relay flaps until the load ends, then stays up.
	endFlap := make(chan struct{})
	flapped := make(chan struct{})
	stopRelay := relay.serve(t)
	go func() {
		defer close(flapped)
		for {
			select {
			case <-endFlap:
				return
			case <-time.After(flap):
			}
			stopRelay()
			select {
			case <-endFlap:
				stopRelay = relay.serve(t)
				return
			case <-time.After(flap):
			}
			stopRelay = relay.serve(t)
		}
	}()
	t.Cleanup(func() { stopRelay() })

	cmd, s := startProcess(t, bin, env)
	admin := mustAdmin(t, s)
	_, patient := s.mustUser("pat", "PATIENT")
	var doctors []int64
	for i := range 5 {
		id, _ := s.mustUser(fmt.Sprintf("doc%d", i), "DOCTOR")
		doctors = append(doctors, id)
	}
	var cur atomic.Pointer[server]
	cur.Store(s)

	var mu sync.Mutex
	var acked []int64
	var refused atomic.Int64
	slots := make(chan struct{}, 16)
	var wg sync.WaitGroup
	create := func(i int) {
		defer func() { <-slots; wg.Done() }()
		srv := cur.Load()
		var rec struct{ ID int64 }
		code, err := soakPost(srv.url, patient, map[string]any{"title": fmt.Sprint("soak ", i), "content": "c", "doctor": doctors[i%len(doctors)]}, &rec)
		if err != nil || code != http.StatusCreated {
			refused.Add(1) // the server was down: not acknowledged
			return
		}
		mu.Lock()
		acked = append(acked, rec.ID)
		mu.Unlock()
	}

	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	sample := time.NewTicker(10 * time.Second)
	defer sample.Stop()
	nextKill := start.Add(killEvery)
	kills := 0
	maxRSS, maxWAL := int64(0), int64(0)
	for i := 0; time.Since(start) < length; {
		select {
		case <-tick.C:
			slots <- struct{}{}
			wg.Add(1)
			go create(i)
			i++
		case <-sample.C:
			rss, wal := rssOf(cmd.Process.Pid), sizeOf(env["HEALTHRECORD_DB"]+"-wal")
			maxRSS, maxWAL = max(maxRSS, rss), max(maxWAL, wal)
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			t.Logf("t=%v acked=%d refused=%d rss=%d KiB wal=%d KiB", time.Since(start).Round(time.Second), n, refused.Load(), rss/1024, wal/1024)
		}
		if time.Now().After(nextKill) {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			_ = cmd.Wait()
			kills++
			cmd, s = startProcess(t, bin, env)
			cur.Store(s)
			nextKill = time.Now().Add(killEvery)
		}
	}
	wg.Wait()
	close(endFlap)
	<-flapped

	// Everything due is delivered once the relay stays up.
	drained := time.Now()
	require.Eventually(t, func() bool {
		var rows []outboxRow
		code, _ := s.call("GET", "/api/admin/outbox/?state=pending&limit=1", admin, nil, &rows)
		return code == http.StatusOK && len(rows) == 0
	}, 10*time.Minute, time.Second, "the backlog drains")
	t.Logf("backlog drained %v after the load", time.Since(drained).Round(time.Second))
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())

	db, err := sql.Open("sqlite", "file:"+env["HEALTHRECORD_DB"]+"?mode=ro&_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	defer db.Close()
	emails := relay.byMessageID()
	msgs, _ := relay.all()
	emailed := map[int64]bool{}
	for mid := range emails {
		var id int64
		if _, err := fmt.Sscanf(mid, "<outbox-%d@", &id); err == nil {
			emailed[id] = true
		}
	}
	missingNote, dupNote, missingEmail := 0, 0, 0
	for _, id := range acked {
		var event int64
		var notes int
		require.NoError(t, db.QueryRow(`SELECT o.id, (SELECT count(*) FROM notifications n WHERE n.event_id = o.id)
			FROM outbox o WHERE o.record_id = ?`, id).Scan(&event, &notes))
		switch {
		case notes == 0:
			missingNote++
		case notes > 1:
			dupNote++
		}
		if !emailed[event] {
			missingEmail++
		}
	}
	var dead int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM outbox WHERE state = 'dead'`).Scan(&dead))
	t.Logf("soak %v at %d/s: %d acknowledged, %d refused while down, %d kills; %d emails for %d distinct Message-IDs (%d repeats); max RSS %d KiB, max WAL %d KiB",
		length, rate, len(acked), refused.Load(), kills, len(msgs), len(emails), len(msgs)-len(emails), maxRSS/1024, maxWAL/1024)
	assert.Zero(t, missingNote, "acknowledged assignments without a notification")
	assert.Zero(t, dupNote, "assignments with more than one notification")
	assert.Zero(t, missingEmail, "acknowledged assignments without an email")
	assert.Zero(t, dead, "dead events")
}

var soakClient = &http.Client{Timeout: 10 * time.Second}

// soakPost creates a record without failing the test: the server may be
// down.
func soakPost(base, token string, body, out any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest("POST", base+"/api/records/", bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := soakClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode == http.StatusCreated {
		err = json.Unmarshal(raw, out)
	}
	return resp.StatusCode, err
}

// rssOf reads a process's resident set size in bytes (Linux).
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func sizeOf(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
