// Package smtp sends email through an SMTP relay with the standard library's
// client over a small pool of reused connections: STARTTLS, AUTH PLAIN,
// RSET between messages, every network step bounded in time.
package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"time"

	"healthrecord/domain"
	"healthrecord/ports"
)

// STARTTLS policies.
const (
	StartTLSAuto   = "auto"   // upgrade when the server offers it
	StartTLSAlways = "always" // refuse to send without TLS
	StartTLSNever  = "never"  // stay in plain text (a local relay)
)

// Defaults of the Config fields left zero.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultConnections    = 4
	DefaultDialTimeout    = 5 * time.Second
	DefaultCommandTimeout = 10 * time.Second
	DefaultDataTimeout    = 20 * time.Second
	DefaultIdleTimeout    = 30 * time.Second
)

// Config says where and how to send.
type Config struct {
	// Addr is the relay's host:port.
	Addr string
	// From is the sender, as an address or "Name <address>".
	From string
	// HeloHost is the name given in EHLO; default "localhost".
	HeloHost string
	// StartTLS is StartTLSAuto (default), StartTLSAlways or StartTLSNever.
	StartTLS string
	// Username and Password, when Username is set, authenticate with AUTH
	// PLAIN, which is only sent over TLS or to a loopback server.
	Username, Password string
	// TLSConfig is used for STARTTLS; nil means the system roots and
	// Addr's host as the server name.
	TLSConfig *tls.Config
	// Timeout bounds one Send, waiting for a connection included.
	Timeout time.Duration
	// Connections bounds the connections open to the relay at once.
	Connections int
	// DialTimeout bounds opening a TCP connection.
	DialTimeout time.Duration
	// CommandTimeout bounds the greeting and the reply to each command
	// (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, RSET).
	CommandTimeout time.Duration
	// DataTimeout bounds sending a message's content and reading the
	// reply to its end.
	DataTimeout time.Duration
	// IdleTimeout is how long an unused connection is kept for reuse;
	// relays drop idle clients, so an older one is closed, not tried.
	IdleTimeout time.Duration
}

// Mailer sends email over at most Config.Connections connections, each
// reused for many messages.
type Mailer struct {
	cfg  Config
	host string        // Addr's host: the TLS server name and PlainAuth's host
	from *mail.Address // parsed Config.From

	// slots holds one token per connection in use or being opened; with
	// the idle ones, never more than Connections are open (a Send dials
	// only when no idle connection is left).
	slots chan struct{}
	mu    sync.Mutex
	idle  []*conn // most recently used last
}

// conn is one open SMTP session, greeted and authenticated.
type conn struct {
	nc       net.Conn // the TCP connection: deadlines and Close apply under TLS too
	c        *smtp.Client
	lastUsed time.Time
}

var _ ports.Mailer = (*Mailer)(nil)

// New checks cfg and returns a Mailer; it does not connect.
func New(cfg Config) (*Mailer, error) {
	if cfg.HeloHost == "" {
		cfg.HeloHost = "localhost"
	}
	if cfg.StartTLS == "" {
		cfg.StartTLS = StartTLSAuto
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.Timeout, DefaultTimeout}, {&cfg.DialTimeout, DefaultDialTimeout}, {&cfg.CommandTimeout, DefaultCommandTimeout},
		{&cfg.DataTimeout, DefaultDataTimeout}, {&cfg.IdleTimeout, DefaultIdleTimeout}} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return nil, fmt.Errorf("smtp: a timeout is negative: %v", *d.v)
		}
	}
	if cfg.Connections == 0 {
		cfg.Connections = DefaultConnections
	}
	if cfg.Connections < 0 {
		return nil, fmt.Errorf("smtp: Connections %d < 1", cfg.Connections)
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("smtp: address %q: %w", cfg.Addr, err)
	}
	switch cfg.StartTLS {
	case StartTLSAuto, StartTLSAlways, StartTLSNever:
	default:
		return nil, fmt.Errorf("smtp: StartTLS %q is not auto, always or never", cfg.StartTLS)
	}
	if err := noLineBreaks("HeloHost", cfg.HeloHost); err != nil {
		return nil, err
	}
	if err := noLineBreaks("From", cfg.From); err != nil {
		return nil, err
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp: From %q: %w", cfg.From, err)
	}
	tc := &tls.Config{}
	if cfg.TLSConfig != nil {
		tc = cfg.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	cfg.TLSConfig = tc
	return &Mailer{cfg: cfg, host: host, from: from, slots: make(chan struct{}, cfg.Connections)}, nil
}

// Send delivers m over a pooled connection. Errors carry the server's
// reply code and text (never the password); a 5xx reply to the message's
// MAIL, RCPT or DATA is permanent (ports.IsPermanent), anything else is
// transient.
func (ml *Mailer) Send(ctx context.Context, m domain.Email) error {
	for _, h := range [][2]string{{"To", m.To}, {"Subject", m.Subject}, {"Message-ID", m.MessageID}} {
		if err := noLineBreaks(h[0], h[1]); err != nil {
			return err
		}
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return domain.Errorf(domain.EInvalid, "smtp: recipient is not an address: %v", err)
	}
	msg, err := message(ml.from, to, m, time.Now())
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, ml.cfg.Timeout)
	defer cancel()
	select {
	case ml.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("smtp: waiting for a connection: %w", context.Cause(ctx))
	}
	defer func() { <-ml.slots }()

	cn, reused, err := ml.get(ctx)
	if err != nil {
		return ml.explain(ctx, err)
	}
	// net/smtp does not watch ctx: closing the connection when ctx ends
	// unblocks whatever read or write is waiting.
	stop := context.AfterFunc(ctx, func() { _ = cn.nc.Close() })
	err = ml.transaction(ctx, cn, to.Address, msg)
	if !stop() || err != nil {
		// After an error the session's state is unknown: a new connection
		// is cheaper than finding out.
		_ = cn.nc.Close()
		if err != nil && reused && isBroken(err) {
			err = fmt.Errorf("%w (on a reused connection)", err)
		}
		return ml.explain(ctx, err)
	}
	cn.lastUsed = time.Now()
	ml.put(cn)
	return nil
}

// explain makes a timeout or a cancellation say so.
func (ml *Mailer) explain(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", context.Cause(ctx), err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}

// isBroken reports a connection-level failure rather than a reply.
func isBroken(err error) bool {
	var te *textproto.Error
	return !errors.As(err, &te)
}

// get returns an idle connection, checked with RSET, or a new one.
func (ml *Mailer) get(ctx context.Context) (*conn, bool, error) {
	for {
		cn := ml.takeIdle()
		if cn == nil {
			break
		}
		// RSET clears any state left by the last message and proves the
		// relay still holds the session; a stale one is closed and the
		// next tried.
		stop := context.AfterFunc(ctx, func() { _ = cn.nc.Close() })
		err := ml.step(ctx, cn, ml.cfg.CommandTimeout, func() error { return cn.c.Reset() })
		if stop() && err == nil {
			return cn, true, nil
		}
		_ = cn.nc.Close()
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
	}
	cn, err := ml.dial(ctx)
	return cn, false, err
}

// takeIdle pops the most recently used idle connection, closing those
// idle for too long.
func (ml *Mailer) takeIdle() *conn {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	for len(ml.idle) > 0 {
		cn := ml.idle[len(ml.idle)-1]
		ml.idle = ml.idle[:len(ml.idle)-1]
		if time.Since(cn.lastUsed) < ml.cfg.IdleTimeout {
			return cn
		}
		_ = cn.nc.Close()
	}
	return nil
}

func (ml *Mailer) put(cn *conn) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	ml.idle = append(ml.idle, cn)
}

// Close closes the idle connections, saying QUIT briefly first.
func (ml *Mailer) Close() error {
	ml.mu.Lock()
	idle := ml.idle
	ml.idle = nil
	ml.mu.Unlock()
	for _, cn := range idle {
		_ = cn.nc.SetDeadline(time.Now().Add(time.Second))
		_ = cn.c.Quit()
		_ = cn.nc.Close()
	}
	return nil
}

// step runs one network step with a deadline of d from now, or ctx's if
// sooner.
func (ml *Mailer) step(ctx context.Context, cn *conn, d time.Duration, fn func() error) error {
	dl := time.Now().Add(d)
	if cd, ok := ctx.Deadline(); ok && cd.Before(dl) {
		dl = cd
	}
	if err := cn.nc.SetDeadline(dl); err != nil {
		return err
	}
	return fn()
}

// dial opens and prepares a connection: greeting, EHLO, STARTTLS, AUTH.
func (ml *Mailer) dial(ctx context.Context) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, ml.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", ml.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("smtp: connect to %s: %w", ml.cfg.Addr, err)
	}
	cn := &conn{nc: nc}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	err = ml.hello(ctx, cn)
	if !stop() && err == nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return cn, nil
}

func (ml *Mailer) hello(ctx context.Context, cn *conn) error {
	cmd := ml.cfg.CommandTimeout
	if err := ml.step(ctx, cn, cmd, func() (err error) {
		cn.c, err = smtp.NewClient(cn.nc, ml.host)
		return err
	}); err != nil {
		return fmt.Errorf("smtp: greeting: %w", err)
	}
	if err := ml.step(ctx, cn, cmd, func() error { return cn.c.Hello(ml.cfg.HeloHost) }); err != nil {
		return fmt.Errorf("smtp: EHLO: %w", err)
	}
	if ok, _ := cn.c.Extension("STARTTLS"); ok && ml.cfg.StartTLS != StartTLSNever {
		// A failed handshake is an error, never a silent fall-back to
		// plain text that an attacker could force.
		if err := ml.step(ctx, cn, cmd, func() error { return cn.c.StartTLS(ml.cfg.TLSConfig) }); err != nil {
			return fmt.Errorf("smtp: STARTTLS: %w", err)
		}
	} else if ml.cfg.StartTLS == StartTLSAlways {
		return errors.New("smtp: the server does not offer STARTTLS and StartTLS is always")
	}
	if ml.cfg.Username != "" {
		if ok, _ := cn.c.Extension("AUTH"); !ok {
			return errors.New("smtp: the server does not offer AUTH")
		}
		// PlainAuth itself refuses to send credentials in plain text to a
		// server other than localhost.
		if err := ml.step(ctx, cn, cmd, func() error {
			return cn.c.Auth(smtp.PlainAuth("", ml.cfg.Username, ml.cfg.Password, ml.host))
		}); err != nil {
			return fmt.Errorf("smtp: AUTH: %w", err)
		}
	}
	return nil
}

// transaction sends one message: MAIL, RCPT, DATA. A 5xx reply is the
// relay refusing this message for good.
func (ml *Mailer) transaction(ctx context.Context, cn *conn, rcpt string, msg []byte) error {
	cmd := ml.cfg.CommandTimeout
	if err := ml.step(ctx, cn, cmd, func() error { return cn.c.Mail(ml.from.Address) }); err != nil {
		return refusal("MAIL FROM", err)
	}
	if err := ml.step(ctx, cn, cmd, func() error { return cn.c.Rcpt(rcpt) }); err != nil {
		return refusal("RCPT TO", err)
	}
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	if err := ml.step(ctx, cn, cmd, func() (err error) { w, err = cn.c.Data(); return err }); err != nil {
		return refusal("DATA", err)
	}
	// The DATA writer dot-stuffs lines and ends the message; its Close
	// reads the relay's verdict.
	return refusal("end of DATA", ml.step(ctx, cn, ml.cfg.DataTimeout, func() error {
		if _, err := w.Write(msg); err != nil {
			return err
		}
		return w.Close()
	}))
}

// refusal names the step of err and marks a 5xx reply permanent.
func refusal(step string, err error) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("smtp: %s: %w", step, err)
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return ports.Permanent(err)
	}
	return err
}

// message renders m as an RFC 5322 message with CRLF line endings and a
// quoted-printable UTF-8 body, safe whatever the body's characters.
func message(from, to *mail.Address, m domain.Email, date time.Time) ([]byte, error) {
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Date", date.Format(time.RFC1123Z))
	if m.MessageID != "" {
		header("Message-ID", m.MessageID)
	}
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(m.Body)); err != nil {
		return nil, fmt.Errorf("smtp: encoding body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("smtp: encoding body: %w", err)
	}
	return b.Bytes(), nil
}

// noLineBreaks refuses a header value that would start a new header line.
func noLineBreaks(field, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return domain.Errorf(domain.EInvalid, "smtp: %s contains a line break", field)
	}
	return nil
}
