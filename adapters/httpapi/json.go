package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"healthrecord/domain"
)

// writeJSON is the one way a response body is written: every answer is
// JSON, sent with its length. A body that encodes itself (jsonBody: the
// hot paths' records and comments) is appended into a pooled buffer
// without reflection; rawJSON is sent as it is; anything else goes through
// encoding/json. The event stream (stream.go) and the console's static
// files (web.go) are not JSON answers and write for themselves.
func writeJSON(w http.ResponseWriter, status int, v any) {
	switch body := v.(type) {
	case rawJSON:
		writeBody(w, status, body)
	case jsonBody:
		buf := bodyPool.Get().(*[]byte)
		b := body.appendJSON((*buf)[:0])
		writeBody(w, status, b)
		// net/http has copied what was written: the buffer is free again.
		if cap(b) <= maxPooledBody {
			*buf = b[:0]
			bodyPool.Put(buf)
		}
	default:
		b, err := json.Marshal(v)
		if err != nil { // only a bug gets here: every value is a plain struct
			status, b = http.StatusInternalServerError, []byte(`{"detail":"`+msgServerError+`"}`)
		}
		writeBody(w, status, b)
	}
}

// jsonBody is a body that appends its own JSON encoding.
type jsonBody interface{ appendJSON(dst []byte) []byte }

// rawJSON is a body already encoded (the OpenAPI document).
type rawJSON []byte

// maxPooledBody bounds the buffers kept for reuse, so one huge answer
// (a page of long records) does not pin its memory.
const maxPooledBody = 64 << 10

var bodyPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 8<<10) // a short page of records with comments fits
	return &b
}}

// writeBody sends a JSON body with its length: net/http would otherwise
// switch a body over 2 KiB (a page of records) to chunked encoding, more
// writes for the server and more parsing for the client. Only writeJSON
// calls it.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// jsonContentType is shared by every answer: net/http only reads it (see
// securityHeaderValues).
var jsonContentType = []string{"application/json"}

// timeJSON is the one format for times on the wire: RFC 3339 in UTC.
func timeJSON(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func optTimeJSON(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := timeJSON(*t)
	return &s
}

// optID is an id that is null on the wire when 0.
func optID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

func parseError(msg string) error {
	return &httpError{status: http.StatusBadRequest, body: detail("JSON parse error - " + msg)}
}

// object is a request body checked to be one JSON object with unique
// keys; its fields are read one by one, collecting DRF-style messages.
type object struct {
	raw  map[string]json.RawMessage
	keys []string // in the body's order, so "the first" unknown fields are
	errs domain.FieldErrors
}

// decodeJSON is the one way a request body is read: Content-Type, size,
// syntax, a single object and unique keys are checked here; the fields by
// the caller through object's methods. An empty body reads as {}.
func (s *server) decodeJSON(w http.ResponseWriter, r *http.Request) (*object, error) {
	body, err := readBody(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	return parseObject(body)
}

func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	checked := false
	if r.ContentLength > 0 { // refuse before reading what cannot be used
		if err := checkContentType(r); err != nil {
			return nil, err
		}
		checked = true
	}
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &httpError{status: http.StatusRequestEntityTooLarge,
			body: detail(fmt.Sprintf("Request body is larger than %d bytes.", max))}
	case err != nil:
		return nil, parseError("the request body could not be read")
	}
	if !checked && len(body) > 0 {
		if err := checkContentType(r); err != nil {
			return nil, err
		}
	}
	return body, nil
}

func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		cs := strings.ToLower(params["charset"])
		if cs == "" || cs == "utf-8" || cs == "utf8" {
			return nil
		}
	}
	return &httpError{status: http.StatusUnsupportedMediaType,
		body: detail(fmt.Sprintf("Unsupported media type %q in request.", ct))}
}

// parseObject accepts exactly one JSON object with unique keys.
func parseObject(body []byte) (*object, error) {
	o := &object{raw: map[string]json.RawMessage{}, errs: domain.FieldErrors{}}
	if len(body) == 0 {
		return o, nil
	}
	if !utf8.Valid(body) {
		return nil, parseError("invalid UTF-8")
	}
	var probe any
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, parseError(err.Error())
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if trimmed[0] != '{' {
		return nil, &httpError{status: http.StatusBadRequest, body: map[string][]string{
			"non_field_errors": {"Invalid data. Expected a dictionary, but got " + pyType(trimmed) + "."},
		}}
	}
	// The body is valid JSON, so only duplicates can fail from here.
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if _, err := dec.Token(); err != nil { // {
		return nil, parseError(err.Error())
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, parseError(err.Error())
		}
		key, _ := tok.(string)
		if _, dup := o.raw[key]; dup {
			return nil, parseError(fmt.Sprintf("duplicate key %q", key))
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, parseError(err.Error())
		}
		o.raw[key] = v
		o.keys = append(o.keys, key)
	}
	return o, nil
}

// pyType names a JSON value's type as Python does, for DRF's messages.
func pyType(v []byte) string {
	switch v[0] {
	case '{':
		return "dict"
	case '[':
		return "list"
	case '"':
		return "str"
	case 't', 'f':
		return "bool"
	case 'n':
		return "NoneType"
	}
	if bytes.ContainsAny(v, ".eE") {
		return "float"
	}
	return "int"
}

// maxUnknownReported bounds the unknown fields named in an answer, so that
// an error is never much larger than the request that caused it.
const maxUnknownReported = 20

// only refuses fields that are neither known nor read-only; read-only ones
// are ignored, so a client may send back what it read. Only the first
// maxUnknownReported unknown fields, in the body's order, are reported.
func (o *object) only(fields, readOnly []string) {
	n := 0
	for _, k := range o.keys {
		if !contains(fields, k) && !contains(readOnly, k) {
			if n++; n > maxUnknownReported {
				return
			}
			o.errs.Add(k, "Unknown field.")
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// str reads a string field; nil when absent or wrong.
func (o *object) str(name string, required bool) *string {
	v, ok := o.raw[name]
	switch {
	case !ok:
		if required {
			o.errs.Add(name, domain.MsgRequired)
		}
		return nil
	case string(v) == "null":
		o.errs.Add(name, msgNull)
		return nil
	case v[0] != '"':
		o.errs.Add(name, msgNotString)
		return nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		o.errs.Add(name, msgNotString)
		return nil
	}
	return &s
}

// pk reads a primary key field: a JSON integer, or null when nullable.
// present is false when the field is absent or wrong; id is 0 for null.
func (o *object) pk(name string, required, nullable bool) (id int64, present bool) {
	v, ok := o.raw[name]
	switch {
	case !ok:
		if required {
			o.errs.Add(name, domain.MsgRequired)
		}
		return 0, false
	case string(v) == "null":
		if nullable {
			return 0, true
		}
		o.errs.Add(name, msgNull)
		return 0, false
	}
	if t := pyType(v); t != "int" {
		o.errs.Add(name, "Incorrect type. Expected pk value, received "+t+".")
		return 0, false
	}
	id, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || id < 1 {
		// Not a usable id, reported like one that names nothing.
		o.errs.Add(name, fmt.Sprintf("Invalid pk \"%s\" - object does not exist.", v))
		return 0, false
	}
	return id, true
}

// failed reports whether a field was missing or of the wrong type.
func (o *object) failed() bool { return len(o.errs) > 0 }

// err is the collected field errors, merged with more (the domain's own
// validation of what did parse), so a client hears of every field at once.
func (o *object) err(more error) error {
	if len(o.errs) == 0 {
		return nil
	}
	var de *domain.Error
	if errors.As(more, &de) {
		for k, msgs := range de.Fields {
			if _, ok := o.errs[k]; !ok {
				o.errs[k] = msgs
			}
		}
	}
	return o.errs.Err()
}
