package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/httpapi"
	"healthrecord/app"
	"healthrecord/domain"
)

var securityHeaders = map[string]string{
	"Cache-Control":                "no-store",
	"Pragma":                       "no-cache",
	"X-Content-Type-Options":       "nosniff",
	"Content-Security-Policy":      "default-src 'none'; frame-ancestors 'none'",
	"X-Frame-Options":              "DENY",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Resource-Policy": "same-origin",
}

func TestOperations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/healthz", "/healthz/", "/readyz"} {
		r := e.send(t, "GET", path, "", nil)
		require.Equal(t, 200, r.Status, path)
		assert.JSONEq(t, `{"status": "ok"}`, string(r.Body))
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
	}

	r := e.send(t, "GET", "/api/openapi.json", "", nil)
	require.Equal(t, 200, r.Status)
	doc := r.Map(t)
	assert.Equal(t, "3.1.0", doc["openapi"])
	assert.Contains(t, doc["paths"], "/api/records/{id}/")

	r = e.send(t, "HEAD", "/healthz", "", nil)
	assert.Equal(t, 200, r.Status)
	assert.Empty(t, r.Body)

	t.Run("not ready", func(t *testing.T) {
		t.Parallel()
		h := httpapi.NewServer(nil, httpapi.Config{Ready: func(context.Context) error { return errors.New("db gone") }}, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.JSONEq(t, `{"status": "unavailable"}`, rec.Body.String())
	})
}

func TestSecurityHeadersAndRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	for _, tt := range []struct {
		name, path, token string
		status            int
	}{
		{"ok", "/api/users/me/", p.Token, 200},
		{"not found", "/api/nothing/", "", 404},
		{"unauthorized", "/api/users/me/", "", 401},
	} {
		r := e.send(t, "GET", tt.path, tt.token, nil)
		require.Equal(t, tt.status, r.Status, tt.name)
		for k, v := range securityHeaders {
			assert.Equal(t, v, r.Header.Get(k), "%s: %s", tt.name, k)
		}
		assert.Empty(t, r.Header.Get("Strict-Transport-Security"), "no HSTS over plain HTTP")
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		assert.Regexp(t, `^[0-9a-f]{32}$`, r.Header.Get("X-Request-ID"), "generated when absent")
	}

	t.Run("HSTS with TLS", func(t *testing.T) {
		t.Parallel()
		rec := httptest.NewRecorder()
		httpapi.NewServer(nil, httpapi.Config{TLS: true}, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		assert.Contains(t, rec.Header().Get("Strict-Transport-Security"), "max-age=")
	})

	t.Run("request id", func(t *testing.T) {
		for in, kept := range map[string]bool{
			"abc-123_X.y:z":          true,
			strings.Repeat("a", 128): true,
			strings.Repeat("a", 129): false,
			"has space":              false,
			"new\\nline":             false,
			"<script>":               false,
		} {
			r := e.send(t, "GET", "/healthz", "", nil, "X-Request-ID", in)
			if kept {
				assert.Equal(t, in, r.Header.Get("X-Request-ID"))
			} else {
				assert.Regexp(t, `^[0-9a-f]{32}$`, r.Header.Get("X-Request-ID"), in)
			}
		}
	})

	t.Run("request id reaches the audit trail", func(t *testing.T) {
		rec := e.mustRecord(t, p, 0)
		r := e.send(t, "GET", "/api/records/"+itoa(rec.ID)+"/", p.Token, nil, "X-Request-ID", "trace-me-42")
		require.Equal(t, 200, r.Status)
		r = e.send(t, "GET", "/api/records/"+itoa(rec.ID)+"/access-log/", p.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		found := false
		for _, entry := range r.List(t) {
			if entry["request_id"] == "trace-me-42" {
				found = true
				assert.Equal(t, "record.read", entry["action"])
				assert.Equal(t, "127.0.0.1", entry["remote_addr"])
			}
		}
		assert.True(t, found, "entries: %s", r.Body)
	})
}

// TestAccessLogLines checks the access log's fields, and that no token,
// password, or record text reaches any log line.
func TestAccessLogLines(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	r := e.send(t, "POST", "/api/records/", p.Token, map[string]any{"title": "SecretTitle", "content": "SecretContent"})
	require.Equal(t, 201, r.Status)
	e.send(t, "GET", "/api/records/?limit=5", p.Token, nil, "X-Request-ID", "log-line-check")

	logs := e.logs.String()
	assert.Contains(t, logs, `"route":"/api/records/"`)
	assert.Contains(t, logs, `"request_id":"log-line-check"`)
	assert.Contains(t, logs, `"method":"GET"`)
	assert.Contains(t, logs, `"status":200`)
	for _, secret := range []string{p.Token, p.Refresh, testPassword, "SecretTitle", "SecretContent", "limit=5"} {
		assert.NotContains(t, logs, secret)
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	d := e.mustDoctor(t, true)
	rec := e.mustRecord(t, p, d.ID)
	c := e.mustComment(t, d, rec.ID, "Looks fine.")

	t.Run("unknown path", func(t *testing.T) {
		for _, path := range []string{"/api/", "/api/nothing/", "/api/records/abc/", "/api/records/0/", "/api/records/1/2/"} {
			assertDetail(t, e.send(t, "GET", path, p.Token, nil), 404, "Not found.")
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		r := e.send(t, "DELETE", "/api/doctors/", p.Token, nil)
		assertDetail(t, r, 405, `Method "DELETE" not allowed.`)
		assert.Equal(t, "GET, HEAD", r.Header.Get("Allow"))

		r = e.send(t, "GET", "/api/token/", "", nil)
		assertDetail(t, r, 405, `Method "GET" not allowed.`)
		assert.Equal(t, "POST", r.Header.Get("Allow"))

		r = e.send(t, "POST", "/api/records/1", p.Token, nil)
		assertDetail(t, r, 405, `Method "POST" not allowed.`)
		assert.Equal(t, "GET, HEAD, PUT, PATCH, DELETE", r.Header.Get("Allow"))
	})
	t.Run("comments are append-only", func(t *testing.T) {
		path := "/api/comments/" + itoa(c.ID) + "/"
		for _, m := range []string{"PUT", "PATCH", "DELETE"} {
			for _, pth := range []string{path, strings.TrimSuffix(path, "/")} {
				r := e.send(t, m, pth, d.Token, map[string]any{"record": rec.ID, "comment": "changed"})
				assertDetail(t, r, 405, `Method "`+m+`" not allowed.`)
				assert.Equal(t, "GET, HEAD", r.Header.Get("Allow"))
			}
		}
		assert.Equal(t, "Looks fine.", e.stored(t, rec.ID).Comments[0].Text)
	})
	t.Run("trailing slash optional, no redirect", func(t *testing.T) {
		r := e.send(t, "GET", "/api/records", p.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		assert.Len(t, r.List(t), 1)
		r = e.send(t, "PATCH", "/api/records/"+itoa(rec.ID), p.Token, map[string]any{"title": "No slash"})
		require.Equal(t, 200, r.Status, r.String())
		r = e.send(t, "GET", "/api/users/me", p.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		r = e.send(t, "POST", "/api/users/register", "", map[string]any{
			"username": "noslash", "email": "noslash@example.com", "password": testPassword, "role": "PATIENT"})
		require.Equal(t, 201, r.Status, r.String())
		r = e.send(t, "POST", "/api/users/token", "", map[string]any{"username": "noslash", "password": testPassword})
		require.Equal(t, 200, r.Status, r.String())
		r = e.send(t, "GET", "/api/openapi.json/", "", nil)
		require.Equal(t, 200, r.Status, r.String())
	})
}

func TestRegister(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := func(fields map[string]any) resp { return e.send(t, "POST", "/api/users/register/", "", fields) }

	r := reg(map[string]any{"username": "alice", "email": "alice@example.com", "password": testPassword, "role": "PATIENT"})
	require.Equal(t, 201, r.Status, r.String())
	assert.Equal(t, []string{"email", "id", "role", "username"}, keys(r.Map(t)))
	assert.Equal(t, "alice", r.Map(t)["username"])

	// A doctor cannot approve itself: approved is read-only.
	r = reg(map[string]any{"username": "drbob", "email": "bob@example.com", "password": testPassword, "role": "DOCTOR", "approved": true, "id": 99})
	require.Equal(t, 201, r.Status, r.String())
	m := r.Map(t)
	assert.Equal(t, false, m["approved"])
	assert.NotEqual(t, float64(99), m["id"])

	tests := []struct {
		name   string
		body   any
		fields map[string][]string
	}{
		{"duplicate username", map[string]any{"username": "alice", "email": "a2@example.com", "password": testPassword, "role": "PATIENT"},
			map[string][]string{"username": {"A user with that username already exists."}}},
		{"admin refused", map[string]any{"username": "eve", "email": "eve@example.com", "password": testPassword, "role": "ADMIN"},
			map[string][]string{"role": {`"ADMIN" is not a valid choice.`}}},
		{"all missing", map[string]any{}, map[string][]string{
			"username": {domain.MsgRequired}, "email": {domain.MsgRequired}, "password": {domain.MsgRequired}, "role": {domain.MsgRequired}}},
		{"bad email, weak password", map[string]any{"username": "carol", "email": "nope", "password": "12345678", "role": "PATIENT"},
			map[string][]string{"email": {"Enter a valid email address."},
				"password": {"This password is too common.", "This password is entirely numeric."}}},
		{"wrong types", map[string]any{"username": 5, "email": nil, "password": testPassword, "role": "PATIENT"},
			map[string][]string{"username": {"Not a valid string."}, "email": {"This field may not be null."}}},
		{"unknown field", map[string]any{"username": "dave", "email": "d@example.com", "password": testPassword, "role": "PATIENT", "is_staff": true},
			map[string][]string{"is_staff": {"Unknown field."}}},
		{"list body", []any{1}, map[string][]string{"non_field_errors": {"Invalid data. Expected a dictionary, but got list."}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assertFields(t, e.send(t, "POST", "/api/users/register/", "", tt.body), tt.fields) })
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustUser(t, "patient", domain.RolePatient)

	for _, path := range []string{"/api/token/", "/api/users/token/"} {
		r := e.send(t, "POST", path, "", map[string]string{"username": p.Name, "password": testPassword})
		require.Equal(t, 200, r.Status, r.String())
		assert.Equal(t, []string{"access", "refresh"}, keys(r.Map(t)))
	}

	t.Run("wrong credentials", func(t *testing.T) {
		for _, creds := range []map[string]string{
			{"username": p.Name, "password": "wrong-Password-1"},
			{"username": "nobody-here", "password": testPassword},
		} {
			r := e.send(t, "POST", "/api/token/", "", creds)
			assertDetail(t, r, 401, "No active account found with the given credentials")
			assert.Equal(t, `Bearer realm="api"`, r.Header.Get("WWW-Authenticate"))
		}
		assertFields(t, e.send(t, "POST", "/api/token/", "", map[string]string{"username": ""}),
			map[string][]string{"username": {domain.MsgBlank}, "password": {domain.MsgRequired}})
	})

	t.Run("refresh rotates and works once", func(t *testing.T) {
		_, refresh := e.mustSignIn(t, p.Name, testPassword)
		r := e.send(t, "POST", "/api/token/refresh/", "", map[string]string{"refresh": refresh})
		require.Equal(t, 200, r.Status, r.String())
		var pair struct{ Access, Refresh string }
		r.JSON(t, &pair)
		require.NotEqual(t, refresh, pair.Refresh)
		assert.Equal(t, 200, e.send(t, "GET", "/api/users/me/", pair.Access, nil).Status)

		// Reuse of the old one revokes the whole sign-in, its new tokens too.
		r = e.send(t, "POST", "/api/token/refresh/", "", map[string]string{"refresh": refresh})
		require.Equal(t, 401, r.Status)
		assert.JSONEq(t, `{"detail": "Token is invalid or expired", "code": "token_not_valid"}`, string(r.Body))
		assert.Equal(t, `Bearer realm="api"`, r.Header.Get("WWW-Authenticate"))
		r = e.send(t, "POST", "/api/users/token/refresh/", "", map[string]string{"refresh": pair.Refresh})
		require.Equal(t, 401, r.Status)
		r = e.send(t, "GET", "/api/users/me/", pair.Access, nil)
		assert.JSONEq(t, `{"detail": "Given token not valid for any token type", "code": "token_not_valid"}`, string(r.Body))
	})

	t.Run("blacklist", func(t *testing.T) {
		access, refresh := e.mustSignIn(t, p.Name, testPassword)
		r := e.send(t, "POST", "/api/token/blacklist/", "", map[string]string{"refresh": refresh})
		require.Equal(t, 200, r.Status, r.String())
		assert.JSONEq(t, `{}`, string(r.Body))
		assert.Equal(t, 401, e.send(t, "POST", "/api/token/refresh/", "", map[string]string{"refresh": refresh}).Status)
		assert.Equal(t, 401, e.send(t, "GET", "/api/users/me/", access, nil).Status, "the sign-in's access token stops too")
		r = e.send(t, "POST", "/api/token/blacklist/", "", map[string]string{"refresh": "garbage"})
		assert.JSONEq(t, `{"detail": "Token is invalid or expired", "code": "token_not_valid"}`, string(r.Body))
		assertFields(t, e.send(t, "POST", "/api/token/blacklist/", "", nil), map[string][]string{"refresh": {domain.MsgRequired}})
	})

	t.Run("throttled per username", func(t *testing.T) {
		victim := e.mustUser(t, "victim", domain.RolePatient)
		for range 10 {
			r := e.send(t, "POST", "/api/token/", "", map[string]string{"username": victim.Name, "password": "wrong-Password-1"})
			require.Equal(t, 401, r.Status)
		}
		r := e.send(t, "POST", "/api/token/", "", map[string]string{"username": victim.Name, "password": testPassword})
		require.Equal(t, 429, r.Status, r.String())
		assert.Regexp(t, `^Request was throttled\. Expected available in \d+ seconds\.$`, r.Map(t)["detail"])
		assert.Regexp(t, `^\d+$`, r.Header.Get("Retry-After"))
		// Others keep signing in.
		e.mustSignIn(t, p.Name, testPassword)
	})
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	noCreds := `{"detail": "Authentication credentials were not provided."}`
	badToken := `{"detail": "Given token not valid for any token type", "code": "token_not_valid"}`
	for _, tt := range []struct {
		name, header, body string
	}{
		{"missing", "", noCreds},
		{"other scheme", "Basic dXNlcjpwYXNz", noCreds},
		{"lower-case scheme", "bearer " + p.Token, noCreds},
		{"bearer without token", "Bearer", badToken},
		{"garbage", "Bearer not-a-jwt", badToken},
		{"refresh token as access", "Bearer " + p.Refresh, badToken},
		{"tampered", "Bearer " + p.Token[:len(p.Token)-4] + "AAAA", badToken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.send(t, "GET", "/api/records/", "", nil, "Authorization", tt.header)
			require.Equal(t, 401, r.Status)
			assert.JSONEq(t, tt.body, string(r.Body))
			assert.Equal(t, `Bearer realm="api"`, r.Header.Get("WWW-Authenticate"))
		})
	}
}

func TestMeAndPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	d := e.mustDoctor(t, false)

	r := e.send(t, "GET", "/api/users/me/", p.Token, nil)
	require.Equal(t, 200, r.Status)
	assert.JSONEq(t, mustJSON(t, map[string]any{"id": p.ID, "username": p.Name, "email": p.Name + "@example.com", "role": "PATIENT"}), string(r.Body))
	r = e.send(t, "GET", "/api/users/me", d.Token, nil)
	require.Equal(t, 200, r.Status)
	assert.Equal(t, false, r.Map(t)["approved"])

	assertFields(t, e.send(t, "PUT", "/api/users/me/password/", p.Token, map[string]string{"old_password": "wrong-One-77", "new_password": "another-Good-Pass-5"}),
		map[string][]string{"old_password": {"Wrong password."}})
	assertFields(t, e.send(t, "PUT", "/api/users/me/password/", p.Token, map[string]string{"old_password": testPassword, "new_password": "xq7"}),
		map[string][]string{"new_password": {"This password is too short. It must contain at least 8 characters."}})
	assertFields(t, e.send(t, "PUT", "/api/users/me/password/", p.Token, map[string]any{"old_password": testPassword}),
		map[string][]string{"new_password": {domain.MsgRequired}})

	other, _ := e.mustSignIn(t, p.Name, testPassword)
	r = e.send(t, "PUT", "/api/users/me/password/", p.Token, map[string]string{"old_password": testPassword, "new_password": "another-Good-Pass-5"})
	require.Equal(t, 200, r.Status, r.String())
	assert.JSONEq(t, `{}`, string(r.Body))
	assert.Equal(t, 401, e.send(t, "GET", "/api/users/me/", other, nil).Status, "every sign-in is revoked")
	assert.Equal(t, 401, e.send(t, "POST", "/api/token/", "", map[string]string{"username": p.Name, "password": testPassword}).Status)
	e.mustSignIn(t, p.Name, "another-Good-Pass-5")
}

func TestDoctors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	approved := e.mustDoctor(t, true)
	e.mustDoctor(t, false)
	gone := e.mustDoctor(t, true)
	_, err := e.app.SetUserByName(context.Background(), gone.Name, app.OpDeactivate)
	require.NoError(t, err)

	r := e.send(t, "GET", "/api/doctors/", p.Token, nil)
	require.Equal(t, 200, r.Status, r.String())
	assert.JSONEq(t, mustJSON(t, []map[string]any{{"id": approved.ID, "username": approved.Name}}), string(r.Body))
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
