package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/httpapi"
	"healthrecord/app"
)

func TestQuota_PerPatient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(_ *httpapi.Config, a *app.Config) { a.QuotaBytes = 1000 })
	p, other := e.mustPatient(t), e.mustPatient(t)
	d := e.mustDoctor(t, true)
	body := func(n int) map[string]any { return map[string]any{"title": "t", "content": strings.Repeat("x", n)} }

	r := e.send(t, "POST", "/api/records/", p.Token, body(600))
	require.Equal(t, http.StatusCreated, r.Status, r.String())
	var rec record
	r.JSON(t, &rec)
	id := rec.ID
	assertDetail(t, e.send(t, "POST", "/api/records/", p.Token, body(500)), http.StatusRequestEntityTooLarge, "Storage quota exceeded.")
	assert.Equal(t, http.StatusCreated, e.send(t, "POST", "/api/records/", other.Token, body(600)).Status, "per patient")

	// Growing a record counts too; shrinking it frees room.
	path := "/api/records/" + itoa(id) + "/"
	assertDetail(t, e.send(t, "PATCH", path, p.Token, map[string]any{"content": strings.Repeat("y", 1200)}),
		http.StatusRequestEntityTooLarge, "Storage quota exceeded.")
	require.Equal(t, http.StatusOK, e.send(t, "PATCH", path, p.Token, map[string]any{"content": "short", "doctor": d.ID}).Status)

	// Comments on a patient's records count against that patient.
	r = e.send(t, "POST", "/api/comments/", d.Token, map[string]any{"record": id, "comment": strings.Repeat("c", 900)})
	require.Equal(t, http.StatusCreated, r.Status, r.String())
	assertDetail(t, e.send(t, "POST", "/api/comments/", d.Token, map[string]any{"record": id, "comment": strings.Repeat("c", 200)}),
		http.StatusRequestEntityTooLarge, "Storage quota exceeded.")
	assertDetail(t, e.send(t, "POST", "/api/records/", p.Token, body(200)), http.StatusRequestEntityTooLarge, "Storage quota exceeded.")

	// Deleting the record gives its bytes, comments included, back.
	require.Equal(t, http.StatusNoContent, e.send(t, "DELETE", path, p.Token, nil).Status)
	assert.Equal(t, http.StatusCreated, e.send(t, "POST", "/api/records/", p.Token, body(900)).Status)
}
