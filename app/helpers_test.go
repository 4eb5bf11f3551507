package app

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// t0 is when every test starts; the fake clock moves only when told.
var t0 = time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC)

// dummyHash is what Start makes the fake hasher compute for unknown users.
const dummyHash = fakeHashPrefix + "healthrecord-dummy-password-for-timing"

// testEnv is an App over fakes, with the fakes at hand.
type testEnv struct {
	app    *App
	db     *fakeDB
	tokens *fakeTokens
	hasher *fakeHasher
	clock  *fakeClock
}

// newEnv builds and starts an App over fresh fakes.
func newEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	e := &testEnv{
		db: newFakeDB(), tokens: &fakeTokens{issued: map[string]ports.TokenClaims{}},
		hasher: &fakeHasher{}, clock: &fakeClock{t: t0},
	}
	e.app = New(Deps{
		Store: e.db, Tokens: e.tokens, Hasher: e.hasher, Clock: e.clock, Random: counterRandom(),
	}, cfg)
	require.NoError(t, e.app.Start(context.Background()))
	return e
}

// password is every test user's password.
func password(username string) string { return "pw-" + username + "-Secret!" }

// mustUser stores an active (and, for doctors, approved) account directly.
func (e *testEnv) mustUser(t *testing.T, username string, role domain.Role, mods ...func(*domain.User)) domain.User {
	t.Helper()
	u := domain.User{
		Username: username, Email: username + "@example.com", Role: role, Approved: true, Active: true,
		PasswordHash: fakeHashPrefix + password(username), CreatedAt: e.clock.Now(),
	}
	for _, m := range mods {
		m(&u)
	}
	require.NoError(t, e.db.Users().Create(context.Background(), &u))
	e.clock.Advance(time.Millisecond) // distinct created_at, newest last
	return u
}

func unapproved(u *domain.User) { u.Approved = false }
func inactive(u *domain.User)   { u.Active = false }

// actorOf is how the HTTP adapter would present u.
func actorOf(u domain.User) domain.Actor {
	return domain.Actor{ID: u.ID, Role: u.Role, RequestID: "req-" + u.Username, RemoteAddr: "192.0.2.1"}
}

// mustRecord stores a record of patient, assigned to doctor (0: none).
func (e *testEnv) mustRecord(t *testing.T, patient, doctor domain.User) domain.Record {
	t.Helper()
	r := domain.Record{
		PatientID: patient.ID, DoctorID: doctor.ID, Title: "Title of " + patient.Username,
		Content: "Content of " + patient.Username, CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now(),
	}
	require.NoError(t, e.db.Records().Create(context.Background(), &r))
	e.clock.Advance(time.Millisecond)
	r.Comments = []domain.Comment{}
	return r
}

// mustComment stores doctor's comment on r.
func (e *testEnv) mustComment(t *testing.T, r domain.Record, doctor domain.User) domain.Comment {
	t.Helper()
	c := domain.Comment{RecordID: r.ID, DoctorID: doctor.ID, Text: "Comment by " + doctor.Username, CreatedAt: e.clock.Now()}
	require.NoError(t, e.db.Comments().Create(context.Background(), &c))
	e.clock.Advance(time.Millisecond)
	return c
}

// mustSignIn signs username in and returns the pair.
func (e *testEnv) mustSignIn(t *testing.T, username string) TokenPair {
	t.Helper()
	p, err := e.app.SignIn(context.Background(), username, password(username), "198.51.100.1")
	require.NoError(t, err)
	return p
}

// record reads a record straight from the fake database, without its
// comments.
func (e *testEnv) record(t *testing.T, id int64) (domain.Record, bool) {
	t.Helper()
	r, ok := e.db.rows().Records[id]
	return r, ok
}

// auditEntries returns what the fake database holds, oldest first.
func (e *testEnv) auditEntries() []domain.AuditEntry {
	return slices.Clone(e.db.rows().Audit)
}

// outboxEvents returns the stored events by id.
func (e *testEnv) outboxEvents() map[int64]domain.OutboxEvent {
	return maps.Clone(e.db.rows().Outbox)
}

// session returns the stored session.
func (e *testEnv) session(t *testing.T, id string) domain.Session {
	t.Helper()
	s, ok := e.db.rows().Sessions[id]
	require.True(t, ok, "no session %q", id)
	return s
}

// revokeElsewhere revokes a session in the database, as another process
// (the CLI) would, without telling the app.
func (e *testEnv) revokeElsewhere(t *testing.T, id string, at time.Time) {
	t.Helper()
	require.NoError(t, e.db.Sessions().Revoke(context.Background(), id, at))
}

// requireCode asserts err is a domain error with code and, if set, message.
func requireCode(t *testing.T, err error, code domain.Code, msg string) {
	t.Helper()
	require.Error(t, err)
	var de *domain.Error
	require.ErrorAs(t, err, &de)
	require.Equal(t, code, de.Code, "error: %v", err)
	if msg != "" {
		assert.Equal(t, msg, de.Message)
	}
}

// requireWait asserts err is EThrottled, to be tried again after wait.
func requireWait(t *testing.T, err error, wait time.Duration) {
	t.Helper()
	requireCode(t, err, domain.EThrottled, "")
	var de *domain.Error
	require.ErrorAs(t, err, &de)
	assert.Equal(t, wait, de.Wait)
}

// requireFields asserts err is EInvalid with exactly these field messages.
func requireFields(t *testing.T, err error, want map[string][]string) {
	t.Helper()
	require.Error(t, err)
	var de *domain.Error
	require.ErrorAs(t, err, &de)
	require.Equal(t, domain.EInvalid, de.Code, "error: %v", err)
	assert.Equal(t, want, de.Fields)
}

// errBoom is an outage.
var errBoom = errorString("boom: database unavailable")

type errorString string

func (e errorString) Error() string { return string(e) }

var ctx = context.Background()

// syncBuffer is a log destination safe for the background goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// captureLogs sends the app's JSON logs to a buffer; call it before any
// background goroutine starts.
func (e *testEnv) captureLogs() *syncBuffer {
	b := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(b, nil))
	e.app.log, e.app.audit.log = log, log
	return b
}
