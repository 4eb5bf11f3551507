package httpapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"healthrecord/adapters/httpapi"
	"healthrecord/adapters/jwt"
	"healthrecord/adapters/password"
	"healthrecord/app"
	"healthrecord/domain"
	"healthrecord/internal/username"
	"healthrecord/ports"
)

// testPassword passes Django's validators for every username used here.
const testPassword = "vault-Quartz-9931"

type clock struct{}

func (clock) Now() time.Time { return time.Now().UTC() }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// lockedBuffer collects the server's log lines from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a real server: a real store (see stores_test.go), JWT keys,
// argon2id, the app, and the HTTP adapter behind httptest.
type env struct {
	t    *testing.T
	srv  *httptest.Server
	db   testStore
	app  *app.App
	logs *lockedBuffer
	n    atomic.Int64
}

type envOption func(*httpapi.Config, *app.Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	hcfg := httpapi.Config{}
	acfg := app.Config{}
	for _, o := range opts {
		o(&hcfg, &acfg)
	}
	db, a := newStack(t, acfg, log)
	if hcfg.Ready == nil {
		hcfg.Ready = db.Ready
	}
	_, hcfg.Rates = countersOf(t, db)
	srv := httptest.NewServer(httpapi.NewServer(a, hcfg, log))
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, db: db, app: a, logs: logs}
	t.Cleanup(func() {
		// No request may produce a 500 (or any logged error) in normal use.
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"status":500`) {
				t.Errorf("error logged: %s", line)
			}
		}
	})
	return e
}

// newStack wires the real service behind the HTTP adapter: the store of
// this pass (a SQLite file or a PostgreSQL schema), JWT keys, argon2id
// (cheap test parameters) and the app with its background work, all
// stopped at cleanup.
func newStack(tb testing.TB, acfg app.Config, log *slog.Logger) (testStore, *app.App) {
	tb.Helper()
	db := openTestStore(tb)
	return db, startApp(tb, db, db, acfg, log)
}

// startApp starts an app over store, which may wrap db (the test's store,
// whose counters it uses on PostgreSQL), and stops it when the test ends.
func startApp(tb testing.TB, store ports.Store, db testStore, acfg app.Config, log *slog.Logger) *app.App {
	tb.Helper()
	ctx := context.Background()
	tokens, err := jwt.LoadOrCreate(filepath.Join(tb.TempDir(), "keys.json"), time.Now())
	require.NoError(tb, err)
	attempts, _ := countersOf(tb, db)
	a := app.New(app.Deps{
		Store: store, Tokens: tokens, Hasher: password.New(cheapHashing, 2),
		Clock: clock{}, Random: randomBytes, Log: log, UsernameKey: username.Key, Attempts: attempts,
	}, acfg)
	require.NoError(tb, a.Start(ctx))
	bg, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.RunBackground(bg) }()
	tb.Cleanup(func() {
		cancel()
		<-done
		require.NoError(tb, a.Close(context.Background()))
	})
	return a
}

// resp is an answer, read whole.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// JSON decodes the body into v.
func (r resp) JSON(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.Body, v), "body: %s", r.Body)
}

// Map is the body as a JSON object.
func (r resp) Map(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	r.JSON(t, &m)
	return m
}

// List is the body as a JSON array of objects.
func (r resp) List(t *testing.T) []map[string]any {
	t.Helper()
	var l []map[string]any
	r.JSON(t, &l)
	return l
}

// send does one request. body is nil (no body), a string (sent as is,
// labelled JSON) or anything else (marshalled).
func (e *env) send(t *testing.T, method, path, token string, body any, header ...string) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	require.NoError(t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	return e.do(t, req)
}

func (e *env) do(t *testing.T, req *http.Request) resp {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return fmt.Errorf("redirected to %s: paths must be served directly", req.URL)
	}}
	res, err := client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	if req.Method != http.MethodHead && res.StatusCode != http.StatusNoContent {
		// Every answer states its length: no chunked encoding, one write.
		require.Equal(t, int64(len(b)), res.ContentLength, "%s %s: Content-Length", req.Method, req.URL.Path)
	}
	return resp{Status: res.StatusCode, Header: res.Header, Body: b}
}

// user is an account with a signed-in access token.
type user struct {
	ID       int64
	Name     string
	Role     domain.Role
	Token    string
	Refresh  string
	Password string
}

func (e *env) name(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, e.n.Add(1))
}

// mustRegister registers through the API and returns the user's id.
func (e *env) mustRegister(t *testing.T, name string, role domain.Role) int64 {
	t.Helper()
	r := e.send(t, "POST", "/api/users/register/", "", map[string]string{
		"username": name, "email": name + "@example.com", "password": testPassword, "role": string(role),
	})
	require.Equal(t, http.StatusCreated, r.Status, r.String())
	var u struct{ ID int64 }
	r.JSON(t, &u)
	return u.ID
}

// mustSignIn signs in through the API.
func (e *env) mustSignIn(t *testing.T, name, pw string) (access, refresh string) {
	t.Helper()
	r := e.send(t, "POST", "/api/token/", "", map[string]string{"username": name, "password": pw})
	require.Equal(t, http.StatusOK, r.Status, r.String())
	var p struct{ Access, Refresh string }
	r.JSON(t, &p)
	require.NotEmpty(t, p.Access)
	require.NotEmpty(t, p.Refresh)
	return p.Access, p.Refresh
}

func (e *env) mustUser(t *testing.T, prefix string, role domain.Role) user {
	t.Helper()
	u := user{Name: e.name(prefix), Role: role, Password: testPassword}
	u.ID = e.mustRegister(t, u.Name, role)
	return u
}

func (e *env) signedIn(t *testing.T, u user) user {
	t.Helper()
	u.Token, u.Refresh = e.mustSignIn(t, u.Name, u.Password)
	return u
}

func (e *env) mustPatient(t *testing.T) user {
	t.Helper()
	return e.signedIn(t, e.mustUser(t, "patient", domain.RolePatient))
}

func (e *env) mustDoctor(t *testing.T, approved bool) user {
	t.Helper()
	u := e.mustUser(t, "doctor", domain.RoleDoctor)
	if approved {
		_, err := e.app.SetUserByName(context.Background(), u.Name, app.OpApprove)
		require.NoError(t, err)
	}
	return e.signedIn(t, u)
}

// mustAdmin creates a superuser the way the CLI does: registration
// refuses ADMIN.
func (e *env) mustAdmin(t *testing.T) user {
	t.Helper()
	u := user{Name: e.name("admin"), Role: domain.RoleAdmin, Password: testPassword}
	created, err := e.app.CreateSuperuser(context.Background(), u.Name, u.Name+"@example.com", u.Password)
	require.NoError(t, err)
	u.ID = created.ID
	return e.signedIn(t, u)
}

// record is a record as the API shows it.
type record struct {
	ID        int64     `json:"id"`
	Patient   int64     `json:"patient"`
	Doctor    *int64    `json:"doctor"`
	Title     string    `json:"title"`
	Content   string    `json:"content"`
	CreatedAt string    `json:"created_at"`
	UpdatedAt string    `json:"updated_at"`
	Comments  []comment `json:"comments"`
}

type comment struct {
	ID        int64  `json:"id"`
	Record    int64  `json:"record"`
	Doctor    int64  `json:"doctor"`
	Comment   string `json:"comment"`
	CreatedAt string `json:"created_at"`
}

// mustRecord creates a record for owner, assigned to doctor when not 0.
func (e *env) mustRecord(t *testing.T, owner user, doctor int64) record {
	t.Helper()
	body := map[string]any{"title": "Blood test", "content": "All values normal."}
	if doctor != 0 {
		body["doctor"] = doctor
	}
	r := e.send(t, "POST", "/api/records/", owner.Token, body)
	require.Equal(t, http.StatusCreated, r.Status, r.String())
	var rec record
	r.JSON(t, &rec)
	return rec
}

// mustPendingEvent stores an assignment event of rec to doctor whose
// in-API notification is still to be delivered, as one written before
// notifications were delivered in their assignment's transaction is: the
// dispatcher's and the admin's work. It returns the event's id.
func (e *env) mustPendingEvent(t *testing.T, rec record, doctor int64) int64 {
	t.Helper()
	ev := domain.NewAssignmentEvent(domain.Record{ID: rec.ID, PatientID: rec.Patient, DoctorID: doctor}, time.Now())
	require.NoError(t, e.db.Outbox().Add(context.Background(), &ev))
	return ev.ID
}

// mustComment adds doctor's comment on a record.
func (e *env) mustComment(t *testing.T, doctor user, recordID int64, text string) comment {
	t.Helper()
	r := e.send(t, "POST", "/api/comments/", doctor.Token, map[string]any{"record": recordID, "comment": text})
	require.Equal(t, http.StatusCreated, r.Status, r.String())
	var c comment
	r.JSON(t, &c)
	return c
}

// stored reads a record (with its comments) straight from the store.
func (e *env) stored(t *testing.T, id int64) domain.Record {
	t.Helper()
	r, err := e.db.Records().Get(context.Background(), id)
	require.NoError(t, err)
	return r
}

// assertDetail checks a {"detail": …} body.
func assertDetail(t *testing.T, r resp, status int, detail string) {
	t.Helper()
	require.Equal(t, status, r.Status, r.String())
	require.JSONEq(t, mustJSON(t, map[string]string{"detail": detail}), string(r.Body))
}

// assertFields checks a DRF field-error body exactly.
func assertFields(t *testing.T, r resp, fields map[string][]string) {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, r.Status, r.String())
	require.JSONEq(t, mustJSON(t, fields), string(r.Body))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	id, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err)
	return id
}

// cheapHashing makes a password hash cost next to nothing, for tests only.
var cheapHashing = password.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}
