package smtp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/smtp"
	"healthrecord/domain"
)

func assignmentEmail() domain.Email {
	ev := domain.OutboxEvent{ID: 42}
	doctor := domain.User{Username: "drwho", Email: "drwho@clinic.example"}
	patient := domain.User{Username: "amy"}
	return domain.AssignmentEmail(ev, doctor, patient, "healthrecord.example")
}

func mustMailer(t *testing.T, cfg smtp.Config) *smtp.Mailer {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "noreply@healthrecord.example"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	m, err := smtp.New(cfg)
	require.NoError(t, err)
	return m
}

// parse reads a received message and decodes its quoted-printable body.
func parse(t *testing.T, data []byte) (*mail.Message, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	require.NoError(t, err)
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	require.NoError(t, err)
	return msg, string(body)
}

func TestSend_DeliversTheAssignmentEmail(t *testing.T) {
	srv := startServer(t, serverOpts{})
	m := mustMailer(t, smtp.Config{Addr: srv.Addr, From: "Health Record <noreply@healthrecord.example>"})
	email := assignmentEmail()

	require.NoError(t, m.Send(context.Background(), email))

	msgs := srv.messages()
	require.Len(t, msgs, 1)
	got := msgs[0]
	assert.Equal(t, "noreply@healthrecord.example", got.From)
	assert.Equal(t, []string{"drwho@clinic.example"}, got.To)
	assert.False(t, got.TLS)
	assert.Contains(t, string(got.Data), "\r\n\r\n", "CRLF line endings")
	assert.NotContains(t, string(bytes.ReplaceAll(got.Data, []byte("\r\n"), nil)), "\n", "no bare LF")

	msg, body := parse(t, got.Data)
	assert.Equal(t, `"Health Record" <noreply@healthrecord.example>`, msg.Header.Get("From"))
	assert.Equal(t, "<drwho@clinic.example>", msg.Header.Get("To"))
	assert.Equal(t, "New Patient Assigned", msg.Header.Get("Subject"))
	assert.Equal(t, "<outbox-42@healthrecord.example>", msg.Header.Get("Message-ID"))
	assert.Equal(t, "1.0", msg.Header.Get("MIME-Version"))
	assert.Equal(t, "text/plain; charset=utf-8", msg.Header.Get("Content-Type"))
	date, err := msg.Header.Date()
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), date, time.Hour)
	assert.Equal(t, email.Body, body)
	assert.Contains(t, body, "patient amy")
}

func TestSend_BodyIsDotStuffedAndUTF8Safe(t *testing.T) {
	srv := startServer(t, serverOpts{})
	m := mustMailer(t, smtp.Config{Addr: srv.Addr})
	email := assignmentEmail()
	email.Subject = "Nouveau patient assigné"
	email.Body = "Bonjour Zoë,\r\n.\r\n..leading dots\r\n.\r\nfin\r\n"

	require.NoError(t, m.Send(context.Background(), email))

	msgs := srv.messages()
	require.Len(t, msgs, 1)
	msg, body := parse(t, msgs[0].Data)
	assert.Equal(t, email.Body, body, "a line holding one dot does not end the message")
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	require.NoError(t, err)
	assert.Equal(t, email.Subject, subject)
}

func TestSend_STARTTLS(t *testing.T) {
	serverTLS, roots := selfSigned(t)
	srv := startServer(t, serverOpts{TLS: serverTLS, User: "mailer", Pass: "s3cret-pass"})

	tests := map[string]struct {
		cfg     smtp.Config
		wantErr string
	}{
		"auto upgrades and authenticates": {
			cfg: smtp.Config{Addr: srv.Addr, TLSConfig: &tls.Config{RootCAs: roots}, Username: "mailer", Password: "s3cret-pass"},
		},
		"always upgrades": {
			cfg: smtp.Config{Addr: srv.Addr, StartTLS: smtp.StartTLSAlways, TLSConfig: &tls.Config{RootCAs: roots}, Username: "mailer", Password: "s3cret-pass"},
		},
		"an untrusted certificate is an error, not a fall-back": {
			cfg:     smtp.Config{Addr: srv.Addr, Username: "mailer", Password: "s3cret-pass"},
			wantErr: "STARTTLS",
		},
		"never: the server offers AUTH only over TLS": {
			cfg:     smtp.Config{Addr: srv.Addr, StartTLS: smtp.StartTLSNever, Username: "mailer", Password: "s3cret-pass"},
			wantErr: "AUTH",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			before := len(srv.messages())
			err := mustMailer(t, tt.cfg).Send(context.Background(), assignmentEmail())
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotContains(t, err.Error(), "s3cret-pass")
				assert.Len(t, srv.messages(), before)
				return
			}
			require.NoError(t, err)
			msgs := srv.messages()
			require.Len(t, msgs, before+1)
			assert.True(t, msgs[before].TLS, "sent over TLS")
			assert.Equal(t, "mailer", msgs[before].AuthUser)
		})
	}
}

func TestSend_AlwaysRefusesAServerWithoutSTARTTLS(t *testing.T) {
	srv := startServer(t, serverOpts{})
	err := mustMailer(t, smtp.Config{Addr: srv.Addr, StartTLS: smtp.StartTLSAlways}).Send(context.Background(), assignmentEmail())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "STARTTLS")
	assert.Empty(t, srv.messages())
}

func TestSend_AUTHPLAIN(t *testing.T) {
	// No TLS: net/smtp sends credentials in plain text only to loopback.
	srv := startServer(t, serverOpts{User: "mailer", Pass: "right-password"})
	tests := map[string]struct {
		user, pass string
		wantErr    string
	}{
		"right credentials": {user: "mailer", pass: "right-password"},
		"wrong password":    {user: "mailer", pass: "wrong-password", wantErr: "535"},
		"no credentials":    {wantErr: "MAIL FROM"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			before := len(srv.messages())
			err := mustMailer(t, smtp.Config{Addr: srv.Addr, Username: tt.user, Password: tt.pass}).
				Send(context.Background(), assignmentEmail())
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotContains(t, err.Error(), "password")
				assert.Len(t, srv.messages(), before)
				return
			}
			require.NoError(t, err)
			require.Len(t, srv.messages(), before+1)
			assert.Equal(t, "mailer", srv.messages()[before].AuthUser)
		})
	}
}

func TestSend_Failures(t *testing.T) {
	rejecting := startServer(t, serverOpts{RejectRcpt: true})
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		return addr
	}()
	silent := silentServer(t)

	tests := map[string]struct {
		cfg      smtp.Config
		ctx      func() (context.Context, context.CancelFunc)
		wantErr  string
		wantIs   error
		wantCode int // the server's reply code, kept in the error chain
	}{
		"550 on RCPT": {
			cfg:      smtp.Config{Addr: rejecting.Addr},
			wantErr:  "mailbox unavailable",
			wantCode: 550,
		},
		"connection refused": {
			cfg:     smtp.Config{Addr: closed},
			wantErr: "connect to",
		},
		"context cancelled while waiting for the greeting": {
			cfg: smtp.Config{Addr: silent},
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(50*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantIs: context.Canceled,
		},
		"context already cancelled": {
			cfg: smtp.Config{Addr: rejecting.Addr},
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			wantIs: context.Canceled,
		},
		"timeout": {
			cfg:    smtp.Config{Addr: silent, Timeout: 50 * time.Millisecond},
			wantIs: context.DeadlineExceeded,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			err := mustMailer(t, tt.cfg).Send(ctx, assignmentEmail())
			require.Error(t, err)
			if tt.wantErr != "" {
				assert.Contains(t, err.Error(), tt.wantErr)
			}
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			if tt.wantCode != 0 {
				var reply *textproto.Error
				require.ErrorAs(t, err, &reply)
				assert.Equal(t, tt.wantCode, reply.Code)
			}
		})
	}
	assert.Empty(t, rejecting.messages())
}

func TestSend_RefusesHeaderInjection(t *testing.T) {
	srv := startServer(t, serverOpts{})
	m := mustMailer(t, smtp.Config{Addr: srv.Addr})
	tests := map[string]func(e *domain.Email){
		"to":             func(e *domain.Email) { e.To = "drwho@clinic.example\r\nBcc: all@evil.example" },
		"subject":        func(e *domain.Email) { e.Subject = "Hi\nBcc: all@evil.example" },
		"message id":     func(e *domain.Email) { e.MessageID = "<x@y>\r\nX-Evil: 1" },
		"not an address": func(e *domain.Email) { e.To = "not an address" },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			email := assignmentEmail()
			mutate(&email)
			err := m.Send(context.Background(), email)
			require.Error(t, err)
			assert.Equal(t, domain.EInvalid, domain.ErrorCode(err))
		})
	}
	assert.Empty(t, srv.messages())
}

func TestNew_Refuses(t *testing.T) {
	tests := map[string]smtp.Config{
		"no port":          {Addr: "mail.example", From: "a@b.example"},
		"bad StartTLS":     {Addr: "mail.example:25", From: "a@b.example", StartTLS: "sometimes"},
		"From injection":   {Addr: "mail.example:25", From: "a@b.example\r\nBcc: x@y.example"},
		"From not address": {Addr: "mail.example:25", From: "nobody"},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := smtp.New(cfg)
			assert.Error(t, err)
		})
	}
	_, err := smtp.New(smtp.Config{Addr: "mail.example:587", From: "a@b.example"})
	assert.NoError(t, err)
}
