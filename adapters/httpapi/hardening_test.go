package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/httpapi"
	"healthrecord/adapters/jwt"
	"healthrecord/adapters/password"
	"healthrecord/app"
	"healthrecord/domain"
	"healthrecord/internal/username"
	"healthrecord/ports"
)

// slowParams make a hash take long enough that concurrent requests
// overlap, without the 19 MiB of production.
var slowParams = password.Params{Memory: 4096, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}

// newEnvWithHasher is newEnv with a hasher of the test's choosing.
func newEnvWithHasher(t *testing.T, h ports.PasswordHasher, opts ...envOption) *env {
	t.Helper()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	hcfg, acfg := httpapi.Config{}, app.Config{}
	for _, o := range opts {
		o(&hcfg, &acfg)
	}
	ctx := context.Background()
	dir := t.TempDir()
	db := openTestStore(t)
	tokens, err := jwt.LoadOrCreate(filepath.Join(dir, "keys.json"), time.Now())
	require.NoError(t, err)
	attempts, rates := countersOf(t, db)
	hcfg.Rates = rates
	a := app.New(app.Deps{Store: db, Tokens: tokens, Hasher: h, Clock: clock{}, Random: randomBytes, Log: log,
		UsernameKey: username.Key, Attempts: attempts}, acfg)
	require.NoError(t, a.Start(ctx))
	bg, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.RunBackground(bg) }()
	t.Cleanup(func() { cancel(); <-done; require.NoError(t, a.Close(context.Background())) })
	srv := httptest.NewServer(httpapi.NewServer(a, hcfg, log))
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, db: db, app: a, logs: logs}
	t.Cleanup(func() {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"status":500`) {
				t.Errorf("error logged: %s", line)
			}
		}
	})
	return e
}

// jitterHasher delays every Verify by up to max, so that a sign-in's
// check of the old password can end before or after a concurrent change.
type jitterHasher struct {
	ports.PasswordHasher
	max time.Duration
}

func (h jitterHasher) Verify(ctx context.Context, hash, pw string) (bool, error) {
	ok, err := h.PasswordHasher.Verify(ctx, hash, pw)
	time.Sleep(rand.N(h.max))
	return ok, err
}

// concurrently runs n copies of fn at once and returns their statuses.
func concurrently(n int, fn func(i int) int) map[int]int {
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st := fn(i)
			mu.Lock()
			counts[st]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return counts
}

func TestSignIn_RevocationCoversSignInsInFlight(t *testing.T) {
	t.Parallel()
	e := newEnvWithHasher(t, jitterHasher{password.New(cheapHashing, 4), 20 * time.Millisecond})
	admin := e.mustAdmin(t)
	const rounds = 25
	survived := 0
	for round := range rounds {
		u := e.mustUser(t, "race", domain.RolePatient)
		var wg sync.WaitGroup
		var access, refresh string
		wg.Add(2)
		go func() {
			defer wg.Done()
			r := e.send(t, "POST", "/api/token/", "", map[string]string{"username": u.Name, "password": u.Password})
			if r.Status == http.StatusOK {
				var p struct{ Access, Refresh string }
				r.JSON(t, &p)
				access, refresh = p.Access, p.Refresh
			}
		}()
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(rand.N(5)) * time.Millisecond)
			if round%2 == 0 {
				r := e.send(t, "POST", fmt.Sprintf("/api/admin/users/%d/deactivate/", u.ID), admin.Token, nil)
				require.Equal(t, http.StatusOK, r.Status, r.String())
				return
			}
			// The changer holds its own sign-in, made before the race.
			own, _ := e.mustSignIn(t, u.Name, u.Password)
			r := e.send(t, "PUT", "/api/users/me/password/", own,
				map[string]string{"old_password": u.Password, "new_password": "Another-Secret-4471"})
			require.Equal(t, http.StatusOK, r.Status, r.String())
		}()
		wg.Wait()
		if access == "" {
			continue
		}
		me := e.send(t, "GET", "/api/users/me/", access, nil)
		ref := e.send(t, "POST", "/api/token/refresh/", "", map[string]string{"refresh": refresh})
		if me.Status == http.StatusOK || ref.Status == http.StatusOK {
			survived++
		}
	}
	assert.Zero(t, survived, "sign-ins that began before a revocation still work after it")
}

func TestSignIn_ThrottleCountsAttemptsOnArrival(t *testing.T) {
	t.Parallel()
	e := newEnvWithHasher(t, password.New(slowParams, 2))
	u := e.mustUser(t, "guess", domain.RolePatient)
	counts := concurrently(30, func(int) int {
		return e.send(t, "POST", "/api/token/", "", map[string]string{"username": u.Name, "password": "wrong-guess"}).Status
	})
	assert.LessOrEqual(t, counts[http.StatusUnauthorized], 10, "%v", counts)
	assert.Equal(t, 30, counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests], "%v", counts)
	// The right password is refused too while the username is throttled.
	r := e.send(t, "POST", "/api/token/", "", map[string]string{"username": u.Name, "password": u.Password})
	assert.Equal(t, http.StatusTooManyRequests, r.Status)

	// Per address: 100, whatever the usernames.
	counts = concurrently(130, func(i int) int {
		return e.send(t, "POST", "/api/token/", "", map[string]string{"username": fmt.Sprintf("nobody%d", i), "password": "wrong-guess"}).Status
	})
	assert.LessOrEqual(t, counts[http.StatusUnauthorized], 100, "%v", counts)
	assert.Equal(t, 130, counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests], "%v", counts)
}

func TestSignIn_SuccessReleasesItsReservation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.mustUser(t, "often", domain.RolePatient)
	for range 15 {
		e.mustSignIn(t, u.Name, u.Password)
	}
}

func TestSignIn_LongUsernameIsWrongCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.send(t, "POST", "/api/token/", "", map[string]string{"username": strings.Repeat("a", 151), "password": "whatever-it-is"})
	assertDetail(t, r, http.StatusUnauthorized, domain.MsgBadCredentials)
	// Refused before the throttle: it does not count against the address.
	for range 110 {
		r = e.send(t, "POST", "/api/token/", "", map[string]string{"username": strings.Repeat("b", 500), "password": "whatever-it-is"})
		require.Equal(t, http.StatusUnauthorized, r.Status)
	}
}

func TestChangePassword_WrongOldPasswordIsThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.mustPatient(t)
	for i := range 10 {
		r := e.send(t, "PUT", "/api/users/me/password/", u.Token, map[string]string{"old_password": "not-it", "new_password": "Another-Secret-4471"})
		require.Equal(t, http.StatusBadRequest, r.Status, "attempt %d: %s", i, r)
	}
	r := e.send(t, "PUT", "/api/users/me/password/", u.Token, map[string]string{"old_password": "not-it", "new_password": "Another-Secret-4471"})
	assert.Equal(t, http.StatusTooManyRequests, r.Status, r.String())
	assert.NotEmpty(t, r.Header.Get("Retry-After"))
	// The same throttle guards sign-in for that username.
	r = e.send(t, "POST", "/api/token/", "", map[string]string{"username": u.Name, "password": u.Password})
	assert.Equal(t, http.StatusTooManyRequests, r.Status, r.String())
}

func TestPasswords_HugeIsWrongNotError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.mustPatient(t)
	huge := strings.Repeat("x", 5000)
	r := e.send(t, "POST", "/api/token/", "", map[string]string{"username": u.Name, "password": huge})
	assertDetail(t, r, http.StatusUnauthorized, domain.MsgBadCredentials)
	r = e.send(t, "PUT", "/api/users/me/password/", u.Token, map[string]string{"old_password": huge, "new_password": "Another-Secret-4471"})
	assertFields(t, r, map[string][]string{"old_password": {"Wrong password."}})
	// The env's cleanup fails the test on any ERROR line or 500.
}

func TestPasswords_BlankLookingRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, pw := range []string{"          ", "\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b", "\u00a0\u3000\u2003\u2003\u2003\u2003\u2003\u2003\u2003\ufeff"} {
		r := e.send(t, "POST", "/api/users/register/", "", map[string]string{
			"username": e.name("blank"), "email": "b@example.com", "password": pw, "role": "PATIENT"})
		assertFields(t, r, map[string][]string{"password": {domain.MsgBlank}})
	}
	u := e.mustPatient(t)
	r := e.send(t, "PUT", "/api/users/me/password/", u.Token, map[string]string{"old_password": u.Password, "new_password": "\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b"})
	assertFields(t, r, map[string][]string{"new_password": {domain.MsgBlank}})
}

func TestUsernames_NormalisedForUniqueness(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustRegister(t, "alice", domain.RolePatient)
	for _, name := range []string{"Alice", "ａｌｉｃｅ", "ALICE", "Ａｌｉｃｅ"} {
		r := e.send(t, "POST", "/api/users/register/", "", map[string]string{
			"username": name, "email": "a@example.com", "password": testPassword, "role": "PATIENT"})
		assertFields(t, r, map[string][]string{"username": {"A user with that username already exists."}})
	}
	// Sign-in compares the same way, so variants share one throttle too.
	e.mustSignIn(t, "Ａｌｉｃｅ", testPassword)
}

func TestUnknownFields_AtMostTwentyReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.mustPatient(t)
	var b strings.Builder
	b.WriteString(`{"title": "t", "content": "c"`)
	for i := range 5000 {
		fmt.Fprintf(&b, `, "f%05d": 1`, i)
	}
	b.WriteString("}")
	r := e.send(t, "POST", "/api/records/", u.Token, b.String())
	require.Equal(t, http.StatusBadRequest, r.Status)
	m := r.Map(t)
	assert.Equal(t, 20, len(m), "fields reported")
	for i := range 20 {
		assert.Contains(t, m, fmt.Sprintf("f%05d", i), "the first ones, in the body's order")
	}
}

func TestRevocation_SlowWriteIsNotLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.mustPatient(t)
	sid := sessionOf(t, u.Token)
	// Let the server poll at least once, then commit a revocation stamped
	// a minute before: another process whose write waited that long.
	time.Sleep(1100 * time.Millisecond)
	require.NoError(t, e.db.Sessions().Revoke(context.Background(), sid, time.Now().Add(-time.Minute)))
	require.Eventually(t, func() bool {
		return e.send(t, "GET", "/api/users/me/", u.Token, nil).Status == http.StatusUnauthorized
	}, 3*time.Second, 100*time.Millisecond, "the revocation reaches the server at its next poll")
}

// sessionOf reads the sign-in id out of a token's payload.
func sessionOf(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var c struct {
		SID string `json:"sid"`
	}
	require.NoError(t, json.Unmarshal(raw, &c))
	require.NotEmpty(t, c.SID)
	return c.SID
}

// clientFrom is an HTTP client whose connections come from the loopback
// address local, so the server sees another client address.
func clientFrom(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}}
}

func signInWith(c *http.Client, base, name, pw string) (int, error) {
	body, _ := json.Marshal(map[string]string{"username": name, "password": pw})
	res, err := c.Post(base+"/api/token/", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

func TestHashing_FloodFromOneAddressDoesNotDelayAnother(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes at production memory cost")
	}
	// Production's cost, one hash at a time: a queue of 64 takes seconds
	// to drain in arrival order.
	e := newEnvWithHasher(t, password.New(password.DefaultParams, 1),
		func(_ *httpapi.Config, a *app.Config) { a.HashConcurrency = 1 })
	flooder, victim := e.mustUser(t, "flood", domain.RolePatient), e.mustUser(t, "victim", domain.RolePatient)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	flood := clientFrom("127.0.0.1")
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, _ = signInWith(flood, e.srv.URL, flooder.Name, flooder.Password)
			}
		}()
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	time.Sleep(time.Second) // the flood's queue is full

	other := clientFrom("127.0.0.2")
	for range 3 {
		start := time.Now()
		status, err := signInWith(other, e.srv.URL, victim.Name, victim.Password)
		took := time.Since(start)
		t.Logf("another address's sign-in took %v", took)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, status)
		assert.Less(t, took, 2*time.Second, "another address's sign-in waited behind the flood")
	}
}
