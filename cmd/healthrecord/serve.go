package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"healthrecord/adapters/auditkey"
	"healthrecord/adapters/httpapi"
	"healthrecord/adapters/jwt"
	"healthrecord/adapters/metrics"
	"healthrecord/adapters/outbox"
	"healthrecord/adapters/password"
	"healthrecord/adapters/postgres"
	"healthrecord/adapters/smtp"
	"healthrecord/app"
	"healthrecord/internal/logwriter"
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
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l, ReplaceAttr: readableDurations}))
}

// readableDurations writes durations as "1m30s" rather than slog's JSON
// default, a count of nanoseconds.
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// openDB opens and migrates the database and keys its audit chain; log,
// when set, hears of a database created and of each migration applied.
func openDB(ctx context.Context, c config, log *slog.Logger) (store, error) {
	_, statErr := os.Stat(c.DB)
	created := !isPostgres(c.DB) && errors.Is(statErr, os.ErrNotExist)
	db, err := openStore(ctx, c, log)
	if err != nil {
		return nil, err
	}
	if created && log != nil {
		log.Info("created a new database", "db", c.DB)
	}
	applied, err := db.ApplyMigrations(ctx)
	if err != nil {
		db.Close()
		return nil, inFile("database", dbName(c.DB), err)
	}
	for _, m := range applied {
		if log != nil {
			log.Info("applied migration", "migration", m)
		}
	}
	key, keyCreated, err := auditkey.LoadOrCreate(c.AuditKeyFile)
	if err == nil {
		err = db.UseAuditKey(ctx, key, keyCreated)
		if err != nil && keyCreated {
			// The chain was not re-keyed: drop the key, so the next start
			// checks the old chain again instead of keying over it.
			_ = os.Remove(c.AuditKeyFile)
		}
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// inFile names the file an error concerns, unless it does already.
func inFile(what, path string, err error) error {
	if strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("%s %s: %w", what, path, err)
}

// hashConcurrency bounds the argon2id hashes running at once to half the
// cores, and hashCPUShare lets each of those slots use half a core: a burst
// of sign-ins waits longer instead of starving the API (hrbench's
// signin-storm), and hashing memory stays at most hashConcurrency × 19 MiB.
func hashConcurrency() int { return max(1, runtime.GOMAXPROCS(0)/2) }

const hashCPUShare = 0.5

// deliveryObserver is obs, or no observer at all when metrics are off (a
// nil *Metrics inside the interface would not be nil).
func deliveryObserver(obs *metrics.Metrics) ports.DeliveryObserver {
	if obs == nil {
		return nil
	}
	return obs
}

// newApp wires the application for c. tokens and mailer may be nil for
// commands that issue no token and send no email; counters for the sign-in
// throttle too (it counts in memory then, see store.SharedCounters).
func newApp(db ports.Store, tokens ports.TokenIssuer, mailer ports.Mailer, obs ports.DeliveryObserver, counters sharedCounters,
	c config, log *slog.Logger) *app.App {
	return app.New(app.Deps{
		Store: db, Tokens: tokens, Hasher: password.New(password.DefaultParams, hashConcurrency()).WithCPUShare(hashCPUShare),
		Clock: systemClock{}, Random: randomBytes, Log: log, UsernameKey: username.Key, Mailer: mailer, Observer: obs,
		Attempts: counters,
	}, app.Config{AccessTTL: c.AccessTTL, RefreshTTL: c.RefreshTTL, AutoApproveDoctors: c.AutoApproveDoctors,
		OutboxBackoff: c.OutboxBackoff, OutboxMaxAge: c.OutboxMaxAge, HashConcurrency: hashConcurrency(), QuotaBytes: c.QuotaBytes})
}

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready onListening) error {
	var c config
	fs := newFlagSet("serve", getenv, stderr)
	fs.serveFlags(&c)
	if err := fs.parseNoArgs(args); err != nil {
		return err
	}
	if err := errors.Join(c.validate(), c.validateNotifications()); err != nil {
		return err
	}
	// Requests log through a queue, so that one's line never waits for
	// another's write (see logwriter); closed last, it writes every line.
	logOut := logwriter.New(stderr, 0)
	defer logOut.Close()
	log := newLogger(logOut, c.LogLevel)
	setMemoryLimit(getenv)

	// Everything that can fail for the operator's settings fails here,
	// before a database or key file is created or "listening" is logged.
	var tlsCfg *tls.Config
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return fmt.Errorf("TLS certificate %s and key %s do not load: %w", c.TLSCert, c.TLSKey, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (HEALTHRECORD_ADDR / --addr): %w", c.Addr, err)
	}
	defer ln.Close()
	var metricsLn net.Listener
	if c.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", c.MetricsAddr); err != nil {
			return fmt.Errorf("cannot listen on %s (HEALTHRECORD_METRICS_ADDR / --metrics-addr): %w", c.MetricsAddr, err)
		}
		defer metricsLn.Close()
	}

	db, err := openDB(ctx, c, log)
	if err != nil {
		return err
	}
	defer db.Close()
	tokens, err := jwt.LoadOrCreate(c.KeyFile, time.Now())
	if err != nil {
		return inFile("key file", c.KeyFile, err)
	}
	var obs *metrics.Metrics
	if metricsLn != nil {
		obs = metrics.New(db, log)
	}
	var mailer ports.Mailer
	if c.SMTPAddr != "" {
		host := strings.SplitN(c.SMTPAddr, ":", 2)[0]
		m, err := smtp.New(smtp.Config{
			Addr: c.SMTPAddr, From: c.SMTPFrom, Username: c.SMTPUsername, Password: c.SMTPPassword,
			StartTLS: strings.ToLower(c.SMTPStartTLS), HeloHost: "localhost", Connections: int(c.SMTPConnections),
		})
		if err != nil {
			return err
		}
		defer m.Close()
		log.Info("email delivery on", "smtp_host", host, "smtp_connections", c.SMTPConnections)
		mailer = m
	}
	counters, err := db.SharedCounters(ctx)
	if err != nil {
		return err
	}
	a := newApp(db, tokens, mailer, deliveryObserver(obs), counters, c, log)
	if err := a.Start(ctx); err != nil {
		return err
	}
	// One email attempt in flight per SMTP connection: none waits for a
	// connection, so the attempt timeout is spent on the relay alone.
	dispatcher, err := outbox.New(a, outbox.Config{
		Lease: c.OutboxLease, AttemptTimeout: c.OutboxAttemptTimeout,
		Email: mailer != nil, EmailConcurrency: int(c.SMTPConnections),
	}, log)
	if err != nil {
		return err
	}
	// Wake the dispatcher when an assignment commits, not at the next poll.
	db.OnOutboxCommit(dispatcher.Wake)

	streamsDone := make(chan struct{})
	hcfg := httpapi.Config{MaxBodyBytes: c.MaxBodyBytes, Ready: db.Ready, TLS: tlsCfg != nil,
		TrustedProxies: c.TrustedProxies, PublicURL: c.PublicURL,
		RateRegister: c.RateRegister, RateUser: c.RateUser, RateAnon: c.RateAnon, Rates: counters, // nil: in memory
		Stream: httpapi.StreamConfig{Done: streamsDone}, Version: readBuildInfo().Version, StartedAt: time.Now()}
	if obs != nil {
		hcfg.Observer = obs
	}
	if log.Enabled(ctx, slog.LevelInfo) {
		// log is newLogger's JSON handler, whose lines the adapter writes
		// the same, into the same queue.
		hcfg.AccessLog = logOut
	}
	handler := httpapi.NewServer(a, hcfg, log)
	srv := newHTTPServer(handler, log)
	srv.TLSConfig = tlsCfg
	// Live notification streams end at shutdown; Shutdown would otherwise
	// wait for them until its deadline.
	srv.RegisterOnShutdown(func() { close(streamsDone) })

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	done := make(chan struct{}, 4)
	go func() { a.RunBackground(bg); done <- struct{}{} }()
	go func() {
		if err := dispatcher.Run(bg); err != nil {
			log.Error("dispatcher stopped", "err", err)
		}
		done <- struct{}{}
	}()
	waits := 2
	if pg, ok := db.(pgStore); ok {
		waits++
		go func() { pg.Listen(bg, othersCommitted(bg, a, dispatcher, log)); done <- struct{}{} }()
	}
	if counters != nil {
		waits++
		go func() { counters.Run(bg); done <- struct{}{} }()
	}
	if metricsLn != nil {
		waits++
		go func() {
			if err := obs.Serve(bg, metricsLn); err != nil {
				log.Error("metrics listener stopped", "err", err)
			}
			done <- struct{}{}
		}()
		log.Info("metrics listening", "addr", metricsLn.Addr().String())
	}

	serveErr := make(chan error, 1)
	go func() {
		var err error
		if tlsCfg != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		serveErr <- err
	}()
	log.Info("listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "db", c.DB)
	logOut.Flush() // whoever is told it listens finds the start-up lines written
	if ready != nil {
		metricsAddr := ""
		if metricsLn != nil {
			metricsAddr = metricsLn.Addr().String()
		}
		ready(ln.Addr().String(), metricsAddr)
	}

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
	for range waits {
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

// othersCommitted is what this instance does when another instance on the
// same PostgreSQL database commits: the dispatcher claims the new events,
// the revoked sign-ins are refused here too, live streams look for the new
// notifications. Each still happens at the next poll without it.
func othersCommitted(ctx context.Context, a *app.App, d *outbox.Dispatcher, log *slog.Logger) postgres.Remote {
	return postgres.Remote{
		Outbox: d.Wake,
		Revoked: func() {
			// Bounded: the next notification waits for it.
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := a.SyncRevocations(sctx); err != nil && ctx.Err() == nil {
				log.Error("sync revocations", "err", err)
			}
		},
		Notified: a.NotificationsStoredElsewhere,
	}
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
// operator sets GOMEMLIMIT: argon2id's buffers are short-lived, and
// without a limit the collector lets a sign-in burst grow the heap far
// beyond what is live. It must leave room for what is live during a burst
// (the record and token caches and the hash in flight) plus the last
// hash's freed buffer: set lower, the collector runs back to back during a
// sign-in storm. The README's performance section has the measurements.
const defaultMemoryLimit = 56 << 20

// defaultGCPercent lets the heap grow to several times what is live before
// a collection, unless the operator sets GOGC: the live heap of this
// service is small, collections at the default took a large share of a
// list request's CPU (see the README's performance section), and the
// memory limit above still caps the total.
const defaultGCPercent = 400

func setMemoryLimit(getenv func(string) string) {
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// openUnmigrated opens the database without migrating it.
func openUnmigrated(ctx context.Context, c config) (store, error) { return openStore(ctx, c, nil) }
