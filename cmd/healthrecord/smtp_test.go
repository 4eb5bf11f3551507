package main

import (
	"bytes"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// mailbox is a real SMTP server (go-smtp) on loopback that keeps what it
// accepts. Recipients in reject get a permanent 550.
type mailbox struct {
	Addr   string
	reject map[string]bool

	mu   sync.Mutex
	msgs []*mail.Message
	raw  []string
	// TCP connections: opened in all, open now, most open at once.
	opened, open, maxOpen int
	// held, while not nil, keeps every MAIL command waiting: a stalled
	// relay (hold).
	held chan struct{}
}

// hold stalls the relay: every message waits at MAIL until release is
// called.
func (mb *mailbox) hold() (release func()) {
	ch := make(chan struct{})
	mb.mu.Lock()
	mb.held = ch
	mb.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			mb.mu.Lock()
			mb.held = nil
			mb.mu.Unlock()
			close(ch)
		})
	}
}

// conns reports the connections opened in all and the most open at once.
func (mb *mailbox) conns() (opened, maxOpen int) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return mb.opened, mb.maxOpen
}

// countingListener counts the mailbox's connections.
type countingListener struct {
	net.Listener
	mb *mailbox
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mb.mu.Lock()
	l.mb.opened++
	l.mb.open++
	l.mb.maxOpen = max(l.mb.maxOpen, l.mb.open)
	l.mb.mu.Unlock()
	return &countedConn{Conn: c, mb: l.mb}, nil
}

type countedConn struct {
	net.Conn
	mb   *mailbox
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.mb.mu.Lock()
		c.mb.open--
		c.mb.mu.Unlock()
	})
	return c.Conn.Close()
}

// startSilentRelay accepts connections on a free loopback address and
// never says a word: a hung relay, or a firewall that swallows packets.
func startSilentRelay(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
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

// freePort reserves a loopback address nobody listens on (yet).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// startMailbox serves SMTP on addr until the test ends.
func startMailbox(t *testing.T, addr string, reject ...string) *mailbox {
	t.Helper()
	mb := newMailbox(addr, reject...)
	t.Cleanup(mb.serve(t))
	return mb
}

func newMailbox(addr string, reject ...string) *mailbox {
	mb := &mailbox{Addr: addr, reject: map[string]bool{}}
	for _, r := range reject {
		mb.reject[r] = true
	}
	return mb
}

// serve listens on mb.Addr (waiting for it to be free) until stop is called.
func (mb *mailbox) serve(t *testing.T) (stop func()) {
	t.Helper()
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &mailSession{mb: mb}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	var l net.Listener
	var err error
	require.Eventually(t, func() bool { l, err = net.Listen("tcp", mb.Addr); return err == nil }, 5*time.Second, 50*time.Millisecond)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(countingListener{Listener: l, mb: mb}) }()
	// Closing the listener too: go-smtp's Close misses a listener that Serve
	// has not registered yet, and Serve would then wait on Accept forever.
	return func() { _ = srv.Close(); _ = l.Close(); <-done }
}

// byMessageID counts accepted messages per Message-ID.
func (mb *mailbox) byMessageID() map[string]int {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	out := map[string]int{}
	for _, m := range mb.msgs {
		out[m.Header.Get("Message-Id")]++
	}
	return out
}

func (mb *mailbox) all() ([]*mail.Message, []string) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return append([]*mail.Message(nil), mb.msgs...), append([]string(nil), mb.raw...)
}

type mailSession struct {
	mb *mailbox
	to []string
}

func (s *mailSession) Reset()        { s.to = nil }
func (s *mailSession) Logout() error { return nil }
func (s *mailSession) Mail(string, *gosmtp.MailOptions) error {
	s.mb.mu.Lock()
	held := s.mb.held
	s.mb.mu.Unlock()
	if held != nil {
		<-held
	}
	return nil
}
func (s *mailSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if s.mb.reject[to] {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	s.to = append(s.to, to)
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(m.Body)
	m.Body = strings.NewReader(string(body))
	s.mb.mu.Lock()
	s.mb.msgs = append(s.mb.msgs, m)
	s.mb.raw = append(s.mb.raw, string(raw))
	s.mb.mu.Unlock()
	return nil
}
