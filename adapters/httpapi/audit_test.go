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
