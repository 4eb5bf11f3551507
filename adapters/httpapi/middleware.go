package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"healthrecord/domain"
)

type ctxKey int

const requestIDKey ctxKey = 0

// A client's request id is kept only when it cannot smuggle anything into
// logs or headers.
var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// reqInfo is what the server works out once about a request: its id and
// who sent it from where (see client).
type reqInfo struct {
	id     string
	client string // the client's address: the peer, or a trusted proxy's X-Forwarded-For
	scheme string // as the client used it
	host   string
	prefix string       // the public URL's path, before the API's own
	actor  domain.Actor // who sent it, once authenticate has checked the token
}

// requestID accepts or makes the request's id, echoes it and stores it,
// with the client's address, for logs, throttles and the audit trail.
func (s *server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !requestIDRE.MatchString(id) {
			var b [16]byte
			_, _ = rand.Read(b[:]) // never fails since Go 1.24
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-ID", id)
		info := s.client(r)
		info.id = id
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, &info)))
	})
}

func infoOf(ctx context.Context) *reqInfo {
	if i, ok := ctx.Value(requestIDKey).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

func requestIDOf(ctx context.Context) string { return infoOf(ctx).id }

// logger is the server's logger with the request's id on every line.
func (s *server) logger(r *http.Request) *slog.Logger {
	return s.log.With("request_id", requestIDOf(r.Context()))
}

// securityHeaders are set on every response: nothing here is meant to be
// cached, framed, sniffed or embedded.
func (s *server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for _, kv := range securityHeaderValues {
			h[kv.key] = kv.value
		}
		if s.cfg.TLS {
			h["Strict-Transport-Security"] = hstsValue
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaderValues are set as they are, keys already canonical: the
// value slices are shared by every response, which net/http only reads
// (a later Set or Add replaces a slice, never writes into it), so a
// request costs no allocation for them.
var securityHeaderValues = []struct {
	key   string
	value []string
}{
	{"Cache-Control", []string{"no-store"}},
	{"Pragma", []string{"no-cache"}},
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"Content-Security-Policy", []string{"default-src 'none'; frame-ancestors 'none'"}},
	{"X-Frame-Options", []string{"DENY"}},
	{"Referrer-Policy", []string{"no-referrer"}},
	{"Cross-Origin-Resource-Policy", []string{"same-origin"}},
}

var hstsValue = []string{"max-age=63072000; includeSubDomains"}

// accessLog writes one line per request (see accessLine).
func (s *server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		route := ""
		if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePattern() != "" {
			route = canonicalPath(rctx.RoutePattern()) // chi trims the trailing slash
		}
		elapsed := time.Since(start)
		s.cfg.Observer.ObserveRequest(r.Method, route, status, elapsed)
		s.logAccess(r, accessLine{method: r.Method, route: route, status: status, elapsed: elapsed,
			bytes: ww.BytesWritten(), requestID: requestIDOf(r.Context()), remote: remoteAddr(r)})
	})
}

// recoverer turns a panic into a logged 500 with a JSON body.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.logger(r).Error("panic", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if ww, ok := w.(middleware.WrapResponseWriter); ok && ww.Status() != 0 {
				return // the status line is gone; nothing useful to add
			}
			writeJSON(w, http.StatusInternalServerError, detail(msgServerError))
		}()
		next.ServeHTTP(w, r)
	})
}

// noSlash are the paths served without a trailing slash; every other path
// is routed in its trailing-slash form.
var noSlash = map[string]bool{"/healthz": true, "/readyz": true, "/api/openapi.json": true}

// canonicalPath lets a path be given with or without its trailing slash,
// for every method, without a redirect (a redirected POST loses its body
// in many clients).
func canonicalPath(p string) string {
	t := strings.TrimSuffix(p, "/")
	switch {
	case t == "":
		return "/"
	case noSlash[t], isAssetPath(t), strings.HasSuffix(t, "/*"): // the last: a files route's pattern, for logs
		return t
	}
	return t + "/"
}

func routePath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.Path
}

func (s *server) slashes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rctx := chi.RouteContext(r.Context()); rctx != nil {
			rctx.RoutePath = canonicalPath(routePath(r))
		}
		next.ServeHTTP(w, r)
	})
}

// remoteAddr is the client's address, as client derived it.
func remoteAddr(r *http.Request) string {
	if i := infoOf(r.Context()); i.client != "" {
		return i.client
	}
	return peerAddr(r)
}

// peerAddr is the TCP peer's address.
func peerAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// client works out the client's address, scheme and host. X-Forwarded-*
// headers are believed only from a trusted proxy, since any client can
// send them; the client's address is then the right-most one in
// X-Forwarded-For that is not itself a trusted proxy (what the client
// wrote further left is not believed).
func (s *server) client(r *http.Request) reqInfo {
	info := reqInfo{client: peerAddr(r), scheme: "http", host: r.Host}
	if r.TLS != nil {
		info.scheme = "https"
	}
	if len(s.cfg.TrustedProxies) > 0 {
		s.forwarded(r, &info)
	}
	if u := s.cfg.PublicURL; u != nil {
		info.scheme, info.host, info.prefix = u.Scheme, u.Host, strings.TrimSuffix(u.Path, "/")
	}
	return info
}

// forwarded applies a trusted proxy's X-Forwarded-* headers to info.
func (s *server) forwarded(r *http.Request, info *reqInfo) {
	peer, err := netip.ParseAddr(info.client)
	if err != nil || !s.trusted(peer.Unmap()) {
		return
	}
	peer = peer.Unmap()
	client := peer
	xff := r.Header.Values("X-Forwarded-For")
walk:
	for i := len(xff) - 1; i >= 0; i-- {
		hops := strings.Split(xff[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			a, ok := parseHop(hops[j])
			if !ok {
				break walk // garbage: keep the last address a trusted hop vouched for
			}
			client = a
			if !s.trusted(a) {
				break walk
			}
		}
	}
	info.client = client.String()
	if p := strings.ToLower(strings.TrimSpace(firstValue(r.Header.Get("X-Forwarded-Proto")))); p == "http" || p == "https" {
		info.scheme = p
	}
	if h := strings.TrimSpace(firstValue(r.Header.Get("X-Forwarded-Host"))); hostRE.MatchString(h) {
		info.host = h
	}
}

func (s *server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port.
func parseHop(h string) (netip.Addr, bool) {
	h = strings.TrimSpace(h)
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return first
}

// hostRE is a host name or address with an optional port, nothing that
// could change a URL's meaning.
var hostRE = regexp.MustCompile(`^[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$`)

var errNoCredentials = &domain.Error{Code: domain.EUnauthorized, Message: msgNoCredentials}

// authenticate requires a valid access token and puts the actor it speaks
// for in the request's context, for handlers to pass on explicitly.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// SimpleJWT's rule: another scheme (or none) is no credentials; the
		// Bearer scheme with anything but one token is a bad token.
		token, ok := parseBearer(r.Header.Get("Authorization"))
		if !ok {
			s.writeError(w, r, errNoCredentials)
			return
		}
		if token == "" {
			s.writeError(w, r, domain.TokenNotValid())
			return
		}
		actor, err := s.app.Authenticate(r.Context(), token)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if wait, err := s.rates.allowUser(r.Context(), actor.ID, time.Now()); s.throttled(w, r, wait, err) {
			return
		}
		actor.RequestID = requestIDOf(r.Context())
		actor.RemoteAddr = remoteAddr(r)
		// Kept in the request's info, which requestID put in the context,
		// rather than in a context (and a request) of its own.
		infoOf(r.Context()).actor = actor
		next.ServeHTTP(w, r)
	})
}

// parseBearer reads an Authorization header by SimpleJWT's rule, on its
// words (strings.Fields): ok is false unless the first is "Bearer"; the
// token is "" unless there are exactly two. The usual header, "Bearer "
// and a token of printable ASCII, is read without splitting it.
func parseBearer(h string) (token string, ok bool) {
	if t, found := strings.CutPrefix(h, "Bearer "); found && plainWord(t) {
		return t, true
	}
	parts := strings.Fields(h)
	if len(parts) == 0 || parts[0] != "Bearer" {
		return "", false
	}
	if len(parts) != 2 {
		return "", true
	}
	return parts[1], true
}

// plainWord: not empty, printable ASCII without spaces, so that
// strings.Fields would keep it whole.
func plainWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return s != ""
}

// actorOf is the authenticated caller; only routes behind authenticate
// call it.
func actorOf(r *http.Request) domain.Actor {
	return infoOf(r.Context()).actor
}
