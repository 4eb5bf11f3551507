package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"healthrecord/adapters/httpapi"
	"healthrecord/adapters/jwt"
	"healthrecord/adapters/outbox"
	"healthrecord/adapters/password"
	"healthrecord/adapters/smtp"
	"healthrecord/adapters/sqlite"
	"healthrecord/app"
	"healthrecord/internal/username"
	"healthrecord/ports"
)

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now().UTC() }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return b
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// openDB opens and migrates the database.
func openDB(ctx context.Context, c config, opts ...sqlite.Option) (*sqlite.DB, error) {
	db, err := sqlite.Open(ctx, c.DB, opts...)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// hashConcurrency bounds the argon2id hashes running at once to half the
// cores, and hashCPUShare lets each of those slots use half a core: a burst
// of sign-ins waits longer instead of starving the API (hrbench's
// signin-storm), and hashing memory stays at most hashConcurrency × 19 MiB.
func hashConcurrency() int { return max(1, runtime.GOMAXPROCS(0)/2) }

const hashCPUShare = 0.5

// newApp wires the application for c. tokens may be nil for commands that
// issue none.
func newApp(db *sqlite.DB, tokens ports.TokenIssuer, c config, log *slog.Logger) *app.App {
	return app.New(app.Deps{
		Store: db, Tokens: tokens, Hasher: password.New(password.DefaultParams, hashConcurrency()).WithCPUShare(hashCPUShare),
		Clock: systemClock{}, Random: randomBytes, Log: log, UsernameKey: username.Key,
	}, app.Config{AccessTTL: c.AccessTTL, RefreshTTL: c.RefreshTTL, AutoApproveDoctors: c.AutoApproveDoctors,
		HashConcurrency: hashConcurrency(), QuotaBytes: c.QuotaBytes})
}

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var c config
	fs := newFlagSet("serve", getenv, stderr)
	fs.serveFlags(&c)
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	log := newLogger(stderr, c.LogLevel)
	setMemoryLimit(getenv)

	db, err := openDB(ctx, c, sqlite.WithLogger(log))
	if err != nil {
		return err
	}
	defer db.Close()
	tokens, err := jwt.LoadOrCreate(c.KeyFile, time.Now())
	if err != nil {
		return err
	}
	a := newApp(db, tokens, c, log)
	if err := a.Start(ctx); err != nil {
		return err
	}

	sinks := []ports.Sink{a.NotificationSink()}
	if c.SMTPAddr != "" {
		host := strings.SplitN(c.SMTPAddr, ":", 2)[0]
		m, err := smtp.New(smtp.Config{
			Addr: c.SMTPAddr, From: c.SMTPFrom, Username: c.SMTPUsername, Password: c.SMTPPassword,
			StartTLS: strings.ToLower(c.SMTPStartTLS), HeloHost: "localhost",
		})
		if err != nil {
			return err
		}
		log.Info("email delivery on", "smtp_host", host)
		sinks = append(sinks, a.EmailSink(m))
	}
	dispatcher, err := outbox.New(db.Outbox(), sinks, outbox.Config{
		Lease: c.OutboxLease, AttemptTimeout: c.OutboxAttemptTimeout,
		BaseBackoff: c.OutboxBackoff, MaxAttempts: int(c.OutboxMaxAttempts),
	}, log)
	if err != nil {
		return err
	}
	// Wake the dispatcher when an assignment commits, not at the next poll.
	db.OnOutboxCommit(dispatcher.Wake)

	handler := httpapi.NewServer(a, httpapi.Config{MaxBodyBytes: c.MaxBodyBytes, Ready: db.Ready, TLS: c.TLSCert != "",
		TrustedProxies: c.TrustedProxies, PublicURL: c.PublicURL,
		RateRegister: c.RateRegister, RateUser: c.RateUser, RateAnon: c.RateAnon}, log)
	srv := newHTTPServer(handler, log)
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	done := make(chan struct{}, 2)
	go func() { a.RunBackground(bg); done <- struct{}{} }()
	go func() {
		if err := dispatcher.Run(bg); err != nil {
			log.Error("dispatcher stopped", "err", err)
		}
		done <- struct{}{}
	}()

	serveErr := make(chan error, 1)
	go func() {
		var err error
		if c.TLSCert != "" {
			err = srv.ServeTLS(ln, c.TLSCert, c.TLSKey)
		} else {
			err = srv.Serve(ln)
		}
		serveErr <- err
	}()
	log.Info("listening", "addr", ln.Addr().String(), "tls", c.TLSCert != "", "db", c.DB)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			stopBG()
			return fmt.Errorf("serve: %w", err)
		}
	}
	// Graceful: stop taking requests and let in-flight ones finish, then
	// let the dispatcher finish or release its event, then write the audit
	// entries still buffered.
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	stopBG()
	for range 2 {
		select {
		case <-done:
		case <-sctx.Done():
		}
	}
	if err := a.Close(sctx); err != nil {
		log.Error("flush audit", "err", err)
		return err
	}
	log.Info("stopped")
	return shutdownErr
}

// newHTTPServer sets every timeout, so a slow or idle client cannot hold
// a connection (or a goroutine) forever.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless the
// operator sets GOMEMLIMIT: argon2id's 19 MiB buffers are short-lived, and
// without a limit the collector lets a sign-in burst grow the heap far
// beyond what is live. It must leave room for what is live during a burst
// (the record and token caches, ~10 MiB full, and the hash in flight) plus
// the last hash's freed buffer: at 48 MiB the collector ran back to back
// during hrbench's sign-in storm (a quarter of the server's CPU, gctrace
// goal ≈ live). Measured (list,signin,signin-storm, one run each): 56 MiB
// → list keeps 61 % during the storm, peak RSS 88 MiB; 64 MiB → 65 %,
// 100 MiB.
const defaultMemoryLimit = 56 << 20

// defaultGCPercent lets the heap grow to 5× what is live before a
// collection, unless the operator sets GOGC: the live heap of this service
// is a few MiB, GC was a fifth of a list request's CPU at the default 100
// (BenchmarkListRecords: 84 → 62 µs/op at 400), and the memory limit above
// still caps the total.
const defaultGCPercent = 400

func setMemoryLimit(getenv func(string) string) {
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// sqliteOpen opens the database without migrating it.
func sqliteOpen(ctx context.Context, path string) (*sqlite.DB, error) { return sqlite.Open(ctx, path) }
