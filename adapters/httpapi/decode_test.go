package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

func TestErrorResponse_MapsWrappedErrors(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("layer two: %w", fmt.Errorf("layer one: %w", err)) }
	tests := []struct {
		name       string
		err        error
		status     int
		body       any
		header     map[string]string
		internal   bool
		wrapToo    bool
		skipHeader bool
	}{
		{name: "field errors", err: domain.FieldError("title", domain.MsgRequired), status: 400,
			body: map[string][]string{"title": {domain.MsgRequired}}, wrapToo: true},
		{name: "invalid without fields", err: domain.Errorf(domain.EInvalid, "Only doctors need approval."), status: 400,
			body: detail("Only doctors need approval."), wrapToo: true},
		{name: "unauthorized with reason", err: domain.TokenNotValid(), status: 401,
			body:   map[string]any{"detail": domain.MsgTokenNotValid, "code": "token_not_valid"},
			header: map[string]string{"WWW-Authenticate": `Bearer realm="api"`}, wrapToo: true},
		{name: "unauthorized without reason", err: errNoCredentials, status: 401,
			body: detail(msgNoCredentials), header: map[string]string{"WWW-Authenticate": `Bearer realm="api"`}},
		{name: "forbidden", err: domain.Forbidden(domain.MsgOnlyPatientsCreate), status: 403,
			body: detail(domain.MsgOnlyPatientsCreate), wrapToo: true},
		{name: "forbidden default text", err: &domain.Error{Code: domain.EForbidden}, status: 403,
			body: detail(domain.MsgNoPermission)},
		{name: "not found", err: domain.NotFound(), status: 404, body: detail("Not found."), wrapToo: true},
		{name: "conflict", err: domain.Errorf(domain.EConflict, "The event is not dead."), status: 409,
			body: detail("The event is not dead."), wrapToo: true},
		{name: "throttled rounds up", err: domain.Throttled(1500 * time.Millisecond), status: 429,
			body:   detail("Request was throttled. Expected available in 2 seconds."),
			header: map[string]string{"Retry-After": "2"}, wrapToo: true},
		{name: "throttled under a nanosecond", err: domain.Throttled(time.Nanosecond), status: 429,
			body:   detail("Request was throttled. Expected available in 1 second."),
			header: map[string]string{"Retry-After": "1"}},
		{name: "throttled one second", err: domain.Throttled(time.Second), status: 429,
			body:   detail("Request was throttled. Expected available in 1 second."),
			header: map[string]string{"Retry-After": "1"}},
		{name: "throttled fifteen minutes", err: domain.Throttled(15 * time.Minute), status: 429,
			body:   detail("Request was throttled. Expected available in 900 seconds."),
			header: map[string]string{"Retry-After": "900"}},
		{name: "internal code", err: domain.Errorf(domain.EInternal, "disk on fire"), status: 500,
			body: detail(msgServerError), internal: true, wrapToo: true},
		{name: "not implemented", err: domain.Errorf(domain.Code("unheard_of"), "nope"), status: 500,
			body: detail(msgServerError), internal: true},
		{name: "plain error", err: errors.New("sql: database is closed"), status: 500,
			body: detail(msgServerError), internal: true, wrapToo: true},
		{name: "http error", err: &httpError{status: 415, body: detail("x")}, status: 415, body: detail("x"), wrapToo: true},
	}
	for _, tt := range tests {
		errs := map[string]error{"plain": tt.err}
		if tt.wrapToo {
			errs["wrapped"] = wrap(tt.err)
		}
		for form, err := range errs {
			t.Run(tt.name+"/"+form, func(t *testing.T) {
				got := errorResponse(err)
				assert.Equal(t, tt.status, got.status)
				assert.Equal(t, tt.internal, got.internal)
				assert.EqualValues(t, tt.body, got.body)
				for k, v := range tt.header {
					assert.Equal(t, v, got.header[k], k)
				}
			})
		}
	}
}

func TestParseObject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		status int    // 0: parses
		detail string // substring of the detail, or the non-field message
	}{
		{name: "empty is {}", body: ""},
		{name: "object", body: ` {"a": 1, "b": {"c": [1, 2]}} `},
		{name: "malformed", body: `{"a": `, status: 400, detail: "JSON parse error - "},
		{name: "trailing object", body: `{"a": 1}{"b": 2}`, status: 400, detail: "JSON parse error - "},
		{name: "trailing garbage", body: `{"a": 1} x`, status: 400, detail: "JSON parse error - "},
		{name: "duplicate key", body: `{"a": 1, "a": 2}`, status: 400, detail: `JSON parse error - duplicate key "a"`},
		{name: "escaped duplicate key", body: `{"a": 1, "\u0061": 2}`, status: 400, detail: `duplicate key "a"`},
		{name: "whitespace only", body: "  \n", status: 400, detail: "JSON parse error - "},
		{name: "invalid utf-8", body: "{\"a\": \"\xff\"}", status: 400, detail: "JSON parse error - invalid UTF-8"},
		{name: "list", body: `[1]`, status: 400, detail: "Invalid data. Expected a dictionary, but got list."},
		{name: "string", body: `"x"`, status: 400, detail: "Invalid data. Expected a dictionary, but got str."},
		{name: "int", body: `12`, status: 400, detail: "Invalid data. Expected a dictionary, but got int."},
		{name: "float", body: `1.5`, status: 400, detail: "Invalid data. Expected a dictionary, but got float."},
		{name: "bool", body: `true`, status: 400, detail: "Invalid data. Expected a dictionary, but got bool."},
		{name: "null", body: `null`, status: 400, detail: "Invalid data. Expected a dictionary, but got NoneType."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseObject([]byte(tt.body))
			if tt.status == 0 {
				require.NoError(t, err)
				require.NotNil(t, o)
				return
			}
			resp := errorResponse(err)
			assert.Equal(t, tt.status, resp.status)
			assert.Contains(t, fmt.Sprint(resp.body), tt.detail)
		})
	}
}

func TestRecordChange(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	tests := []struct {
		name   string
		body   string
		full   bool
		want   domain.RecordChange
		fields map[string][]string
	}{
		{name: "full", full: true, body: `{"title": "T", "content": "C", "doctor": 7}`,
			want: domain.RecordChange{Title: str("T"), Content: str("C"), SetDoctor: true, DoctorID: 7}},
		{name: "null doctor unassigns", body: `{"doctor": null}`, want: domain.RecordChange{SetDoctor: true}},
		{name: "absent doctor leaves it", body: `{"title": "x"}`, want: domain.RecordChange{Title: str("x")}},
		{name: "read-only fields ignored", full: true,
			body: `{"id": 3, "patient": 9, "comments": [], "created_at": "x", "updated_at": null, "title": "T", "content": "C", "doctor": null}`,
			want: domain.RecordChange{Title: str("T"), Content: str("C"), SetDoctor: true}},
		{name: "unknown field", body: `{"title": "x", "secret": 1}`, fields: map[string][]string{"secret": {"Unknown field."}}},
		{name: "title not a string and content missing", full: true, body: `{"title": 5}`,
			fields: map[string][]string{"title": {msgNotString}, "content": {domain.MsgRequired}}},
		{name: "title null", body: `{"title": null}`, fields: map[string][]string{"title": {msgNull}}},
		{name: "content object", body: `{"content": {"a": 1}}`, fields: map[string][]string{"content": {msgNotString}}},
		{name: "doctor string", body: `{"doctor": "7"}`,
			fields: map[string][]string{"doctor": {"Incorrect type. Expected pk value, received str."}}},
		{name: "doctor bool", body: `{"doctor": true}`,
			fields: map[string][]string{"doctor": {"Incorrect type. Expected pk value, received bool."}}},
		{name: "doctor float", body: `{"doctor": 7.0}`,
			fields: map[string][]string{"doctor": {"Incorrect type. Expected pk value, received float."}}},
		{name: "doctor list", body: `{"doctor": [7]}`,
			fields: map[string][]string{"doctor": {"Incorrect type. Expected pk value, received list."}}},
		{name: "doctor zero", body: `{"doctor": 0}`,
			fields: map[string][]string{"doctor": {`Invalid pk "0" - object does not exist.`}}},
		{name: "doctor negative", body: `{"doctor": -4}`,
			fields: map[string][]string{"doctor": {`Invalid pk "-4" - object does not exist.`}}},
		{name: "doctor overflow", body: `{"doctor": 123456789012345678901234}`,
			fields: map[string][]string{"doctor": {`Invalid pk "123456789012345678901234" - object does not exist.`}}},
		{name: "type error merged with domain message", body: `{"title": "", "doctor": "x"}`,
			fields: map[string][]string{"doctor": {"Incorrect type. Expected pk value, received str."}, "title": {domain.MsgBlank}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseObject([]byte(tt.body))
			require.NoError(t, err)
			c, err := recordChange(o, tt.full)
			if tt.fields != nil {
				resp := errorResponse(err)
				require.Equal(t, 400, resp.status, "%v", err)
				assert.EqualValues(t, tt.fields, resp.body)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, c)
		})
	}
}

func TestOtherDecoders(t *testing.T) {
	t.Parallel()
	parse := func(t *testing.T, body string) *object {
		o, err := parseObject([]byte(body))
		require.NoError(t, err)
		return o
	}
	fieldsOf := func(t *testing.T, err error) any {
		resp := errorResponse(err)
		require.Equal(t, 400, resp.status, "%v", err)
		return resp.body
	}
	t.Run("comment", func(t *testing.T) {
		in, err := commentFrom(parse(t, `{"record": 4, "comment": "ok", "id": 1, "doctor": 2, "created_at": "x"}`))
		require.NoError(t, err)
		assert.Equal(t, int64(4), in.RecordID)
		assert.Equal(t, "ok", *in.Text)

		_, err = commentFrom(parse(t, `{}`))
		assert.EqualValues(t, map[string][]string{"record": {domain.MsgRequired}, "comment": {domain.MsgRequired}}, fieldsOf(t, err))
		_, err = commentFrom(parse(t, `{"record": "4", "comment": 5}`))
		assert.EqualValues(t, map[string][]string{
			"record": {"Incorrect type. Expected pk value, received str."}, "comment": {msgNotString},
		}, fieldsOf(t, err))
		_, err = commentFrom(parse(t, `{"record": null, "comment": "x"}`))
		assert.EqualValues(t, map[string][]string{"record": {msgNull}}, fieldsOf(t, err))
	})
	t.Run("registration", func(t *testing.T) {
		reg, err := registrationFrom(parse(t, `{"username": "ann", "email": "a@example.com", "password": "pw", "role": "DOCTOR", "approved": true, "id": 9}`))
		require.NoError(t, err)
		assert.Equal(t, domain.Registration{Username: "ann", Email: "a@example.com", Password: "pw", Role: domain.RoleDoctor}, reg)

		_, err = registrationFrom(parse(t, `{"username": "ann", "email": "a@example.com", "password": "correct horse battery"}`))
		assert.EqualValues(t, map[string][]string{"role": {domain.MsgRequired}}, fieldsOf(t, err))
		_, err = registrationFrom(parse(t, `{"username": 1, "email": "nope", "password": "x", "role": "PATIENT", "admin": true}`))
		body := fieldsOf(t, err).(map[string][]string)
		assert.Equal(t, []string{msgNotString}, body["username"])
		assert.Equal(t, []string{"Enter a valid email address."}, body["email"])
		assert.Equal(t, []string{"Unknown field."}, body["admin"])
		assert.NotEmpty(t, body["password"])
	})
	t.Run("strings", func(t *testing.T) {
		got, err := stringsFrom(parse(t, `{"username": "u", "password": "p"}`), "username", "password")
		require.NoError(t, err)
		assert.Equal(t, []string{"u", "p"}, got)
		_, err = stringsFrom(parse(t, `{"username": "", "extra": 1}`), "username", "password")
		assert.EqualValues(t, map[string][]string{
			"username": {domain.MsgBlank}, "password": {domain.MsgRequired}, "extra": {"Unknown field."},
		}, fieldsOf(t, err))
	})
}

func TestReadBody(t *testing.T) {
	t.Parallel()
	s := newServer(nil, Config{MaxBodyBytes: 64}, nil)
	tests := []struct {
		name, ctype, body string
		chunked           bool
		status            int
		detail            string
	}{
		{name: "json", ctype: "application/json", body: `{}`},
		{name: "json with charset", ctype: "application/json; charset=UTF-8", body: `{}`},
		{name: "empty body needs no type", body: ``},
		{name: "text", ctype: "text/plain", body: `{}`, status: 415, detail: `Unsupported media type "text/plain" in request.`},
		{name: "missing type", body: `{}`, status: 415, detail: `Unsupported media type "" in request.`},
		{name: "latin-1", ctype: "application/json; charset=latin-1", body: `{}`, status: 415},
		{name: "chunked without type", body: `{}`, chunked: true, status: 415},
		{name: "too large", ctype: "application/json", body: `{"a": "` + strings.Repeat("x", 100) + `"}`, status: 413},
		{name: "too large chunked", ctype: "application/json", chunked: true, body: `{"a": "` + strings.Repeat("x", 100) + `"}`, status: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/api/records/", strings.NewReader(tt.body))
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			if tt.chunked {
				r.ContentLength = -1
			}
			_, err := s.decodeJSON(httptest.NewRecorder(), r)
			if tt.status == 0 {
				require.NoError(t, err)
				return
			}
			resp := errorResponse(err)
			assert.Equal(t, tt.status, resp.status)
			if tt.detail != "" {
				assert.Equal(t, detail(tt.detail), resp.body)
			}
		})
	}
}

func TestQuery(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.UTC)
	good := encodeCursor(domain.Cursor{CreatedAt: at, ID: 42})
	tests := []struct {
		query  string
		limit  int
		after  *domain.Cursor
		fields map[string][]string
	}{
		{query: "", limit: 50},
		{query: "limit=7", limit: 7},
		{query: "limit=500", limit: 500},
		{query: "limit=501", limit: 500},
		{query: "limit=99999999999999999999999", limit: 500},
		{query: "limit=abc", fields: map[string][]string{"limit": {"A valid integer is required."}}},
		{query: "limit=1.5", fields: map[string][]string{"limit": {"A valid integer is required."}}},
		{query: "limit=0", fields: map[string][]string{"limit": {"Ensure this value is greater than or equal to 1."}}},
		{query: "limit=-3", fields: map[string][]string{"limit": {"Ensure this value is greater than or equal to 1."}}},
		{query: "cursor=" + good, limit: 50, after: &domain.Cursor{CreatedAt: at, ID: 42}},
		{query: "cursor=!!!", fields: map[string][]string{"cursor": {"Invalid cursor."}}},
		{query: "cursor=bm9wZQ", fields: map[string][]string{"cursor": {"Invalid cursor."}}}, // "nope"
		{query: "limit=x&cursor=bm9wZQ", fields: map[string][]string{
			"limit": {"A valid integer is required."}, "cursor": {"Invalid cursor."}}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q := newQuery(httptest.NewRequest(http.MethodGet, "/api/records/?"+tt.query, nil))
			p := q.page()
			if tt.fields != nil {
				assert.EqualValues(t, tt.fields, errorResponse(q.err()).body)
				return
			}
			require.NoError(t, q.err())
			assert.Equal(t, tt.limit, p.Limit)
			assert.Equal(t, tt.after, p.After)
		})
	}
}

func TestCanonicalPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                  "/",
		"/":                 "/",
		"/api/records":      "/api/records/",
		"/api/records/":     "/api/records/",
		"/api/records/5":    "/api/records/5/",
		"/healthz":          "/healthz",
		"/healthz/":         "/healthz",
		"/api/openapi.json": "/api/openapi.json",
		"/admin":            "/admin/",
		"/admin/admin.js":   "/admin/admin.js",
		"/admin/admin.js/":  "/admin/admin.js",
		"/api/docs/x.css":   "/api/docs/x.css",
		"/api/docs/*":       "/api/docs/*",
		"/api/records/5.js": "/api/records/5.js/",
	} {
		assert.Equal(t, want, canonicalPath(in), in)
	}
}

// fuzzDecoder feeds a body through the one body reader and a request
// decoder: whatever the bytes, the answer is success or a 4xx.
func fuzzDecoder(f *testing.F, decode func(s *server, w http.ResponseWriter, r *http.Request) error) {
	for _, seed := range []string{``, `{}`, `{"title": "t", "content": "c", "doctor": 1}`, `[`, `{"a":1,"a":2}`, `null`,
		`{"record": 1, "comment": "x"}`, `{"username": "u", "email": "e@x.io", "password": "p", "role": "PATIENT"}`} {
		f.Add([]byte(seed), true)
	}
	s := newServer(nil, Config{MaxBodyBytes: 4096}, nil)
	f.Fuzz(func(t *testing.T, body []byte, jsonType bool) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
		if jsonType {
			r.Header.Set("Content-Type", "application/json")
		}
		err := decode(s, httptest.NewRecorder(), r)
		if err == nil {
			return
		}
		if st := errorResponse(err).status; st < 400 || st > 499 {
			t.Fatalf("status %d for %q: %v", st, body, err)
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	fuzzDecoder(f, func(s *server, w http.ResponseWriter, r *http.Request) error {
		c, err := s.decodeRecordChange(w, r, false)
		if err == nil && c.SetDoctor && c.DoctorID < 0 {
			return errors.New("negative doctor id accepted")
		}
		return err
	})
}

func FuzzDecodeComment(f *testing.F) {
	fuzzDecoder(f, func(s *server, w http.ResponseWriter, r *http.Request) error {
		in, err := s.decodeComment(w, r)
		if err == nil && in.RecordID < 1 {
			return errors.New("record id below 1 accepted")
		}
		return err
	})
}

func FuzzDecodeRegistration(f *testing.F) {
	fuzzDecoder(f, func(s *server, w http.ResponseWriter, r *http.Request) error {
		_, err := s.decodeRegistration(w, r)
		return err
	})
}
