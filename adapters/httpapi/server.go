// Package httpapi is healthrecord's HTTP adapter: it turns requests into
// use-case calls on the app and their results into DRF-shaped JSON.
// Handlers never decide who may do what; the app and domain do.
package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"

	"healthrecord/app"
	"healthrecord/ports"
)

// Config holds the adapter's settings.
type Config struct {
	// MaxBodyBytes bounds a request body; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// Ready reports whether the service can serve (database up, migrations
	// current); nil means always ready.
	Ready func(ctx context.Context) error
	// TLS adds Strict-Transport-Security, since only then is it meaningful.
	TLS bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For,
	// -Proto and -Host headers are believed; from any other peer they are
	// ignored.
	TrustedProxies []netip.Prefix
	// PublicURL, when set, is the base of every absolute URL (the Link
	// header), whatever the request says.
	PublicURL *url.URL
	// Request rates, DRF's throttles: registrations per client address,
	// requests per signed-in user, requests without a token per client
	// address. The zero Rate is off.
	RateRegister, RateUser, RateAnon Rate
	// Rates counts the request rates where every instance sees them; nil
	// counts in this process's memory.
	Rates ports.Rates
	// Observer is told of every answered request and sign-in (metrics);
	// nil observes nothing.
	Observer Observer
	// Stream tunes GET /api/notifications/stream/; zero fields take defaults.
	Stream StreamConfig
	// Version is the binary's version, shown by GET / and the admin
	// overview; default the module version in the build information.
	Version string
	// StartedAt is when the service started, for the admin overview;
	// default when the handler was made.
	StartedAt time.Time
	// AccessLog, when set, takes the access log's lines, formatted here
	// as the logger's handler would if it were slog.NewJSONHandler at
	// level info (without slog's per-attribute work on every request);
	// a line whose strings would need escaping still goes through the
	// logger. nil logs every line through the logger.
	AccessLog io.Writer
}

// Observer receives what the HTTP adapter sees, for metrics. Its methods
// must be safe for concurrent use and must not block.
type Observer interface {
	// ObserveRequest is called once per answered request; route is the
	// route pattern ("/api/records/{id}/"), never the raw path.
	ObserveRequest(method, route string, code int, d time.Duration)
	// ObserveSignIn is called once per sign-in attempt with its outcome:
	// ok, denied or throttled.
	ObserveSignIn(outcome string)
}

type nopObserver struct{}

func (nopObserver) ObserveRequest(string, string, int, time.Duration) {}
func (nopObserver) ObserveSignIn(string)                              {}

// DefaultMaxBodyBytes is the request body limit when Config leaves it 0.
const DefaultMaxBodyBytes = 1 << 20

type server struct {
	app *app.App
	cfg Config
	log *slog.Logger
	mux *chi.Mux

	rates   *rates
	streams openStreams
}

// NewServer returns the API's handler.
func NewServer(a *app.App, cfg Config, log *slog.Logger) http.Handler {
	return newServer(a, cfg, log).mux
}

func newServer(a *app.App, cfg Config, log *slog.Logger) *server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Version == "" {
		cfg.Version = buildVersion()
	}
	if cfg.StartedAt.IsZero() {
		cfg.StartedAt = time.Now()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	cfg.Stream.setDefaults()
	s := &server{app: a, cfg: cfg, log: log, mux: chi.NewRouter(), rates: newRates(cfg)}
	s.routes()
	return s
}
