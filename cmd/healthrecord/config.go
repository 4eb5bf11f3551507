package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"healthrecord/adapters/httpapi"
	"healthrecord/adapters/outbox"
)

// config is every setting, read once here from flags and HEALTHRECORD_*
// variables (flags win) and passed down as values.
type config struct {
	Addr               string
	DB                 string
	KeyFile            string
	AuditKeyFile       string
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
	MetricsAddr        string
	// Outbox tuning.
	OutboxLease          time.Duration
	OutboxAttemptTimeout time.Duration
	OutboxBackoff        time.Duration
	// Proxies, public URL, request rates and the storage quota.
	TrustedProxies                   []netip.Prefix
	PublicURL                        *url.URL
	RateRegister, RateUser, RateAnon httpapi.Rate
	QuotaBytes                       int64
	OutboxMaxAge                     time.Duration
	SMTPConnections                  int64
}

// flagSet is a command's flags, whose defaults come from the environment
// so that an explicit flag overrides the variable. Flags may come before or
// after the command's other arguments.
type flagSet struct {
	*flag.FlagSet
	getenv func(string) string
	errs   []error
	args   []string // the arguments that are not flags, in order
}

// newFlagSet makes the flag set of command name; use is its one-line
// synopsis, printed with the flags by -h.
func newFlagSet(name string, getenv func(string) string, stderr io.Writer, use ...string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	synopsis := "usage: healthrecord " + name + " [flags]"
	if len(use) > 0 {
		synopsis = use[0]
	}
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), synopsis)
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
	return &flagSet{FlagSet: fs, getenv: getenv}
}

// envValue gives a flag its value from env when set; a value it refuses is
// an error naming the variable.
func (f *flagSet) envValue(v flag.Value, env string) {
	if s := f.getenv(env); s != "" {
		if err := v.Set(s); err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: %v", env, s, err))
		}
	}
}

func (f *flagSet) str(p *string, name, env, def, help string) {
	if v := f.getenv(env); v != "" {
		def = v
	}
	f.StringVar(p, name, def, help+" (env "+env+")")
}

// dur is a duration flag that must be positive: zero or negative cannot be
// honoured (a token that expires at once, a timeout that fires at once).
func (f *flagSet) dur(p *time.Duration, name, env string, def time.Duration, help string) {
	*p = def
	v := (*posDuration)(p)
	f.envValue(v, env)
	f.Var(v, name, help+", a `duration` like 90s or 5m (env "+env+")")
}

func (f *flagSet) boolean(p *bool, name, env string, def bool, help string) {
	*p = def
	v := (*strictBool)(p)
	f.envValue(v, env)
	f.Var(v, name, help+" (env "+env+")")
}

// int64 is a count flag that must be positive.
func (f *flagSet) int64(p *int64, name, env string, def int64, help string) {
	*p = def
	v := (*posInt)(p)
	f.envValue(v, env)
	f.Var(v, name, help+", a whole `number` (env "+env+")")
}

// value is a setting read by parse from text (the flag, else the variable,
// else def); an error names the variable, so the operator knows which.
func (f *flagSet) value(name, env, def, help string, parse func(string) error) {
	v := def
	if e := f.getenv(env); e != "" {
		v = e
	}
	if err := parse(v); err != nil {
		f.errs = append(f.errs, fmt.Errorf("%s: %w", env, err))
	}
	f.Func(name, help+" (env "+env+", default "+strconv.Quote(def)+")", func(s string) error {
		if err := parse(s); err != nil {
			return fmt.Errorf("%w (env %s)", err, env)
		}
		return nil
	})
}

// parse parses args and reports environment errors too.
// int64OrOff is a count flag where 0 means off (a quota, a rate); only a
// negative or unparseable value is refused.
func (f *flagSet) int64OrOff(p *int64, name, env string, def int64, help string) {
	*p = def
	v := &offInt{p}
	f.envValue(v, env)
	f.Var(v, name, help+", a whole `number`, 0 = off (env "+env+")")
}

// offInt accepts whole numbers from zero up.
type offInt struct{ p *int64 }

func (n *offInt) String() string {
	if n.p == nil {
		return "0"
	}
	return strconv.FormatInt(*n.p, 10)
}
func (n *offInt) Set(s string) error {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return errors.New("must be a whole number (0 = off)")
	}
	if v < 0 {
		return errors.New("must be 0 (off) or more")
	}
	*n.p = v
	return nil
}

// posDuration accepts Go durations above zero ("90s", "5m", "1h30m").
type posDuration time.Duration

func (d *posDuration) String() string { return time.Duration(*d).String() }
func (d *posDuration) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a duration: write it like 90s, 5m or 1h30m")
	}
	if v <= 0 {
		return errors.New("must be a duration above zero, like 90s, 5m or 1h30m")
	}
	*d = posDuration(v)
	return nil
}

// strictBool accepts true/false and 1/0 only: "yes" or "on" are refused
// rather than guessed.
type strictBool bool

func (b *strictBool) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *strictBool) IsBoolFlag() bool { return true }
func (b *strictBool) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		*b = true
	case "false", "0":
		*b = false
	default:
		return errors.New("must be true or false")
	}
	return nil
}

// posInt accepts whole numbers above zero.
type posInt int64

func (n *posInt) String() string { return strconv.FormatInt(int64(*n), 10) }
func (n *posInt) Set(s string) error {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return errors.New("must be a whole number")
	}
	if v <= 0 {
		return errors.New("must be above zero")
	}
	*n = posInt(v)
	return nil
}

// parse parses args, flags and other arguments in any order ("--" ends
// the flags), and reports environment errors too. -h and --help return
// flag.ErrHelp after printing the help.
func (f *flagSet) parse(args []string) error {
	f.args = nil
	for {
		// The flag package prints its error and the whole help on a
		// mistake; the error alone, returned, says it better.
		out := f.Output()
		f.SetOutput(io.Discard)
		err := f.Parse(args)
		f.SetOutput(out)
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.Usage()
				return err
			}
			return usageError{err.Error() + "\n(healthrecord " + f.Name() + " -h lists the flags)"}
		}
		rest := f.FlagSet.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			f.args = append(f.args, rest...)
			break
		}
		f.args = append(f.args, rest[0])
		args = rest[1:]
	}
	return errors.Join(f.errs...)
}

// parseArgs parses like parse and also requires between min and max
// other arguments.
func (f *flagSet) parseArgs(args []string, minArgs, maxArgs int) error {
	if err := f.parse(args); err != nil {
		return err
	}
	if len(f.args) < minArgs || len(f.args) > maxArgs {
		var b strings.Builder
		out := f.Output()
		f.SetOutput(&b)
		f.Usage()
		f.SetOutput(out)
		if len(f.args) > maxArgs {
			return usageError{fmt.Sprintf("unexpected argument %q\n%s", f.args[maxArgs], strings.TrimSpace(b.String()))}
		}
		return usageError{strings.TrimSpace(b.String())}
	}
	return nil
}

// parseNoArgs parses like parse and refuses any other argument.
func (f *flagSet) parseNoArgs(args []string) error { return f.parseArgs(args, 0, 0) }

// Args are the arguments that are not flags.
func (f *flagSet) Args() []string { return f.args }

// NArg is len(Args()).
func (f *flagSet) NArg() int { return len(f.args) }

// Arg is Args()[i], or "" beyond them.
func (f *flagSet) Arg(i int) string {
	if i < len(f.args) {
		return f.args[i]
	}
	return ""
}

// dbFlags are the settings every command needs to find its data.
func (f *flagSet) dbFlags(c *config) {
	f.str(&c.DB, "db", "HEALTHRECORD_DB", "./healthrecord.db", "SQLite database file, or a postgres:// URL")
	f.str(&c.KeyFile, "key-file", "HEALTHRECORD_KEY_FILE", "", "token signing key file (default: the database path + .keys)")
	f.str(&c.AuditKeyFile, "audit-key-file", "HEALTHRECORD_AUDIT_KEY_FILE", "", "audit chain key file (default: the key file + .audit)")
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
	f.dur(&c.OutboxLease, "outbox-lease", "HEALTHRECORD_OUTBOX_LEASE", outbox.DefaultLease, "how long a claimed event is reserved; after a crash its delivery resumes when the lease ends")
	f.dur(&c.OutboxAttemptTimeout, "outbox-attempt-timeout", "HEALTHRECORD_OUTBOX_ATTEMPT_TIMEOUT", outbox.DefaultAttemptTimeout, "limit of one delivery attempt")
	f.dur(&c.OutboxBackoff, "outbox-backoff", "HEALTHRECORD_OUTBOX_BACKOFF", 2*time.Second, "first retry delay, doubled each attempt up to 15m")
	f.dur(&c.OutboxMaxAge, "outbox-max-age", "HEALTHRECORD_OUTBOX_MAX_AGE", 72*time.Hour, "how long an email is retried after transient failures before it is dead")
	f.int64(&c.SMTPConnections, "smtp-connections", "HEALTHRECORD_SMTP_CONNECTIONS", 4, "most connections open to the SMTP relay at once")
	f.str(&c.MetricsAddr, "metrics-addr", "HEALTHRECORD_METRICS_ADDR", "", "Prometheus /metrics listen address, apart from the API (unset: no metrics)")
	c.SMTPPassword = f.getenv("HEALTHRECORD_SMTP_PASSWORD")
	f.value("trusted-proxies", "HEALTHRECORD_TRUSTED_PROXIES", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-* headers are believed",
		func(s string) (err error) { c.TrustedProxies, err = parsePrefixes(s); return err })
	f.value("public-url", "HEALTHRECORD_PUBLIC_URL", "", "base of every absolute URL, e.g. https://records.clinic.example (unset: from the request)",
		func(s string) (err error) { c.PublicURL, err = parsePublicURL(s); return err })
	for _, r := range []struct {
		name, env, def, help string
		dst                  *httpapi.Rate
	}{
		{"rate-register", "HEALTHRECORD_RATE_REGISTER", "20/h", "registrations per client address (0: off)", &c.RateRegister},
		{"rate-user", "HEALTHRECORD_RATE_USER", "1200/min", "requests per signed-in user (0: off)", &c.RateUser},
		{"rate-anon", "HEALTHRECORD_RATE_ANON", "300/min", "requests without a token per client address (0: off)", &c.RateAnon},
	} {
		f.value(r.name, r.env, r.def, r.help, func(s string) (err error) { *r.dst, err = httpapi.ParseRate(s); return err })
	}
	f.int64OrOff(&c.QuotaBytes, "quota-bytes", "HEALTHRECORD_QUOTA_BYTES", 100<<20, "stored bytes of records and comments per patient")
}

// parsePrefixes reads a comma-separated CIDR list; a bare address is its
// own /32 or /128.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR or an address", part)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR or an address", part)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// parsePublicURL accepts an absolute http(s) URL with a host and nothing
// after its path.
func parsePublicURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("want an absolute http:// or https:// URL with a host, e.g. https://records.clinic.example")
	}
	return u, nil
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
		errs = append(errs, errors.New("--db (HEALTHRECORD_DB) must not be empty"))
	}
	if c.KeyFile == "" && isPostgres(c.DB) {
		errs = append(errs, errPostgresKeyFile)
	} else if c.KeyFile == "" {
		c.KeyFile = c.DB + ".keys"
	}
	if c.AuditKeyFile == "" {
		c.AuditKeyFile = c.KeyFile + ".audit"
	}
	for _, a := range []struct{ v, name string }{
		{c.Addr, "--addr (HEALTHRECORD_ADDR)"}, {c.MetricsAddr, "--metrics-addr (HEALTHRECORD_METRICS_ADDR)"},
	} {
		if a.v == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a.v); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("%s=%q: must be host:port, like 127.0.0.1:8000", a.name, a.v))
		}
	}
	if c.Addr != "" && c.Addr == c.MetricsAddr && !strings.HasSuffix(c.Addr, ":0") {
		errs = append(errs, errors.New("--metrics-addr must differ from --addr: metrics are never served on the API's listener"))
	}
	if c.RefreshTTL > 0 && c.AccessTTL > c.RefreshTTL {
		errs = append(errs, errors.New("--access-ttl (HEALTHRECORD_ACCESS_TTL) must be at most --refresh-ttl (HEALTHRECORD_REFRESH_TTL)"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key (HEALTHRECORD_TLS_CERT, HEALTHRECORD_TLS_KEY) go together"))
	}
	switch strings.ToLower(c.SMTPStartTLS) {
	case "", "auto", "always", "never":
	default:
		errs = append(errs, fmt.Errorf("--smtp-starttls (HEALTHRECORD_SMTP_STARTTLS)=%q: must be auto, always or never", c.SMTPStartTLS))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level (HEALTHRECORD_LOG_LEVEL)=%q: must be debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}
