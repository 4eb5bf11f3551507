package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// config is every setting, read once here from flags and HEALTHRECORD_*
// variables (flags win) and passed down as values.
type config struct {
	Addr               string
	DB                 string
	KeyFile            string
	AccessTTL          time.Duration
	RefreshTTL         time.Duration
	SMTPAddr           string
	SMTPFrom           string
	SMTPUsername       string
	SMTPPassword       string // environment only: flags show in ps
	SMTPStartTLS       string
	AutoApproveDoctors bool
	TLSCert            string
	TLSKey             string
	MaxBodyBytes       int64
	LogLevel           string
	ShutdownTimeout    time.Duration
	// Outbox tuning; zero takes the dispatcher's defaults.
	OutboxLease          time.Duration
	OutboxAttemptTimeout time.Duration
	OutboxBackoff        time.Duration
	OutboxMaxAge         time.Duration
	SMTPConnections      int64
}

// flagSet makes a command's flag set whose defaults come from the
// environment, so an explicit flag overrides the variable.
type flagSet struct {
	*flag.FlagSet
	getenv func(string) string
	errs   []error
}

func newFlagSet(name string, getenv func(string) string, stderr io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &flagSet{FlagSet: fs, getenv: getenv}
}

func (f *flagSet) str(p *string, name, env, def, help string) {
	if v := f.getenv(env); v != "" {
		def = v
	}
	f.StringVar(p, name, def, help+" (env "+env+")")
}

func (f *flagSet) dur(p *time.Duration, name, env string, def time.Duration, help string) {
	if v := f.getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %w", env, err))
		}
		def = d
	}
	f.DurationVar(p, name, def, help+" (env "+env+")")
}

func (f *flagSet) boolean(p *bool, name, env string, def bool, help string) {
	if v := f.getenv(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %w", env, err))
		}
		def = b
	}
	f.BoolVar(p, name, def, help+" (env "+env+")")
}

func (f *flagSet) int64(p *int64, name, env string, def int64, help string) {
	if v := f.getenv(env); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %w", env, err))
		}
		def = n
	}
	f.Int64Var(p, name, def, help+" (env "+env+")")
}

// parse parses args and reports environment errors too.
func (f *flagSet) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return errors.Join(f.errs...)
}

// dbFlags are the settings every command needs to find its data.
func (f *flagSet) dbFlags(c *config) {
	f.str(&c.DB, "db", "HEALTHRECORD_DB", "./healthrecord.db", "SQLite database file")
	f.str(&c.KeyFile, "key-file", "HEALTHRECORD_KEY_FILE", "", "token signing key file (default: the database path + .keys)")
	f.str(&c.LogLevel, "log-level", "HEALTHRECORD_LOG_LEVEL", "info", "debug, info, warn or error")
}

// serveFlags are serve's settings.
func (f *flagSet) serveFlags(c *config) {
	f.dbFlags(c)
	f.str(&c.Addr, "addr", "HEALTHRECORD_ADDR", "127.0.0.1:8000", "listen address")
	f.dur(&c.AccessTTL, "access-ttl", "HEALTHRECORD_ACCESS_TTL", 5*time.Minute, "access token lifetime")
	f.dur(&c.RefreshTTL, "refresh-ttl", "HEALTHRECORD_REFRESH_TTL", 24*time.Hour, "refresh token lifetime")
	f.str(&c.SMTPAddr, "smtp-addr", "HEALTHRECORD_SMTP_ADDR", "", "SMTP server host:port (unset: no email)")
	f.str(&c.SMTPFrom, "smtp-from", "HEALTHRECORD_SMTP_FROM", "noreply@localhost", "sender address")
	f.str(&c.SMTPUsername, "smtp-username", "HEALTHRECORD_SMTP_USERNAME", "", "SMTP AUTH PLAIN user (password from HEALTHRECORD_SMTP_PASSWORD)")
	f.str(&c.SMTPStartTLS, "smtp-starttls", "HEALTHRECORD_SMTP_STARTTLS", "auto", "STARTTLS: auto, always or never")
	f.boolean(&c.AutoApproveDoctors, "auto-approve-doctors", "HEALTHRECORD_AUTO_APPROVE_DOCTORS", false, "approve doctors at registration")
	f.str(&c.TLSCert, "tls-cert", "HEALTHRECORD_TLS_CERT", "", "TLS certificate file (with --tls-key: serve HTTPS)")
	f.str(&c.TLSKey, "tls-key", "HEALTHRECORD_TLS_KEY", "", "TLS private key file")
	f.int64(&c.MaxBodyBytes, "max-body", "HEALTHRECORD_MAX_BODY", 1<<20, "largest request body in bytes")
	f.dur(&c.ShutdownTimeout, "shutdown-timeout", "HEALTHRECORD_SHUTDOWN_TIMEOUT", 15*time.Second, "graceful shutdown limit")
	f.dur(&c.OutboxLease, "outbox-lease", "HEALTHRECORD_OUTBOX_LEASE", 0, "how long a claimed event is reserved; after a crash its delivery resumes when the lease ends (default 1m)")
	f.dur(&c.OutboxAttemptTimeout, "outbox-attempt-timeout", "HEALTHRECORD_OUTBOX_ATTEMPT_TIMEOUT", 0, "limit of one delivery attempt (default 30s)")
	f.dur(&c.OutboxBackoff, "outbox-backoff", "HEALTHRECORD_OUTBOX_BACKOFF", 0, "first retry delay, doubled each attempt (default 2s)")
	f.dur(&c.OutboxMaxAge, "outbox-max-age", "HEALTHRECORD_OUTBOX_MAX_AGE", 72*time.Hour, "how long an email is retried after transient failures before it is dead")
	f.int64(&c.SMTPConnections, "smtp-connections", "HEALTHRECORD_SMTP_CONNECTIONS", 4, "most connections open to the SMTP relay at once")
	c.SMTPPassword = f.getenv("HEALTHRECORD_SMTP_PASSWORD")
}

// validateNotifications checks serve's notification settings: a zero or
// negative count or duration cannot be honoured, so it is refused, never
// replaced by the default.
func (c *config) validateNotifications() error {
	var errs []error
	if c.SMTPConnections < 1 {
		errs = append(errs, fmt.Errorf("HEALTHRECORD_SMTP_CONNECTIONS (--smtp-connections) must be at least 1, not %d", c.SMTPConnections))
	}
	if c.OutboxMaxAge <= 0 {
		errs = append(errs, fmt.Errorf("HEALTHRECORD_OUTBOX_MAX_AGE (--outbox-max-age) must be a positive duration, not %v", c.OutboxMaxAge))
	}
	return errors.Join(errs...)
}

// validate checks the settings once, before anything starts.
func (c *config) validate() error {
	var errs []error
	if c.DB == "" {
		errs = append(errs, errors.New("--db must not be empty"))
	}
	if c.KeyFile == "" {
		c.KeyFile = c.DB + ".keys"
	}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("--addr: %w", err))
		}
	}
	if c.AccessTTL < 0 || c.RefreshTTL < 0 || (c.RefreshTTL > 0 && c.AccessTTL > c.RefreshTTL) {
		errs = append(errs, errors.New("token lifetimes must be positive and --access-ttl at most --refresh-ttl"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("--max-body must be positive"))
	}
	switch strings.ToLower(c.SMTPStartTLS) {
	case "", "auto", "always", "never":
	default:
		errs = append(errs, errors.New("--smtp-starttls must be auto, always or never"))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, errors.New("--log-level must be debug, info, warn or error"))
	}
	return errors.Join(errs...)
}
