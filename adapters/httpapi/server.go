// Package httpapi is healthrecord's HTTP adapter: it turns requests into
// use-case calls on the app and their results into DRF-shaped JSON.
// Handlers never decide who may do what; the app and domain do.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"healthrecord/app"
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
	// Version is the binary's version, shown by GET / and the admin
	// overview; default the module version in the build information.
	Version string
	// StartedAt is when the service started, for the admin overview;
	// default when the handler was made.
	StartedAt time.Time
}

// DefaultMaxBodyBytes is the request body limit when Config leaves it 0.
const DefaultMaxBodyBytes = 1 << 20

type server struct {
	app *app.App
	cfg Config
	log *slog.Logger
	mux *chi.Mux
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
	s := &server{app: a, cfg: cfg, log: log, mux: chi.NewRouter()}
	s.routes()
	return s
}
