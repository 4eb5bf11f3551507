package smtp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// serverOpts shape the in-test SMTP server.
type serverOpts struct {
	TLS        *tls.Config // offer STARTTLS with this config
	User, Pass string      // require AUTH PLAIN with these
	RejectRcpt bool        // answer 550 to every RCPT TO
	RejectTo   string      // answer 550 to RCPT TO this address
	// IdleDrop makes the server drop a client silent for this long
	// (default 10s).
	IdleDrop time.Duration
}

// received is one message the server accepted.
type received struct {
	From     string
	To       []string
	Data     []byte
	TLS      bool   // the message came over STARTTLS
	AuthUser string // who authenticated, if anyone
}

// testServer is a real SMTP server (github.com/emersion/go-smtp) on
// 127.0.0.1 that records what it accepts.
type testServer struct {
	Addr string
	opts serverOpts

	mu   sync.Mutex
	msgs []received
	// Connections counted at the TCP level: opened in all, open now, and
	// the most open at once.
	opened, open, maxOpen int
}

// countingListener counts the server's connections.
type countingListener struct {
	net.Listener
	ts *testServer
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.ts.mu.Lock()
	l.ts.opened++
	l.ts.open++
	l.ts.maxOpen = max(l.ts.maxOpen, l.ts.open)
	l.ts.mu.Unlock()
	return &countedConn{Conn: c, ts: l.ts}, nil
}

type countedConn struct {
	net.Conn
	ts   *testServer
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.ts.mu.Lock()
		c.ts.open--
		c.ts.mu.Unlock()
	})
	return c.Conn.Close()
}

// conns reports the connections opened in all and the most open at once.
func (ts *testServer) conns() (opened, maxOpen int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.opened, ts.maxOpen
}

// startServer starts a server for the test and stops it at cleanup.
func startServer(t *testing.T, opts serverOpts) *testServer {
	t.Helper()
	ts := &testServer{opts: opts}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &session{srv: ts, msg: received{TLS: isTLS}}, nil
	}))
	srv.Domain = "localhost"
	srv.TLSConfig = opts.TLS
	// Plain-text AUTH is allowed only when no TLS is offered: the server is
	// on loopback, where net/smtp's PlainAuth agrees to send credentials.
	srv.AllowInsecureAuth = opts.TLS == nil
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	if opts.IdleDrop > 0 {
		srv.ReadTimeout = opts.IdleDrop
	}
	srv.ErrorLog = log.New(t.Output(), "smtp server: ", 0)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts.Addr = l.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(countingListener{Listener: l, ts: ts}) }()
	t.Cleanup(func() {
		_ = srv.Close()
		// Close misses a listener that Serve has not registered yet.
		_ = l.Close()
		<-done
	})
	return ts
}

// messages returns what the server accepted so far.
func (ts *testServer) messages() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.msgs...)
}

type session struct {
	srv *testServer
	msg received
}

var (
	_ gosmtp.Session     = (*session)(nil)
	_ gosmtp.AuthSession = (*session)(nil)
)

func (s *session) AuthMechanisms() []string {
	if s.srv.opts.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.srv.opts.User || pass != s.srv.opts.Pass {
			return gosmtp.ErrAuthFailed
		}
		s.msg.AuthUser = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.srv.opts.User != "" && s.msg.AuthUser == "" {
		return gosmtp.ErrAuthRequired
	}
	s.msg.From = from
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if s.srv.opts.RejectRcpt || (s.srv.opts.RejectTo != "" && to == s.srv.opts.RejectTo) {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"}
	}
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := s.msg
	m.Data = b
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, m)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset() {
	s.msg = received{TLS: s.msg.TLS, AuthUser: s.msg.AuthUser}
}

func (s *session) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "healthrecord test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// silentServer accepts connections and never says a word, so a client
// waits for its greeting until its context or timeout ends.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed at cleanup
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}
