package httpapi

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"healthrecord/domain"
)

// query reads a list's query string: pagination and filters, collecting
// every field's message before answering 400.
type query struct {
	vals url.Values
	errs domain.FieldErrors
}

func newQuery(r *http.Request) *query {
	return &query{vals: r.URL.Query(), errs: domain.FieldErrors{}}
}

func (q *query) err() error { return q.errs.Err() }

// page reads ?limit= and ?cursor=; the page size itself is
// domain.Page.Size's rule (absent: the default; too large: the maximum).
func (q *query) page() domain.Page {
	var p domain.Page
	if s := q.vals.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		switch {
		case err != nil && !isDigits(s):
			q.errs.Add("limit", "A valid integer is required.")
		case err != nil: // digits too large even for an int: as large as asked
			p.Limit = math.MaxInt
		case n < 1:
			q.errs.Add("limit", "Ensure this value is greater than or equal to 1.")
		default:
			p.Limit = n
		}
	}
	if s := q.vals.Get("cursor"); s != "" {
		c, ok := decodeCursor(s)
		if !ok {
			q.errs.Add("cursor", "Invalid cursor.")
		}
		p.After = c
	}
	p.Limit = p.Size()
	return p
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// id reads an optional id filter; 0 when absent.
func (q *query) id(name string) int64 {
	s := q.vals.Get(name)
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		q.errs.Add(name, "A valid integer is required.")
		return 0
	}
	return n
}

// choice reads an optional filter that must be one of choices; "" when absent.
func (q *query) choice(name string, choices ...string) string {
	s := q.vals.Get(name)
	if s == "" || contains(choices, s) {
		return s
	}
	q.errs.Add(name, fmt.Sprintf("%q is not a valid choice.", s))
	return ""
}

// text reads an optional free-text filter of at most max characters; ""
// when absent.
func (q *query) text(name string, max int) string {
	s := q.vals.Get(name)
	if utf8.RuneCountInString(s) > max {
		q.errs.Add(name, fmt.Sprintf("Ensure this field has no more than %d characters.", max))
		return ""
	}
	if strings.ContainsRune(s, 0) {
		q.errs.Add(name, "Null characters are not allowed.")
		return ""
	}
	return s
}

// boolean reads an optional true/false filter; nil when absent.
func (q *query) boolean(name string) *bool {
	var v bool
	switch strings.ToLower(q.vals.Get(name)) {
	case "":
		return nil
	case "true", "1":
		v = true
	case "false", "0":
		v = false
	default:
		q.errs.Add(name, "Must be a valid boolean.")
		return nil
	}
	return &v
}

// Cursors are opaque to clients: base64url of "<created_at unix nanos>.<id>".
var cursorRE = regexp.MustCompile(`^(-?[0-9]{1,19})\.([0-9]{1,19})$`)

func encodeCursor(c domain.Cursor) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%d", c.CreatedAt.UnixNano(), c.ID))
}

func decodeCursor(s string) (*domain.Cursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	m := cursorRE.FindSubmatch(b)
	if m == nil {
		return nil, false
	}
	nanos, err1 := strconv.ParseInt(string(m[1]), 10, 64)
	id, err2 := strconv.ParseInt(string(m[2]), 10, 64)
	if err1 != nil || err2 != nil {
		return nil, false
	}
	return &domain.Cursor{CreatedAt: time.Unix(0, nanos).UTC(), ID: id}, true
}

// writeList answers a page: a bare JSON array (page is a slice from
// mapList, or a jsonBody list; never null), as the original's lists were,
// with the next page's URL in a Link header.
func writeList(w http.ResponseWriter, r *http.Request, page any, next *domain.Cursor) {
	if next != nil {
		w.Header().Set("Link", fmt.Sprintf("<%s>; rel=\"next\"", nextURL(r, *next)))
	}
	writeJSON(w, http.StatusOK, page)
}

func nextURL(r *http.Request, next domain.Cursor) string {
	q := r.URL.Query()
	q.Set("cursor", encodeCursor(next))
	info := infoOf(r.Context())
	if info.scheme == "" { // outside the middleware (unit tests)
		info = &reqInfo{scheme: "http", host: r.Host}
	}
	u := url.URL{Scheme: info.scheme, Host: info.host, Path: info.prefix + canonicalPath(r.URL.Path), RawQuery: q.Encode()}
	return u.String()
}
