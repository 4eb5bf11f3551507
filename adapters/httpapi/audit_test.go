package httpapi_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdmin_CannotDeactivateSelf(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.mustAdmin(t)
	assertDetail(t, e.send(t, "POST", "/api/admin/users/"+itoa(admin.ID)+"/deactivate/", admin.Token, nil),
		400, "You cannot deactivate your own account.")
	u, err := e.db.Users().ByID(t.Context(), admin.ID)
	require.NoError(t, err)
	assert.True(t, u.Active)
	assert.Equal(t, 200, e.send(t, "GET", "/api/admin/users/", admin.Token, nil).Status, "still signed in")
}

// TestAccessLog_ShowsEveryListThatDisplayedTheRecord: record and comment
// lists name each record they showed, so the owner sees them in the
// record's access log; a record not on the page is not named.
func TestAccessLog_ShowsEveryListThatDisplayedTheRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	d := e.mustDoctor(t, true)
	rec := e.mustRecord(t, p, d.ID)
	newer := e.mustRecord(t, p, d.ID)
	e.mustComment(t, d, rec.ID, "Rest.")

	require.Equal(t, 200, e.send(t, "GET", "/api/records/", d.Token, nil).Status)
	require.Equal(t, 200, e.send(t, "GET", "/api/records/?limit=1", p.Token, nil).Status) // shows newer only
	require.Equal(t, 200, e.send(t, "GET", "/api/comments/", p.Token, nil).Status)
	require.Equal(t, 200, e.send(t, "GET", "/api/comments/?record="+itoa(rec.ID), d.Token, nil).Status)

	seen := func(id int64) []string {
		r := e.send(t, "GET", "/api/records/"+itoa(id)+"/access-log/", p.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		var out []string
		for _, entry := range r.List(t) {
			if a := entry["action"].(string); a == "record.list" || a == "comment.list" {
				assert.Equal(t, float64(id), entry["record"])
				assert.Equal(t, float64(p.ID), entry["patient"])
				out = append(out, a+" "+entry["actor_role"].(string))
			}
		}
		return out
	}
	assert.ElementsMatch(t, []string{"record.list DOCTOR", "comment.list PATIENT", "comment.list DOCTOR"}, seen(rec.ID))
	assert.ElementsMatch(t, []string{"record.list DOCTOR", "record.list PATIENT"}, seen(newer.ID))
}

// TestAdminAudit_SecurityEvents: sign-ins, registrations, password changes,
// refresh reuse and account changes through the API are on file, with the
// account that acted (null when none exists), and ?action= selects them.
func TestAdminAudit_SecurityEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.mustAdmin(t)
	p := e.mustPatient(t) // registered and signed in
	d := e.mustDoctor(t, false)

	require.Equal(t, 401, e.send(t, "POST", "/api/token/", "", map[string]string{"username": p.Name, "password": "wrong-one"}).Status)
	require.Equal(t, 401, e.send(t, "POST", "/api/token/", "", map[string]string{"username": "nobody", "password": "wrong-one"}).Status)
	require.Equal(t, 200, e.send(t, "POST", "/api/token/refresh/", "", map[string]string{"refresh": p.Refresh}).Status)
	require.Equal(t, 401, e.send(t, "POST", "/api/token/refresh/", "", map[string]string{"refresh": p.Refresh}).Status)
	require.Equal(t, 200, e.send(t, "POST", "/api/admin/users/"+itoa(d.ID)+"/approve/", admin.Token, nil).Status)
	require.Equal(t, 200, e.send(t, "POST", "/api/admin/users/"+itoa(d.ID)+"/deactivate/", admin.Token, nil).Status)
	require.Equal(t, 200, e.send(t, "POST", "/api/admin/users/"+itoa(d.ID)+"/activate/", admin.Token, nil).Status)
	q := e.signedIn(t, e.mustUser(t, "patient", "PATIENT"))
	require.Equal(t, 200, e.send(t, "PUT", "/api/users/me/password/", q.Token,
		map[string]string{"old_password": q.Password, "new_password": "another-Quartz-7741"}).Status)

	type seen struct {
		Actor   any
		Role    any
		Outcome string
	}
	events := func(action string) []seen {
		r := e.send(t, "GET", "/api/admin/audit/?limit=500&action="+action, admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		var out []seen
		for _, en := range r.List(t) {
			require.Equal(t, action, en["action"])
			assert.Nil(t, en["record"])
			assert.Nil(t, en["patient"])
			out = append(out, seen{en["actor"], en["actor_role"], en["outcome"].(string)})
		}
		return out
	}
	id := func(u user) any { return float64(u.ID) }
	signins := events("auth.signin")
	assert.Contains(t, signins, seen{id(p), "PATIENT", "allowed"})
	assert.Contains(t, signins, seen{id(p), "PATIENT", "denied"})
	assert.Contains(t, signins, seen{nil, nil, "denied"}, "an unknown username has no actor")
	assert.Contains(t, signins, seen{id(admin), "ADMIN", "allowed"})
	assert.Equal(t, []seen{{id(p), "PATIENT", "denied"}}, events("auth.refresh_reuse"))
	assert.Equal(t, []seen{{id(q), "PATIENT", "allowed"}}, events("auth.password_change"))
	assert.ElementsMatch(t, []seen{{id(p), "PATIENT", "allowed"}, {id(d), "DOCTOR", "allowed"}, {id(q), "PATIENT", "allowed"}},
		events("user.register"))
	for _, a := range []string{"user.approve", "user.deactivate", "user.activate"} {
		assert.Equal(t, []seen{{id(admin), "ADMIN", "allowed"}}, events(a), a)
	}

	r := e.send(t, "GET", "/api/admin/audit/?action=user.delete", admin.Token, nil)
	assertFields(t, r, map[string][]string{"action": {`"user.delete" is not a valid choice.`}})
}
