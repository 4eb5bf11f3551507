package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/httpapi"
	"healthrecord/app"
)

const forbidden = "You do not have permission to perform this action."

func TestIndex(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(h *httpapi.Config, _ *app.Config) { h.Version = "v1.2.3" })
	r := e.send(t, "GET", "/", "", nil)
	require.Equal(t, 200, r.Status, r.String())
	assert.JSONEq(t, `{"name": "healthrecord", "version": "v1.2.3", "docs": "/api/docs/", "openapi": "/api/openapi.json"}`, string(r.Body))
	assert.Equal(t, "default-src 'none'; frame-ancestors 'none'", r.Header.Get("Content-Security-Policy"))
}

func TestAdminOverviewAndVerify(t *testing.T) {
	t.Parallel()
	started := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	e := newEnv(t, func(h *httpapi.Config, _ *app.Config) { h.Version = "v9.9.9"; h.StartedAt = started })
	admin := e.mustAdmin(t)
	p := e.mustPatient(t)
	approved := e.mustDoctor(t, true)
	pending := e.mustDoctor(t, false)
	rec := e.mustRecord(t, p, approved.ID) // one outbox event
	require.Equal(t, 200, e.send(t, "GET", "/api/records/"+itoa(rec.ID)+"/", p.Token, nil).Status)

	t.Run("non-admins are refused", func(t *testing.T) {
		for _, path := range []string{"/api/admin/overview/", "/api/admin/audit/verify/", "/api/admin/overview", "/api/admin/audit/verify"} {
			for _, u := range []user{p, approved, pending} {
				assertDetail(t, e.send(t, "GET", path, u.Token, nil), 403, forbidden)
			}
			assertDetail(t, e.send(t, "GET", path, "", nil), 401, "Authentication credentials were not provided.")
		}
	})

	t.Run("overview", func(t *testing.T) {
		r := e.send(t, "GET", "/api/admin/overview/", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		var got struct {
			Users          map[string]int64 `json:"users"`
			PendingDoctors int64            `json:"pending_doctors"`
			Outbox         map[string]int64 `json:"outbox"`
			AuditEntries   int64            `json:"audit_entries"`
			Version        string           `json:"version"`
			StartedAt      string           `json:"started_at"`
		}
		r.JSON(t, &got)
		assert.Equal(t, map[string]int64{"PATIENT": 1, "DOCTOR": 2, "ADMIN": 1}, got.Users)
		assert.Equal(t, int64(1), got.PendingDoctors)
		assert.Equal(t, int64(1), got.Outbox["pending"]+got.Outbox["delivered"]+got.Outbox["dead"])
		assert.Len(t, got.Outbox, 3)
		all := e.send(t, "GET", "/api/admin/audit/?limit=500", admin.Token, nil).List(t)
		assert.Equal(t, int64(len(all)), got.AuditEntries, "every entry, the read flushed first")
		assert.Equal(t, "record.read", all[0]["action"], "the read, flushed before counting")
		assert.Equal(t, "v9.9.9", got.Version)
		assert.Equal(t, "2026-11-28T09:30:00Z", got.StartedAt)
	})

	t.Run("verify", func(t *testing.T) {
		r := e.send(t, "GET", "/api/admin/audit/verify/", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		n := len(e.send(t, "GET", "/api/admin/audit/?limit=500", admin.Token, nil).List(t))
		assert.JSONEq(t, `{"ok": true, "entries": `+itoa(int64(n))+`, "first_broken": null}`, string(r.Body))
	})
}

func TestAdminFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.mustAdmin(t)
	p := e.mustPatient(t)
	rec := e.mustRecord(t, p, 0)
	require.Equal(t, 200, e.send(t, "GET", "/api/records/"+itoa(rec.ID)+"/", p.Token, nil).Status)

	r := e.send(t, "GET", "/api/admin/audit/?action=record.read", admin.Token, nil)
	require.Equal(t, 200, r.Status, r.String())
	l := r.List(t)
	require.Len(t, l, 1)
	assert.Equal(t, "record.read", l[0]["action"])

	r = e.send(t, "GET", "/api/admin/users/?search="+strings.ToUpper(p.Name[:4]), admin.Token, nil)
	require.Equal(t, 200, r.Status, r.String())
	l = r.List(t)
	require.Len(t, l, 1)
	assert.Equal(t, p.Name, l[0]["username"])

	assertFields(t, e.send(t, "GET", "/api/admin/users/?search="+strings.Repeat("a", 151), admin.Token, nil),
		map[string][]string{"search": {"Ensure this field has no more than 150 characters."}})
	assertFields(t, e.send(t, "GET", "/api/admin/audit/?action=%00", admin.Token, nil),
		map[string][]string{"action": {`"\x00" is not a valid choice.`}})
}

// TestPages_Policies: the two pages and their files are served with a
// policy that allows scripts only from the server; every API answer keeps
// the strict one.
func TestPages_Policies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for path, ctype := range map[string]string{
		"/api/docs/":                     "text/html; charset=utf-8",
		"/api/docs":                      "text/html; charset=utf-8",
		"/api/docs/docs.js":              "text/javascript; charset=utf-8",
		"/api/docs/swagger-ui-bundle.js": "text/javascript; charset=utf-8",
		"/api/docs/swagger-ui.css":       "text/css; charset=utf-8",
		"/admin/":                        "text/html; charset=utf-8",
		"/admin":                         "text/html; charset=utf-8",
		"/admin/admin.js":                "text/javascript; charset=utf-8",
		"/admin/admin.css":               "text/css; charset=utf-8",
	} {
		r := e.send(t, "GET", path, "", nil)
		require.Equal(t, 200, r.Status, path)
		assert.Equal(t, ctype, r.Header.Get("Content-Type"), path)
		csp := r.Header.Get("Content-Security-Policy")
		assert.Contains(t, csp, "script-src 'self';", path)
		assert.Contains(t, csp, "frame-ancestors 'none'", path)
		assert.NotContains(t, csp, "unsafe", path)
		assert.Equal(t, "DENY", r.Header.Get("X-Frame-Options"), path)
		assert.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"), path)
	}
	for _, path := range []string{"/admin/nope.js", "/admin/../go.mod", "/api/docs/VERSION", "/api/docs/vendor/", "/admin/index.html/x"} {
		r := e.send(t, "GET", path, "", nil)
		assert.Equal(t, http.StatusNotFound, r.Status, path)
		assert.Equal(t, "default-src 'none'; frame-ancestors 'none'", r.Header.Get("Content-Security-Policy"), path)
	}
	r := e.send(t, "POST", "/admin/", "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.Status)
}
