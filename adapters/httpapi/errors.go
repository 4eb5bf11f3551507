package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"healthrecord/domain"
)

// DRF's wording for what only the HTTP layer finds: a missing token, a
// field of the wrong JSON type, a server error.
const (
	msgServerError   = "A server error occurred."
	msgNoCredentials = "Authentication credentials were not provided."
	msgNull          = "This field may not be null."
	msgNotString     = "Not a valid string."
)

// httpError is an answer only the HTTP layer can give (413, 415, 405, an
// unknown route); it goes through the same mapper as domain errors.
type httpError struct {
	status int
	body   any
	header map[string]string
}

func (e *httpError) Error() string { return fmt.Sprintf("http %d: %v", e.status, e.body) }

func detail(msg string) map[string]any { return map[string]any{"detail": msg} }

// statuses is the one table from error code to HTTP status; a code not in
// it is an internal error.
var statuses = map[domain.Code]int{
	domain.EInvalid:      http.StatusBadRequest,
	domain.EUnauthorized: http.StatusUnauthorized,
	domain.EForbidden:    http.StatusForbidden,
	domain.ENotFound:     http.StatusNotFound,
	domain.EConflict:     http.StatusConflict,
	domain.EThrottled:    http.StatusTooManyRequests,
	domain.EQuota:        http.StatusRequestEntityTooLarge,
}

// defaultDetail fills in DRF's wording when an error carries no message.
var defaultDetail = map[int]string{
	http.StatusBadRequest:      "Invalid input.",
	http.StatusUnauthorized:    msgNoCredentials,
	http.StatusForbidden:       domain.MsgNoPermission,
	http.StatusNotFound:        domain.MsgNotFound,
	http.StatusConflict:        "Conflict.",
	http.StatusTooManyRequests: "Request was throttled.",
}

// response is what an error becomes on the wire.
type response struct {
	status   int
	body     any
	header   map[string]string
	internal bool // logged: a bug or an outage, never a client's mistake
}

// errorResponse maps any error, wrapped or not, to its answer.
func errorResponse(err error) response {
	var he *httpError
	if errors.As(err, &he) {
		return response{status: he.status, body: he.body, header: he.header}
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		return response{status: http.StatusInternalServerError, body: detail(msgServerError), internal: true}
	}
	status, ok := statuses[de.Code]
	if !ok {
		return response{status: http.StatusInternalServerError, body: detail(msgServerError), internal: true}
	}
	msg := de.Message
	if msg == "" {
		msg = defaultDetail[status]
	}
	out := response{status: status, body: detail(msg)}
	switch de.Code {
	case domain.EInvalid:
		if len(de.Fields) > 0 {
			out.body = de.Fields
		}
	case domain.EUnauthorized:
		body := detail(msg)
		if de.BadToken {
			body["code"] = codeTokenNotValid
		}
		out.body = body
		out.header = map[string]string{"WWW-Authenticate": `Bearer realm="api"`}
	case domain.EThrottled:
		secs := waitSeconds(de.Wait)
		if de.Message == "" {
			out.body = detail(throttledDetail(secs))
		}
		out.header = map[string]string{"Retry-After": strconv.FormatInt(secs, 10)}
	}
	return out
}

// codeTokenNotValid is SimpleJWT's "code" for a token it refuses.
const codeTokenNotValid = "token_not_valid"

// waitSeconds is a wait in whole seconds, rounded up and at least one, so
// a client told to come back is never early.
func waitSeconds(wait time.Duration) int64 {
	return max(1, int64((wait+time.Second-1)/time.Second))
}

// throttledDetail is DRF's Throttled message, with its ngettext plural.
func throttledDetail(secs int64) string {
	unit := " seconds."
	if secs == 1 {
		unit = " second."
	}
	return "Request was throttled. Expected available in " + strconv.FormatInt(secs, 10) + unit
}

// writeError answers with err's status and body; only internal errors are
// logged, with the request's id so the log line can be found.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	resp := errorResponse(err)
	if resp.internal {
		s.logger(r).Error("internal error", "method", r.Method, "err", err.Error())
	}
	for k, v := range resp.header {
		w.Header().Set(k, v)
	}
	writeJSON(w, resp.status, resp.body)
}

// notFound answers unknown paths.
func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, &httpError{status: http.StatusNotFound, body: detail(domain.MsgNotFound)})
}

// probeMethods are the methods the Allow header may list.
var probeMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
}

// methodNotAllowed answers a known path with a method it does not serve,
// listing the ones it does in Allow as DRF does.
func (s *server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	s.refuseMethod(w, r, s.allowed(canonicalPath(routePath(r))))
}

func (s *server) refuseMethod(w http.ResponseWriter, r *http.Request, allow []string) {
	if len(allow) == 0 {
		s.notFound(w, r) // a method chi does not know, on no route at all
		return
	}
	s.writeError(w, r, &httpError{
		status: http.StatusMethodNotAllowed,
		body:   detail(fmt.Sprintf("Method %q not allowed.", r.Method)),
		header: map[string]string{"Allow": strings.Join(allow, ", ")},
	})
}

// allowed lists the methods routed for path; HEAD follows GET.
func (s *server) allowed(path string) []string {
	var out []string
	for _, m := range probeMethods {
		if m == http.MethodHead {
			continue
		}
		if s.mux.Match(chi.NewRouteContext(), m, path) {
			out = append(out, m)
			if m == http.MethodGet {
				out = append(out, http.MethodHead)
			}
		}
	}
	return out
}
