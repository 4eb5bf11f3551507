package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mustReassign has owner give the record to doctor.
func (e *env) mustReassign(t *testing.T, owner user, recordID, doctor int64) {
	t.Helper()
	r := e.send(t, "PATCH", "/api/records/"+itoa(recordID)+"/", owner.Token, map[string]any{"doctor": doctor})
	require.Equal(t, http.StatusOK, r.Status, r.String())
}

// TestComments_FollowTheirRecord: a doctor who is no longer assigned loses
// the record's comments, its own included, everywhere; the newly assigned
// doctor sees them all, nested and by their own URLs.
func TestComments_FollowTheirRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	first, second := e.mustDoctor(t, true), e.mustDoctor(t, true)
	rec := e.mustRecord(t, p, first.ID)
	c := e.mustComment(t, first, rec.ID, "Start on iron.")
	e.mustReassign(t, p, rec.ID, second.ID)
	c2 := e.mustComment(t, second, rec.ID, "Iron levels fine.")

	comPath := "/api/comments/" + itoa(c.ID) + "/"
	assertDetail(t, e.send(t, "GET", comPath, first.Token, nil), 404, "Not found.")
	assertDetail(t, e.send(t, "GET", "/api/comments/"+itoa(c2.ID)+"/", first.Token, nil), 404, "Not found.")
	for _, path := range []string{"/api/comments/", "/api/comments/?record=" + itoa(rec.ID)} {
		r := e.send(t, "GET", path, first.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		assert.Equal(t, "[]", string(r.Body), path)
	}
	// A filter on a record the caller cannot see answers as for one that
	// does not exist.
	assert.Equal(t, "[]", string(e.send(t, "GET", "/api/comments/?record=999999", first.Token, nil).Body))

	for _, u := range []user{p, second} {
		r := e.send(t, "GET", comPath, u.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		assert.Equal(t, "Start on iron.", r.Map(t)["comment"])
		for _, path := range []string{"/api/comments/", "/api/comments/?record=" + itoa(rec.ID)} {
			r := e.send(t, "GET", path, u.Token, nil)
			require.Equal(t, 200, r.Status, r.String())
			assert.Len(t, r.List(t), 2, path)
		}
		var got record
		r = e.send(t, "GET", "/api/records/"+itoa(rec.ID)+"/", u.Token, nil)
		r.JSON(t, &got)
		assert.Len(t, got.Comments, 2)
	}

	// Assigned back: the first doctor sees them all again.
	e.mustReassign(t, p, rec.ID, first.ID)
	assert.Equal(t, 200, e.send(t, "GET", comPath, first.Token, nil).Status)
	assert.Len(t, e.send(t, "GET", "/api/comments/", first.Token, nil).List(t), 2)
	assertDetail(t, e.send(t, "GET", comPath, second.Token, nil), 404, "Not found.")
}
