package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/httpapi"
	"healthrecord/adapters/jwt"
	"healthrecord/adapters/password"
	"healthrecord/adapters/postgres"
	"healthrecord/app"
	"healthrecord/domain"
	"healthrecord/internal/username"
)

// twoInstances are two services on one PostgreSQL database, as two
// `serve` processes run them: each its own pool, counters, app and
// server, both with the same signing keys. On SQLite (one process per
// database) the test is skipped.
func twoInstances(t *testing.T, opts ...envOption) [2]*env {
	t.Helper()
	if !onPostgres() {
		t.Skip("several instances share a database on PostgreSQL only")
	}
	url := pgDB.Schema(t)
	keys := filepath.Join(t.TempDir(), "keys.json")
	return [2]*env{newInstance(t, url, keys, opts...), newInstance(t, url, keys, opts...)}
}

func newInstance(t *testing.T, url, keyFile string, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	hcfg, acfg := httpapi.Config{}, app.Config{}
	for _, o := range opts {
		o(&hcfg, &acfg)
	}
	db, err := postgres.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, db.Migrate(ctx))
	counters, err := db.Counters(ctx)
	require.NoError(t, err)
	tokens, err := jwt.LoadOrCreate(keyFile, time.Now())
	require.NoError(t, err)
	// Hashes slow enough that concurrent sign-ins overlap.
	a := app.New(app.Deps{Store: db, Tokens: tokens, Hasher: password.New(slowParams, 2), Clock: clock{},
		Random: randomBytes, Log: log, UsernameKey: username.Key, Attempts: counters}, acfg)
	require.NoError(t, a.Start(ctx))
	bg, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.RunBackground(bg) }()
	t.Cleanup(func() { cancel(); <-done; require.NoError(t, a.Close(context.Background())) })
	hcfg.Ready, hcfg.Rates = db.Ready, counters
	srv := httptest.NewServer(httpapi.NewServer(a, hcfg, log))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"status":500`) {
				t.Errorf("error logged: %s", line)
			}
		}
	})
	return &env{t: t, srv: srv, db: db, app: a, logs: logs}
}

func TestInstances_SignInThrottleCountedAcrossThem(t *testing.T) {
	t.Parallel()
	in := twoInstances(t)
	u := in[0].mustUser(t, "spread", domain.RolePatient)
	wrong := map[string]string{"username": u.Name, "password": "wrong-guess"}
	for i := range 10 {
		r := in[i%2].send(t, "POST", "/api/token/", "", wrong)
		require.Equal(t, http.StatusUnauthorized, r.Status, "attempt %d on instance %d: %s", i, i%2, r)
	}
	for i, e := range in {
		r := e.send(t, "POST", "/api/token/", "", map[string]string{"username": u.Name, "password": u.Password})
		assertThrottled(t, r)
		secs, _ := strconv.Atoi(r.Header.Get("Retry-After"))
		assert.Greater(t, secs, 800, "instance %d: the window is 15 minutes", i)
	}
	// Another user signs in on either.
	v := in[0].mustUser(t, "other", domain.RolePatient)
	for _, e := range in {
		e.mustSignIn(t, v.Name, v.Password)
	}
}

func TestInstances_ConcurrentGuessesCountedAcrossThem(t *testing.T) {
	t.Parallel()
	in := twoInstances(t)
	u := in[0].mustUser(t, "guess", domain.RolePatient)
	counts := concurrently(30, func(i int) int {
		return in[i%2].send(t, "POST", "/api/token/", "", map[string]string{"username": u.Name, "password": "wrong-guess"}).Status
	})
	assert.LessOrEqual(t, counts[http.StatusUnauthorized], 10, "%v", counts)
	assert.Equal(t, 30, counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests], "%v", counts)
}

func TestInstances_UserRateCountedAcrossThem(t *testing.T) {
	t.Parallel()
	in := twoInstances(t, rates(httpapi.Rate{}, httpapi.Rate{N: 6, Per: time.Minute}, httpapi.Rate{}))
	p := in[0].mustPatient(t)
	for i := range 6 {
		r := in[i%2].send(t, "GET", "/api/records/", p.Token, nil)
		require.Equal(t, http.StatusOK, r.Status, "request %d on instance %d: %s", i, i%2, r)
	}
	for _, e := range in {
		assertThrottled(t, e.send(t, "GET", "/api/records/", p.Token, nil))
	}
	q := in[1].signedIn(t, in[0].mustUser(t, "other", domain.RolePatient))
	assert.Equal(t, http.StatusOK, in[0].send(t, "GET", "/api/records/", q.Token, nil).Status, "another user is not affected")
}
