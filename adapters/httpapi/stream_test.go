package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/httpapi"
	"healthrecord/app"
	"healthrecord/domain"
	"healthrecord/ports"
)

// sseEvent is one event or comment read from a stream.
type sseEvent struct {
	ID, Event, Data string
	Comment         bool
}

// sseStream is an open stream read by a goroutine; Events closes when the
// server ends the stream.
type sseStream struct {
	Header http.Header
	Events chan sseEvent
	body   io.Closer
}

func (s *sseStream) Close() { _ = s.body.Close() }

// openStream opens GET /api/notifications/stream/ with a real client and
// fails unless it is a 200 event stream.
func openStream(t *testing.T, base, token string, header ...string) *sseStream {
	t.Helper()
	res := streamRequest(t, base, token, header...)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	s := &sseStream{Header: res.Header, Events: make(chan sseEvent, 100), body: res.Body}
	t.Cleanup(s.Close)
	go func() {
		defer close(s.Events)
		rd := bufio.NewReader(res.Body)
		var ev sseEvent
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if ev != (sseEvent{}) {
					s.Events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.Comment = true
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.Event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s
}

func streamRequest(t *testing.T, base, token string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/api/notifications/stream/", nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return res
}

// next waits for the next notification event, skipping comments.
func (s *sseStream) next(t *testing.T, within time.Duration) (sseEvent, bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-s.Events:
			if !ok {
				return sseEvent{}, false
			}
			if ev.Event != "" {
				return ev, true
			}
		case <-deadline:
			t.Fatalf("no event within %s", within)
		}
	}
}

// ended waits for the server to close the stream.
func (s *sseStream) ended(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-s.Events:
			if !ok {
				return
			}
			require.Empty(t, ev.Event, "no event expected, got %+v", ev)
		case <-deadline:
			t.Fatalf("stream still open after %s", within)
		}
	}
}

// streamEnv is a real server with short timeouts on its http.Server, so
// that a stream outliving them shows it does not depend on them.
func streamEnv(t *testing.T, acfg app.Config, scfg httpapi.StreamConfig) *env {
	t.Helper()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	db, a := newStack(t, acfg, log)
	srv := httptest.NewUnstartedServer(httpapi.NewServer(a, httpapi.Config{Ready: db.Ready, Stream: scfg}, log))
	srv.Config.ReadTimeout = time.Second
	srv.Config.WriteTimeout = time.Second
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, db: db, app: a, logs: logs}
}

// deliver stores a notification for the doctor the way a dispatcher does.
// inProcess goes through this server's dispatcher use case (which wakes
// its streams); otherwise
// the row is written straight to the store, as another process would.
func (e *env) deliver(t *testing.T, doctor, patient user, event int64, inProcess bool) int64 {
	t.Helper()
	ctx := context.Background()
	if inProcess {
		ev := domain.NewAssignmentEvent(domain.Record{ID: 1, PatientID: patient.ID, DoctorID: doctor.ID}, time.Now())
		require.NoError(t, e.db.Outbox().Add(ctx, &ev))
		n, err := e.app.DeliverNotifications(ctx, "stream-test", 100)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		got, err := e.db.Notifications().After(ctx, doctor.ID, 0, 1000)
		require.NoError(t, err)
		return got[len(got)-1].ID
	}
	n := domain.Notification{UserID: doctor.ID, Kind: domain.KindDoctorAssigned, RecordID: 1, PatientID: patient.ID, EventID: event, CreatedAt: time.Now().UTC()}
	_, err := e.db.Notifications().Create(ctx, &n)
	require.NoError(t, err)
	return n.ID
}

func TestNotificationStream_DeliversWithinASecondAndOutlivesServerTimeouts(t *testing.T) {
	e := streamEnv(t, app.Config{}, httpapi.StreamConfig{Heartbeat: 200 * time.Millisecond})
	p, d := e.mustPatient(t), e.mustDoctor(t, true)
	old := e.deliver(t, d, p, 1, true) // before the stream: history, not sent

	s := openStream(t, e.srv.URL, d.Token)
	assert.Equal(t, "no-store", s.Header.Get("Cache-Control"))

	for i, inProcess := range []bool{true, false} {
		start := time.Now()
		id := e.deliver(t, d, p, int64(10+i), inProcess)
		ev, ok := s.next(t, 3*time.Second)
		require.True(t, ok)
		assert.Less(t, time.Since(start), time.Second, "the contract's second (inProcess=%t)", inProcess)
		assert.Equal(t, "notification", ev.Event)
		assert.Equal(t, strconv.FormatInt(id, 10), ev.ID)
		assert.NotEqual(t, strconv.FormatInt(old, 10), ev.ID)
		var n map[string]any
		require.NoError(t, json.Unmarshal([]byte(ev.Data), &n))
		assert.EqualValues(t, id, n["id"])
		assert.Equal(t, "doctor_assigned", n["kind"])
		assert.EqualValues(t, p.ID, n["patient"])
		assert.Contains(t, n, "read_at")
	}

	// Past the http.Server's one-second read and write timeouts the stream
	// still carries heartbeats and events.
	time.Sleep(2500 * time.Millisecond)
	id := e.deliver(t, d, p, 20, false)
	ev, ok := s.next(t, 3*time.Second)
	require.True(t, ok, "stream ended early")
	assert.Equal(t, strconv.FormatInt(id, 10), ev.ID)

	// Nobody else's notifications.
	other := e.mustDoctor(t, true)
	e.deliver(t, other, p, 21, true)
	mine := e.deliver(t, d, p, 22, true)
	ev, ok = s.next(t, 3*time.Second)
	require.True(t, ok)
	assert.Equal(t, strconv.FormatInt(mine, 10), ev.ID)
}

// slowStart is a store whose notification lists take a while: the
// stream's starting point is read slowly.
type slowStart struct{ testStore }

func (s slowStart) Notifications() ports.Notifications { return slowList{s.testStore.Notifications()} }

type slowList struct{ ports.Notifications }

func (l slowList) List(ctx context.Context, userID int64, p domain.Page) ([]domain.Notification, error) {
	time.Sleep(300 * time.Millisecond)
	return l.Notifications.List(ctx, userID, p)
}

// A notification stored as soon as the client hears the stream is open
// still reaches it: the stream's starting point is read before the client
// hears anything, not after (then a notification stored meanwhile counted
// as history and reached the list endpoint only).
func TestNotificationStream_StoredRightAfterOpeningIsSent(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	db := openTestStore(t)
	a := startApp(t, slowStart{db}, db, app.Config{}, log)
	srv := httptest.NewServer(httpapi.NewServer(a, httpapi.Config{Ready: db.Ready}, log))
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, db: db, app: a, logs: &lockedBuffer{}}
	p, d := e.mustPatient(t), e.mustDoctor(t, true)
	for i := range 3 {
		s := openStream(t, srv.URL, d.Token)
		id := e.deliver(t, d, p, int64(100+i), false)
		ev, ok := s.next(t, 3*time.Second) // fails the test when nothing comes
		require.True(t, ok, "round %d: the stream ended", i)
		require.Equal(t, strconv.FormatInt(id, 10), ev.ID, "round %d", i)
		s.Close()
	}
}

func TestNotificationStream_Heartbeat(t *testing.T) {
	e := streamEnv(t, app.Config{}, httpapi.StreamConfig{Heartbeat: 100 * time.Millisecond})
	d := e.mustDoctor(t, true)
	s := openStream(t, e.srv.URL, d.Token)
	comments := 0
	deadline := time.After(3 * time.Second)
	for comments < 3 {
		select {
		case ev, ok := <-s.Events:
			require.True(t, ok)
			if ev.Comment {
				comments++
			}
		case <-deadline:
			t.Fatalf("%d comment lines in 3s with a 100ms heartbeat", comments)
		}
	}
}

func TestNotificationStream_ResumesAfterLastEventID(t *testing.T) {
	e := streamEnv(t, app.Config{}, httpapi.StreamConfig{})
	p, d := e.mustPatient(t), e.mustDoctor(t, true)
	ids := make([]int64, 4)
	for i := range ids {
		ids[i] = e.deliver(t, d, p, int64(i+1), false)
	}
	s := openStream(t, e.srv.URL, d.Token, "Last-Event-ID", strconv.FormatInt(ids[1], 10))
	for _, want := range ids[2:] {
		ev, ok := s.next(t, 3*time.Second)
		require.True(t, ok)
		assert.Equal(t, strconv.FormatInt(want, 10), ev.ID)
	}

	res := streamRequest(t, e.srv.URL, d.Token, "Last-Event-ID", "abc")
	defer res.Body.Close()
	assert.Equal(t, http.StatusBadRequest, res.StatusCode)
}

func TestNotificationStream_EndsWhenRevoked(t *testing.T) {
	e := streamEnv(t, app.Config{}, httpapi.StreamConfig{})
	d := e.mustDoctor(t, true)
	s := openStream(t, e.srv.URL, d.Token)
	r := e.send(t, "POST", "/api/token/blacklist/", "", map[string]string{"refresh": d.Refresh})
	require.Equal(t, http.StatusOK, r.Status, r.String())
	s.ended(t, 3*time.Second)

	// A password change revokes every sign-in, the stream's too.
	d = e.signedIn(t, d)
	s = openStream(t, e.srv.URL, d.Token)
	other := e.signedIn(t, d)
	r = e.send(t, "PUT", "/api/users/me/password/", other.Token, map[string]string{"old_password": d.Password, "new_password": "Another-Vault-7731"})
	require.Equal(t, http.StatusOK, r.Status, r.String())
	s.ended(t, 3*time.Second)
}

func TestNotificationStream_EndsWhenTokenExpires(t *testing.T) {
	e := streamEnv(t, app.Config{AccessTTL: 2 * time.Second}, httpapi.StreamConfig{})
	d := e.mustDoctor(t, true)
	start := time.Now()
	s := openStream(t, e.srv.URL, d.Token)
	s.ended(t, 6*time.Second)
	assert.Greater(t, time.Since(start), time.Second, "ended before the token expired")

	res := streamRequest(t, e.srv.URL, d.Token)
	defer res.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
}

func TestNotificationStream_BoundedPerUser(t *testing.T) {
	e := streamEnv(t, app.Config{}, httpapi.StreamConfig{PerUser: 2})
	d, other := e.mustDoctor(t, true), e.mustDoctor(t, true)
	s1 := openStream(t, e.srv.URL, d.Token)
	openStream(t, e.srv.URL, d.Token)

	res := streamRequest(t, e.srv.URL, d.Token)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	assert.JSONEq(t, `{"detail": "Too many open notification streams."}`, string(body))
	assert.NotEmpty(t, res.Header.Get("Retry-After"))

	openStream(t, e.srv.URL, other.Token) // another user is not affected

	// A closed stream frees its place.
	s1.Close()
	require.Eventually(t, func() bool {
		res := streamRequest(t, e.srv.URL, d.Token)
		defer res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 5*time.Second, 50*time.Millisecond)

	res = streamRequest(t, e.srv.URL, "")
	res.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
}
