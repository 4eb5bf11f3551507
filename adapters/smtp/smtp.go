// Package smtp sends email through an SMTP relay with the standard library's
// client: STARTTLS, AUTH PLAIN, one message per connection.
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
	"os"
	"strings"
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

// DefaultTimeout bounds one Send when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

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
	// Timeout bounds one Send, connection included.
	Timeout time.Duration
}

// Mailer sends each email over its own SMTP connection.
type Mailer struct {
	cfg  Config
	host string        // Addr's host: the TLS server name and PlainAuth's host
	from *mail.Address // parsed Config.From
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
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
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
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("smtp: Timeout %v < 0", cfg.Timeout)
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
	return &Mailer{cfg: cfg, host: host, from: from}, nil
}

// Send delivers m in one SMTP conversation. Errors carry the server's reply
// code and text (never the password); the caller retries them.
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
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", ml.cfg.Addr)
	if err != nil {
		return fmt.Errorf("smtp: connect to %s: %w", ml.cfg.Addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// net/smtp does not watch ctx: closing the connection when ctx ends
	// unblocks whatever read or write is waiting.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	err = ml.converse(conn, to.Address, msg)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", context.Cause(ctx), err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection's deadline is ctx's; it may fire a moment before
		// ctx's own timer does.
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	default:
		return err
	}
}

// converse runs the conversation on conn: EHLO, STARTTLS, AUTH, MAIL, RCPT,
// DATA, QUIT.
func (ml *Mailer) converse(conn net.Conn, rcpt string, msg []byte) error {
	c, err := smtp.NewClient(conn, ml.host)
	if err != nil {
		return fmt.Errorf("smtp: greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(ml.cfg.HeloHost); err != nil {
		return fmt.Errorf("smtp: EHLO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok && ml.cfg.StartTLS != StartTLSNever {
		// A failed handshake is an error, never a silent fall-back to
		// plain text that an attacker could force.
		if err := c.StartTLS(ml.cfg.TLSConfig); err != nil {
			return fmt.Errorf("smtp: STARTTLS: %w", err)
		}
	} else if ml.cfg.StartTLS == StartTLSAlways {
		return errors.New("smtp: the server does not offer STARTTLS and StartTLS is always")
	}
	if ml.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("smtp: the server does not offer AUTH")
		}
		// PlainAuth itself refuses to send credentials in plain text to a
		// server other than localhost.
		if err := c.Auth(smtp.PlainAuth("", ml.cfg.Username, ml.cfg.Password, ml.host)); err != nil {
			return fmt.Errorf("smtp: AUTH: %w", err)
		}
	}
	if err := c.Mail(ml.from.Address); err != nil {
		return fmt.Errorf("smtp: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		return fmt.Errorf("smtp: RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp: DATA: %w", err)
	}
	// The DATA writer dot-stuffs lines and ends the message.
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp: writing message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp: end of DATA: %w", err)
	}
	// The message is accepted; a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
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
