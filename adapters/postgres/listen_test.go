package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/postgres"
	"healthrecord/domain"
	"healthrecord/ports"
)

// heard counts the Remote hooks' calls, one channel per hook.
type heard struct{ outbox, revoked, notified chan struct{} }

func newHeard() heard {
	return heard{make(chan struct{}, 100), make(chan struct{}, 100), make(chan struct{}, 100)}
}

func (h heard) remote() postgres.Remote {
	send := func(ch chan struct{}) func() { return func() { ch <- struct{}{} } }
	return postgres.Remote{Outbox: send(h.outbox), Revoked: send(h.revoked), Notified: send(h.notified)}
}

func (h heard) drain() {
	for _, ch := range []chan struct{}{h.outbox, h.revoked, h.notified} {
		for len(ch) > 0 {
			<-ch
		}
	}
}

// hear waits (generously) for one call of the hook ch stands for.
func hear(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s hook call within 30s", what)
	}
}

// listen runs db.Listen until the test ends and returns what it hears,
// once the first (re)connect has called every hook: it listens from then.
func listen(t *testing.T, db *postgres.DB) heard {
	t.Helper()
	h := newHeard()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); db.Listen(ctx, h.remote()) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("Listen did not return within 30s of its context ending")
		}
	})
	hear(t, h.outbox, "first outbox")
	hear(t, h.revoked, "first revoked")
	hear(t, h.notified, "first notified")
	return h
}

// twoInstances opens two stores on one migrated schema, the first
// logging into log when it is not nil.
func twoInstances(t *testing.T, log *slog.Logger) (a, b *postgres.DB, url string) {
	t.Helper()
	url = mustTestDB(t).mustSchema(t)
	var opts []postgres.Option
	if log != nil {
		opts = append(opts, postgres.WithLogger(log))
	}
	a, err := postgres.Open(t.Context(), url, opts...)
	require.NoError(t, err)
	t.Cleanup(a.Close)
	require.NoError(t, a.Migrate(t.Context()))
	return a, mustOpenURL(t, url), url
}

// addEvent commits an assignment event for a new record of p's.
func addEvent(t *testing.T, db *postgres.DB, p, doc domain.User) domain.OutboxEvent {
	t.Helper()
	rec := domain.Record{PatientID: p.ID, DoctorID: doc.ID, Title: "t", Content: "c", CreatedAt: t0, UpdatedAt: t0}
	var e domain.OutboxEvent
	require.NoError(t, db.WithinTx(t.Context(), func(tx ports.Repos) error {
		if err := tx.Records().Create(t.Context(), &rec); err != nil {
			return err
		}
		e = domain.NewAssignmentEvent(rec, t0, domain.SinkNotification, domain.SinkEmail)
		return tx.Outbox().Add(t.Context(), &e)
	}))
	return e
}

func newSession(t *testing.T, db *postgres.DB, u domain.User, id string) {
	t.Helper()
	require.NoError(t, db.Sessions().Create(t.Context(), domain.Session{ID: id, UserID: u.ID, CreatedAt: t0,
		ExpiresAt: time.Now().Add(time.Hour)}))
}

// One instance hears each kind of change another commits, and neither its
// own commits nor a rolled-back transaction.
func TestListen_HearsOtherInstancesCommits(t *testing.T) {
	a, b, _ := twoInstances(t, nil)
	p, doc := mustUser(t, b, "p", domain.RolePatient), mustUser(t, b, "d", domain.RoleDoctor)
	newSession(t, b, p, "s1")
	newSession(t, b, p, "s2")
	newSession(t, b, p, "s3")
	h := listen(t, a)

	e := addEvent(t, b, p, doc)
	hear(t, h.outbox, "outbox")

	require.NoError(t, b.Sessions().Revoke(t.Context(), "s1", t0))
	hear(t, h.revoked, "revoked (one sign-in)")
	require.NoError(t, b.Sessions().RevokeUser(t.Context(), p.ID, "", time.Now()))
	hear(t, h.revoked, "revoked (a user's sign-ins)")

	n := domain.Notification{UserID: doc.ID, Kind: e.Kind, RecordID: e.RecordID, PatientID: e.PatientID, EventID: e.ID, CreatedAt: t0}
	created, err := b.Notifications().Create(t.Context(), &n)
	require.NoError(t, err)
	require.True(t, created)
	hear(t, h.notified, "notified")

	// Its own commits, and what another rolls back, call no hook. The
	// notifications of one listener arrive in commit order, so once the
	// last commit is heard, anything of the earlier ones would be too.
	addEvent(t, a, p, doc)
	newSession(t, a, p, "s4")
	require.NoError(t, a.Sessions().Revoke(t.Context(), "s4", t0))
	rollback := errors.New("rolled back")
	require.ErrorIs(t, b.WithinTx(t.Context(), func(tx ports.Repos) error {
		ev := domain.NewAssignmentEvent(domain.Record{ID: e.RecordID, PatientID: p.ID, DoctorID: doc.ID}, t0, domain.SinkEmail)
		if err := tx.Outbox().Add(t.Context(), &ev); err != nil {
			return err
		}
		return rollback
	}), rollback)
	newSession(t, b, p, "s5")
	require.NoError(t, b.Sessions().Revoke(t.Context(), "s5", t0))
	hear(t, h.revoked, "revoked (the last commit)")
	assert.Zero(t, len(h.outbox), "neither its own outbox commit nor a rolled-back one is heard")
	assert.Zero(t, len(h.revoked), "its own revocation is not heard")
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// listenerPIDs are the backends of listening connections on the database.
func listenerPIDs(t *testing.T, admin *pgx.Conn) []int32 {
	t.Helper()
	rows, err := admin.Query(t.Context(),
		`SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, postgres.ListenAppName)
	require.NoError(t, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	return pids
}

// The listening connection killed by the server (pg_terminate_backend):
// Listen reconnects on its own, says so in the log, calls every hook once
// for what it may have missed, and hears later commits again.
func TestListen_ReconnectsAfterItsConnectionIsKilled(t *testing.T) {
	var logs syncBuffer
	a, b, url := twoInstances(t, slog.New(slog.NewJSONHandler(&logs, nil)))
	p, doc := mustUser(t, b, "p", domain.RolePatient), mustUser(t, b, "d", domain.RoleDoctor)
	h := listen(t, a)
	admin, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer admin.Close(context.Background())

	for round := range 2 {
		pids := listenerPIDs(t, admin)
		require.Len(t, pids, 1, "round %d: one listening connection", round)
		var killed bool
		require.NoError(t, admin.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, pids[0]).Scan(&killed))
		require.True(t, killed)

		// Every hook is called once more after the reconnect.
		hear(t, h.outbox, "outbox after reconnect")
		hear(t, h.revoked, "revoked after reconnect")
		hear(t, h.notified, "notified after reconnect")
		h.drain()
		now := listenerPIDs(t, admin)
		require.Len(t, now, 1)
		assert.NotEqual(t, pids[0], now[0], "a new connection")

		addEvent(t, b, p, doc)
		hear(t, h.outbox, fmt.Sprintf("outbox after reconnect %d", round+1))
	}
	assert.Contains(t, logs.String(), "reconnecting")
}

// blackhole forwards TCP connections to upstream until cut: from then on
// the connections open at that moment stay open but carry nothing either
// way, as when a network drops packets without a word. Connections made
// after the cut work.
type blackhole struct {
	addr     string
	upstream string

	mu   sync.Mutex
	cuts []chan struct{} // one per connection, closed when it is cut
}

func startBlackhole(t *testing.T, upstream string) *blackhole {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &blackhole{addr: l.Addr().String(), upstream: upstream}
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			down, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = down.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, down, up)
			mu.Unlock()
			cut := make(chan struct{})
			b.mu.Lock()
			b.cuts = append(b.cuts, cut)
			b.mu.Unlock()
			go forwardUntil(cut, up, down)
			go forwardUntil(cut, down, up)
		}
	}()
	return b
}

// forwardUntil copies from src to dst until cut, then reads and drops.
func forwardUntil(cut chan struct{}, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		select {
		case <-cut:
			continue
		default:
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// cut silences every connection open now.
func (b *blackhole) cut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.cuts {
		close(c)
	}
	b.cuts = nil
}

// A listening connection that goes silent (no error, no close) is found
// out by the keepalive check and replaced.
func TestListen_ReplacesASilentConnection(t *testing.T) {
	url := mustTestDB(t).mustSchema(t)
	u, err := neturl.Parse(url)
	require.NoError(t, err)
	hole := startBlackhole(t, u.Host)
	u.Host = hole.addr
	var logs syncBuffer
	a, err := postgres.Open(t.Context(), u.String(), postgres.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	require.NoError(t, err)
	t.Cleanup(a.Close)
	require.NoError(t, a.Migrate(t.Context()))
	a.SetListenKeepalive(100 * time.Millisecond)
	b := mustOpenURL(t, url)
	p, doc := mustUser(t, b, "p", domain.RolePatient), mustUser(t, b, "d", domain.RoleDoctor)
	h := listen(t, a)

	hole.cut()
	// Found out by the keepalive, reconnected: every hook once more.
	hear(t, h.outbox, "outbox after reconnect")
	hear(t, h.revoked, "revoked after reconnect")
	hear(t, h.notified, "notified after reconnect")
	h.drain()
	addEvent(t, b, p, doc)
	hear(t, h.outbox, "outbox on the new connection")
	assert.Contains(t, logs.String(), "keepalive")
}
