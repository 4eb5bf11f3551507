package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// The original Django project's two tests, ported.
func TestOriginal_PatientCanCreateRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	r := e.send(t, "POST", "/api/records/", p.Token, map[string]any{"title": "Checkup", "content": "Healthy"})
	assert.Equal(t, http.StatusCreated, r.Status, r.String())
}

func TestOriginal_DoctorCannotCreateRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.mustDoctor(t, true)
	r := e.send(t, "POST", "/api/records/", d.Token, map[string]any{"title": "Checkup", "content": "Healthy"})
	assertDetail(t, r, http.StatusForbidden, "Only patients can create health records.")
}

func TestRecords_CRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	d1 := e.mustDoctor(t, true)
	d2 := e.mustDoctor(t, true)
	unapproved := e.mustDoctor(t, false)

	r := e.send(t, "POST", "/api/records/", p.Token, map[string]any{"title": "Checkup", "content": "Healthy"})
	require.Equal(t, 201, r.Status, r.String())
	m := r.Map(t)
	assert.Equal(t, []string{"comments", "content", "created_at", "doctor", "id", "patient", "title", "updated_at"}, keys(m))
	assert.Nil(t, m["doctor"])
	assert.Equal(t, []any{}, m["comments"])
	assert.Equal(t, float64(p.ID), m["patient"])
	created, err := time.Parse(time.RFC3339Nano, m["created_at"].(string))
	require.NoError(t, err)
	assert.Equal(t, time.UTC, created.Location())
	assert.True(t, strings.HasSuffix(m["created_at"].(string), "Z"))
	id := itoa(int64(m["id"].(float64)))
	path := "/api/records/" + id + "/"

	t.Run("read it back and PUT it as read", func(t *testing.T) {
		r := e.send(t, "GET", path, p.Token, nil)
		require.Equal(t, 200, r.Status)
		read := string(r.Body)
		r = e.send(t, "PUT", path, p.Token, read)
		require.Equal(t, 200, r.Status, r.String())
		var before, after record
		require.NoError(t, jsonUnmarshal(read, &before))
		r.JSON(t, &after)
		assert.Equal(t, before.ID, after.ID)
		assert.Equal(t, before.Title, after.Title)
		assert.Equal(t, before.CreatedAt, after.CreatedAt)
	})
	t.Run("read-only fields are ignored", func(t *testing.T) {
		r := e.send(t, "PATCH", path, p.Token, map[string]any{"id": 999, "patient": d1.ID, "created_at": "2000-01-01T00:00:00Z", "comments": []any{1}, "title": "Renamed"})
		require.Equal(t, 200, r.Status, r.String())
		got := e.stored(t, mustID(t, id))
		assert.Equal(t, p.ID, got.PatientID)
		assert.Equal(t, "Renamed", got.Title)
		assert.Equal(t, "Healthy", got.Content)
	})
	t.Run("assign, reassign, unassign", func(t *testing.T) {
		r := e.send(t, "PATCH", path, p.Token, map[string]any{"doctor": d1.ID})
		require.Equal(t, 200, r.Status, r.String())
		assert.Equal(t, float64(d1.ID), r.Map(t)["doctor"])
		r = e.send(t, "PUT", path, p.Token, map[string]any{"title": "T", "content": "C", "doctor": d2.ID})
		require.Equal(t, 200, r.Status, r.String())
		assert.Equal(t, float64(d2.ID), r.Map(t)["doctor"])
		r = e.send(t, "PUT", path, p.Token, map[string]any{"title": "T", "content": "C"})
		require.Equal(t, 200, r.Status, r.String())
		assert.Equal(t, float64(d2.ID), r.Map(t)["doctor"], "a PUT without doctor leaves it")
		r = e.send(t, "PATCH", path, p.Token, `{"doctor": null}`)
		require.Equal(t, 200, r.Status, r.String())
		assert.Nil(t, r.Map(t)["doctor"])
		assert.Equal(t, int64(0), e.stored(t, mustID(t, id)).DoctorID)

		events, err := e.db.Outbox().List(context.Background(), ports.OutboxFilter{}, domain.Page{Limit: 10})
		require.NoError(t, err)
		assert.Len(t, events, 2, "one event per newly assigned doctor")
	})
	t.Run("doctor must be approved, active, a doctor", func(t *testing.T) {
		for _, bad := range []int64{unapproved.ID, p.ID, 999999} {
			assertFields(t, e.send(t, "PATCH", path, p.Token, map[string]any{"doctor": bad}),
				map[string][]string{"doctor": {fmt.Sprintf("Invalid pk \"%d\" - object does not exist.", bad)}})
		}
		assertFields(t, e.send(t, "POST", "/api/records/", p.Token, map[string]any{"title": "x", "content": "y", "doctor": unapproved.ID}),
			map[string][]string{"doctor": {fmt.Sprintf("Invalid pk \"%d\" - object does not exist.", unapproved.ID)}})
	})
	t.Run("delete", func(t *testing.T) {
		r := e.send(t, "DELETE", path, p.Token, nil)
		require.Equal(t, 204, r.Status, r.String())
		assert.Empty(t, r.Body)
		assertDetail(t, e.send(t, "GET", path, p.Token, nil), 404, "Not found.")
		assertDetail(t, e.send(t, "DELETE", path, p.Token, nil), 404, "Not found.")
	})
}

func TestRecords_Validation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	rec := e.mustRecord(t, p, 0)
	path := "/api/records/" + itoa(rec.ID) + "/"

	tests := []struct {
		name, method, body string
		fields             map[string][]string
	}{
		{"empty body is {}", "POST", "", map[string][]string{"title": {domain.MsgRequired}, "content": {domain.MsgRequired}}},
		{"missing fields", "POST", `{}`, map[string][]string{"title": {domain.MsgRequired}, "content": {domain.MsgRequired}}},
		{"PUT needs both", "PUT", `{"title": "x"}`, map[string][]string{"content": {domain.MsgRequired}}},
		{"blank", "POST", `{"title": "  ", "content": "c"}`, map[string][]string{"title": {domain.MsgBlank}}},
		{"too long", "POST", `{"title": "` + strings.Repeat("é", 101) + `", "content": "c"}`,
			map[string][]string{"title": {"Ensure this field has no more than 100 characters."}}},
		{"null character", "PATCH", `{"content": "a\u0000b"}`, map[string][]string{"content": {domain.MsgNullChars}}},
		{"null title", "PATCH", `{"title": null}`, map[string][]string{"title": {"This field may not be null."}}},
		{"number title", "PATCH", `{"title": 12}`, map[string][]string{"title": {"Not a valid string."}}},
		{"doctor as string", "PATCH", `{"doctor": "3"}`, map[string][]string{"doctor": {"Incorrect type. Expected pk value, received str."}}},
		{"unknown field", "PATCH", `{"title": "x", "owner": 1}`, map[string][]string{"owner": {"Unknown field."}}},
		{"not an object", "POST", `["title"]`, map[string][]string{"non_field_errors": {"Invalid data. Expected a dictionary, but got list."}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := path
			if tt.method == "POST" {
				target = "/api/records/"
			}
			assertFields(t, e.send(t, tt.method, target, p.Token, tt.body), tt.fields)
		})
	}
	t.Run("limits count characters, not bytes", func(t *testing.T) {
		r := e.send(t, "PATCH", path, p.Token, map[string]string{"title": strings.Repeat("é", 100)})
		require.Equal(t, 200, r.Status, r.String())
	})
	t.Run("malformed JSON", func(t *testing.T) {
		for _, body := range []string{`{"title": `, `{"title": "a"} {}`, `{"title": "a", "title": "b"}`, "{'title': 'a'}"} {
			r := e.send(t, "PATCH", path, p.Token, body)
			require.Equal(t, 400, r.Status, body)
			assert.Regexp(t, `^JSON parse error - `, r.Map(t)["detail"], body)
		}
	})
	t.Run("content type", func(t *testing.T) {
		r := e.send(t, "PATCH", path, p.Token, `{"title": "x"}`, "Content-Type", "text/plain")
		assertDetail(t, r, 415, `Unsupported media type "text/plain" in request.`)
		r = e.send(t, "PATCH", path, p.Token, `{"title": "x"}`, "Content-Type", "application/x-www-form-urlencoded")
		assert.Equal(t, 415, r.Status)
		r = e.send(t, "PATCH", path, p.Token, `{"title": "charset"}`, "Content-Type", "application/json; charset=utf-8")
		assert.Equal(t, 200, r.Status, r.String())
	})
	t.Run("body too large", func(t *testing.T) {
		big := `{"content": "` + strings.Repeat("a", 1<<20) + `"}`
		r := e.send(t, "PATCH", path, p.Token, big)
		require.Equal(t, 413, r.Status, "%d", r.Status)
		assert.Contains(t, r.Map(t)["detail"], "larger than")
	})
	assert.Equal(t, rec.Content, e.stored(t, rec.ID).Content, "no refused change was stored")
}

func TestPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	var ids []int64
	for range 7 {
		ids = append([]int64{e.mustRecord(t, p, 0).ID}, ids...) // newest first
	}

	var got []int64
	next := "/api/records/?limit=3"
	pages := 0
	for next != "" {
		r := e.send(t, "GET", next, p.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		pages++
		var recs []record
		r.JSON(t, &recs)
		for _, rec := range recs {
			got = append(got, rec.ID)
		}
		next = ""
		if link := r.Header.Get("Link"); link != "" {
			m := regexp.MustCompile(`^<(http://[^>]+)>; rel="next"$`).FindStringSubmatch(link)
			require.NotNil(t, m, link)
			u, err := url.Parse(m[1])
			require.NoError(t, err)
			assert.Equal(t, strings.TrimPrefix(e.srv.URL, "http://"), u.Host)
			assert.Equal(t, "/api/records/", u.Path)
			assert.Equal(t, "3", u.Query().Get("limit"), "the other parameters are kept")
			next = u.RequestURI()
		}
	}
	assert.Equal(t, 3, pages)
	assert.Equal(t, ids, got)

	r := e.send(t, "GET", "/api/records/?limit=7", p.Token, nil)
	assert.Empty(t, r.Header.Get("Link"), "no next page")
	assert.Len(t, r.List(t), 7)

	for q, fields := range map[string]map[string][]string{
		"limit=x":      {"limit": {"A valid integer is required."}},
		"limit=0":      {"limit": {"Ensure this value is greater than or equal to 1."}},
		"cursor=bogus": {"cursor": {"Invalid cursor."}},
	} {
		assertFields(t, e.send(t, "GET", "/api/records/?"+q, p.Token, nil), fields)
	}

	t.Run("limit is clamped to 500", func(t *testing.T) {
		require.NoError(t, e.db.WithinTx(context.Background(), func(tx ports.Repos) error {
			for i := range 501 {
				r := domain.Record{PatientID: p.ID, Title: "bulk", Content: "bulk", CreatedAt: time.Now().UTC().Add(-time.Duration(i+1) * time.Hour)}
				r.UpdatedAt = r.CreatedAt
				if err := tx.Records().Create(context.Background(), &r); err != nil {
					return err
				}
			}
			return nil
		}))
		r := e.send(t, "GET", "/api/records/?limit=100000", p.Token, nil)
		require.Equal(t, 200, r.Status)
		assert.Len(t, r.List(t), 500)
		assert.Contains(t, r.Header.Get("Link"), `rel="next"`)
		r = e.send(t, "GET", "/api/records/", p.Token, nil)
		assert.Len(t, r.List(t), 50, "default page size")
	})
}

func TestComments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	d := e.mustDoctor(t, true)
	other := e.mustDoctor(t, true)
	r1 := e.mustRecord(t, p, d.ID)
	r2 := e.mustRecord(t, p, d.ID)

	r := e.send(t, "POST", "/api/comments/", d.Token, map[string]any{"record": r1.ID, "comment": "Rest.", "id": 5, "doctor": other.ID})
	require.Equal(t, 201, r.Status, r.String())
	m := r.Map(t)
	assert.Equal(t, []string{"comment", "created_at", "doctor", "id", "record"}, keys(m))
	assert.Equal(t, float64(d.ID), m["doctor"], "doctor is read-only: the author")
	c1 := int64(m["id"].(float64))
	e.mustComment(t, d, r2.ID, "Drink water.")

	rec := e.send(t, "GET", "/api/records/"+itoa(r1.ID)+"/", p.Token, nil)
	var got record
	rec.JSON(t, &got)
	require.Len(t, got.Comments, 1)
	assert.Equal(t, "Rest.", got.Comments[0].Comment)

	t.Run("refusals", func(t *testing.T) {
		assertDetail(t, e.send(t, "POST", "/api/comments/", p.Token, map[string]any{"record": r1.ID, "comment": "x"}),
			403, "Only doctors can comment on health records.")
		assertFields(t, e.send(t, "POST", "/api/comments/", other.Token, map[string]any{"record": r1.ID, "comment": "x"}),
			map[string][]string{"record": {fmt.Sprintf("Invalid pk \"%d\" - object does not exist.", r1.ID)}})
		assertFields(t, e.send(t, "POST", "/api/comments/", d.Token, map[string]any{"record": 999999, "comment": "x"}),
			map[string][]string{"record": {`Invalid pk "999999" - object does not exist.`}})
		assertFields(t, e.send(t, "POST", "/api/comments/", d.Token, map[string]any{"record": r1.ID}),
			map[string][]string{"comment": {domain.MsgRequired}})
		assertFields(t, e.send(t, "POST", "/api/comments/", d.Token, map[string]any{"record": r1.ID, "comment": strings.Repeat("x", 10001)}),
			map[string][]string{"comment": {"Ensure this field has no more than 10000 characters."}})
		assertFields(t, e.send(t, "POST", "/api/comments/", d.Token, map[string]any{"comment": "x"}),
			map[string][]string{"record": {domain.MsgRequired}})
		assertFields(t, e.send(t, "POST", "/api/comments/", d.Token, map[string]any{"record": r1.ID, "comment": "x", "edited": true}),
			map[string][]string{"edited": {"Unknown field."}})
		assert.Len(t, e.stored(t, r1.ID).Comments, 1)
	})
	t.Run("list and filter", func(t *testing.T) {
		for _, u := range []user{p, d} {
			r := e.send(t, "GET", "/api/comments/", u.Token, nil)
			require.Equal(t, 200, r.Status, r.String())
			assert.Len(t, r.List(t), 2)
			r = e.send(t, "GET", "/api/comments/?record="+itoa(r1.ID), u.Token, nil)
			require.Equal(t, 200, r.Status, r.String())
			l := r.List(t)
			require.Len(t, l, 1)
			assert.Equal(t, float64(r1.ID), l[0]["record"])
		}
		r := e.send(t, "GET", "/api/comments/", other.Token, nil)
		assert.Equal(t, "[]", string(r.Body))
		assertFields(t, e.send(t, "GET", "/api/comments/?record=abc", p.Token, nil),
			map[string][]string{"record": {"A valid integer is required."}})
	})
	t.Run("retrieve", func(t *testing.T) {
		path := "/api/comments/" + itoa(c1) + "/"
		for _, u := range []user{p, d} {
			r := e.send(t, "GET", path, u.Token, nil)
			require.Equal(t, 200, r.Status, r.String())
			assert.Equal(t, "Rest.", r.Map(t)["comment"])
		}
		assertDetail(t, e.send(t, "GET", path, other.Token, nil), 404, "Not found.")
		assertDetail(t, e.send(t, "GET", "/api/comments/999999/", d.Token, nil), 404, "Not found.")
	})
}

func TestNotifications(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p := e.mustPatient(t)
	d := e.mustDoctor(t, true)
	r := e.send(t, "GET", "/api/notifications/", d.Token, nil)
	require.Equal(t, 200, r.Status)
	assert.Equal(t, "[]", string(r.Body), "nothing delivered yet: an empty array, not null")

	// The notification commits with the assignment: the dispatcher finds
	// nothing left to deliver.
	rec := e.mustRecord(t, p, d.ID)
	delivered, err := e.app.DeliverNotifications(ctx, "test", 10)
	require.NoError(t, err)
	require.Zero(t, delivered)

	r = e.send(t, "GET", "/api/notifications/", d.Token, nil)
	require.Equal(t, 200, r.Status)
	l := r.List(t)
	require.Len(t, l, 1)
	n := l[0]
	assert.Equal(t, []string{"created_at", "id", "kind", "patient", "read_at", "record"}, keys(n))
	assert.Equal(t, "doctor_assigned", n["kind"])
	assert.Equal(t, float64(rec.ID), n["record"])
	assert.Equal(t, float64(p.ID), n["patient"])
	assert.Nil(t, n["read_at"])
	path := "/api/notifications/" + itoa(int64(n["id"].(float64))) + "/read/"

	assertDetail(t, e.send(t, "POST", path, p.Token, nil), 404, "Not found.")
	r = e.send(t, "POST", path, d.Token, nil)
	require.Equal(t, 200, r.Status, r.String())
	assert.NotNil(t, r.Map(t)["read_at"])
	assert.Equal(t, "[]", string(e.send(t, "GET", "/api/notifications/", p.Token, nil).Body))
}

func TestAccessLogEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	d := e.mustDoctor(t, true)
	stranger := e.mustPatient(t)
	rec := e.mustRecord(t, p, d.ID)
	path := "/api/records/" + itoa(rec.ID) + "/"
	require.Equal(t, 200, e.send(t, "GET", path, d.Token, nil).Status)
	require.Equal(t, 404, e.send(t, "GET", path, stranger.Token, nil).Status)

	r := e.send(t, "GET", path+"access-log/", p.Token, nil)
	require.Equal(t, 200, r.Status, r.String())
	l := r.List(t)
	require.Len(t, l, 3)
	assert.Equal(t, []string{"action", "actor", "actor_role", "at", "id", "outcome", "patient", "record", "remote_addr", "request_id"}, keys(l[0]))
	var seen []string
	for _, entry := range l {
		seen = append(seen, fmt.Sprintf("%v %v %v", entry["action"], entry["actor_role"], entry["outcome"]))
		assert.Equal(t, float64(rec.ID), entry["record"])
		assert.Equal(t, float64(p.ID), entry["patient"])
	}
	assert.ElementsMatch(t, []string{"record.create PATIENT allowed", "record.read DOCTOR allowed", "record.read PATIENT denied"}, seen)

	assertDetail(t, e.send(t, "GET", path+"access-log/", d.Token, nil), 403, domain.MsgOnlyOwnerAccessLog)
	assertDetail(t, e.send(t, "GET", path+"access-log/", stranger.Token, nil), 404, "Not found.")
}

// TestConcurrentCreates: 50 clients creating assigned records at once on
// one SQLite file all succeed, each with its outbox event.
func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.mustPatient(t)
	d := e.mustDoctor(t, true)
	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, err := http.NewRequest("POST", e.srv.URL+"/api/records/",
				strings.NewReader(fmt.Sprintf(`{"title": "t%d", "content": "c", "doctor": %d}`, i, d.ID)))
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+p.Token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			res.Body.Close()
			statuses[i] = res.StatusCode
		})
	}
	wg.Wait()
	for i, s := range statuses {
		assert.Equal(t, 201, s, "request %d", i)
	}
	ctx := context.Background()
	recs, err := e.db.Records().List(ctx, ports.RecordFilter{PatientID: p.ID}, domain.Page{Limit: 100})
	require.NoError(t, err)
	assert.Len(t, recs, n)
	events, err := e.db.Outbox().List(ctx, ports.OutboxFilter{}, domain.Page{Limit: 100})
	require.NoError(t, err)
	assert.Len(t, events, n)
}
