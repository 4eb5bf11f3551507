package outbox_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/outbox"
	"healthrecord/adapters/sqlite"
	"healthrecord/app"
	"healthrecord/domain"
	"healthrecord/ports"
)

// These tests run the dispatcher over the real application and a real
// SQLite file; only the mail relay is a stand-in (the SMTP conversation
// itself is tested in adapters/smtp and end to end in cmd/healthrecord).

type clock struct{}

func (clock) Now() time.Time { return time.Now().UTC() }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// mailer is a stand-in relay: send decides each message's fate; it counts
// the messages per event and the attempts in flight.
type mailer struct {
	send func(ctx context.Context, m domain.Email) error

	mu          sync.Mutex
	attempts    map[string]int
	sent        map[string]int
	inFlight    map[string]bool
	concurrent  int
	maxInFlight int
	overlaps    int // an attempt started while another of the same event ran
}

var _ ports.Mailer = (*mailer)(nil)

func newMailer(send func(ctx context.Context, m domain.Email) error) *mailer {
	return &mailer{send: send, attempts: map[string]int{}, sent: map[string]int{}, inFlight: map[string]bool{}}
}

func (m *mailer) Send(ctx context.Context, e domain.Email) error {
	m.mu.Lock()
	if m.inFlight[e.MessageID] {
		m.overlaps++
	}
	m.inFlight[e.MessageID] = true
	m.attempts[e.MessageID]++
	m.concurrent++
	m.maxInFlight = max(m.maxInFlight, m.concurrent)
	m.mu.Unlock()
	var err error
	if m.send != nil {
		err = m.send(ctx, e)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.inFlight, e.MessageID)
	m.concurrent--
	if err == nil {
		m.sent[e.MessageID]++
	}
	return err
}

func (m *mailer) stats() (sent, maxInFlight, overlaps int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.sent {
		sent += n
	}
	return sent, m.maxInFlight, m.overlaps
}

func mustOpenDB(t testing.TB, path string, migrate bool) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	if migrate {
		require.NoError(t, db.Migrate(context.Background()))
	}
	return db
}

func mustUser(t testing.TB, db *sqlite.DB, name string, role domain.Role) domain.User {
	t.Helper()
	u := domain.User{Username: name, Email: name + "@example.com", Role: role, Approved: true, Active: true,
		PasswordHash: "x", CreatedAt: time.Now().UTC()}
	require.NoError(t, db.Users().Create(context.Background(), &u))
	return u
}

// observer counts delivery outcomes per sink, as a metrics adapter would.
type observer struct {
	mu     sync.Mutex
	counts map[string]int // "sink/outcome"
}

func (o *observer) ObserveDelivery(sink, outcome string, sinceCommit time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if sinceCommit < 0 {
		outcome += "/negative-duration"
	}
	o.counts[sink+"/"+outcome]++
}

func (o *observer) snapshot() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for k, v := range o.counts {
		out[k] = v
	}
	return out
}

func newApp(db *sqlite.DB, m ports.Mailer, obs ...ports.DeliveryObserver) *app.App {
	deps := app.Deps{Store: db, Clock: clock{}, Random: randomBytes}
	if len(obs) > 0 {
		deps.Observer = obs[0]
	}
	if m != nil {
		deps.Mailer = m
	}
	return app.New(deps, app.Config{OutboxBackoff: 5 * time.Millisecond, OutboxMaxBackoff: 20 * time.Millisecond})
}

func mustDispatcher(t *testing.T, a *app.App, cfg outbox.Config) *outbox.Dispatcher {
	t.Helper()
	d, err := outbox.New(a, cfg, nil)
	require.NoError(t, err)
	return d
}

// startRun runs d until the test ends; stop cancels it and reports how
// long Run took to return.
func startRun(t *testing.T, d *outbox.Dispatcher) (stop func() time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); assert.NoError(t, d.Run(ctx)) }()
	stop = func() time.Duration {
		start := time.Now()
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return")
		}
		return time.Since(start)
	}
	t.Cleanup(func() { stop() })
	return stop
}

// assign commits n events for doctor (round robin over doctors), in one
// transaction per event as the API does.
func assign(t *testing.T, db *sqlite.DB, a *app.App, patient domain.User, doctors []domain.User, n int) []int64 {
	t.Helper()
	var ids []int64
	for i := range n {
		doc := doctors[i%len(doctors)]
		require.NoError(t, db.WithinTx(context.Background(), func(tx ports.Repos) error {
			r := domain.Record{PatientID: patient.ID, DoctorID: doc.ID, Title: "t", Content: "c",
				CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
			if err := tx.Records().Create(context.Background(), &r); err != nil {
				return err
			}
			e := domain.NewAssignmentEvent(r, time.Now(), a.Sinks()...)
			if err := tx.Outbox().Add(context.Background(), &e); err != nil {
				return err
			}
			ids = append(ids, e.ID)
			return nil
		}))
	}
	return ids
}

func notificationCount(t *testing.T, db *sqlite.DB, doctors []domain.User) int {
	t.Helper()
	n := 0
	for _, d := range doctors {
		got, err := db.Notifications().List(context.Background(), d.ID, domain.Page{Limit: domain.MaxPageSize})
		require.NoError(t, err)
		n += len(got)
	}
	return n
}

// A relay that hangs holds no in-API notification back, and shutdown is
// bounded: attempts in flight are cut after the grace and retried later.
func TestDispatcher_HungRelayDelaysNoNotification(t *testing.T) {
	db := mustOpenDB(t, filepath.Join(t.TempDir(), "hr.db"), true)
	hung := newMailer(func(ctx context.Context, _ domain.Email) error {
		<-ctx.Done()
		return ctx.Err()
	})
	a := newApp(db, hung)
	p := mustUser(t, db, "pat", domain.RolePatient)
	docs := []domain.User{mustUser(t, db, "doc", domain.RoleDoctor)}
	d := mustDispatcher(t, a, outbox.Config{Email: true, PollInterval: time.Hour, AttemptTimeout: time.Hour,
		Lease: 2 * time.Hour, ShutdownGrace: 200 * time.Millisecond})
	db.OnOutboxCommit(d.Wake)
	stop := startRun(t, d)

	for round := range 3 {
		assign(t, db, a, p, docs, 3)
		start := time.Now()
		require.Eventually(t, func() bool { return notificationCount(t, db, docs) == 3*(round+1) },
			time.Second, 5*time.Millisecond, "round %d: notifications within a second of the commit", round)
		t.Logf("round %d: notifications after %v, the relay hung", round, time.Since(start))
	}
	_, maxInFlight, _ := hung.stats()
	assert.LessOrEqual(t, maxInFlight, outbox.DefaultEmailConcurrency)

	took := stop()
	assert.Less(t, took, 5*time.Second, "shutdown waits the grace, not the attempt timeout")
	events, err := db.Outbox().List(context.Background(), ports.OutboxFilter{Sink: domain.SinkEmail, State: domain.OutboxPending}, domain.Page{Limit: 100})
	require.NoError(t, err)
	assert.Len(t, events, 9, "every email still pending, none lost")
}

// Two dispatchers, each with its own connection pools as two processes
// would have, share one SQLite file: the leases must keep them from ever
// running the same attempt, and each event gets one notification and its
// email.
func TestDispatcher_TwoDispatchersOnOneSQLiteFile(t *testing.T) {
	const total = 300
	path := filepath.Join(t.TempDir(), "healthrecord.db")
	db1 := mustOpenDB(t, path, true)
	db2 := mustOpenDB(t, path, false)
	// One event in five has its email fail on the first attempt, so
	// retries run beside first attempts.
	var mu sync.Mutex
	failed := map[string]bool{}
	relay := newMailer(func(_ context.Context, m domain.Email) error {
		var id int64
		_, _ = fmt.Sscanf(m.MessageID, "<outbox-%d@", &id)
		mu.Lock()
		defer mu.Unlock()
		if id%5 == 0 && !failed[m.MessageID] {
			failed[m.MessageID] = true
			return errors.New("421 4.7.0 busy, try later")
		}
		return nil
	})
	a1, a2 := newApp(db1, relay), newApp(db2, relay)
	p := mustUser(t, db1, "pat", domain.RolePatient)
	docs := []domain.User{mustUser(t, db1, "doc1", domain.RoleDoctor), mustUser(t, db1, "doc2", domain.RoleDoctor)}
	cfg := func(owner string) outbox.Config {
		return outbox.Config{Owner: owner, Email: true, BatchSize: 25, PollInterval: 5 * time.Millisecond}
	}
	d1, d2 := mustDispatcher(t, a1, cfg("a")), mustDispatcher(t, a2, cfg("b"))
	db1.OnOutboxCommit(d1.Wake)
	startRun(t, d1)
	startRun(t, d2)

	assign(t, db1, a1, p, docs, total)
	require.Eventually(t, func() bool {
		got, err := db1.Outbox().List(context.Background(), ports.OutboxFilter{State: domain.OutboxDelivered}, domain.Page{Limit: domain.MaxPageSize})
		return err == nil && len(got) == total
	}, 60*time.Second, 20*time.Millisecond)

	sent, maxInFlight, overlaps := relay.stats()
	assert.Zero(t, overlaps, "an attempt ran twice at once")
	assert.Equal(t, total, sent, "each email sent once")
	assert.LessOrEqual(t, maxInFlight, 2*outbox.DefaultEmailConcurrency)
	assert.Equal(t, total, notificationCount(t, db1, docs), "one notification per event")
	for id := int64(5); id <= total; id += 5 {
		e, err := db1.Outbox().Get(context.Background(), id)
		require.NoError(t, err)
		d, _ := e.Delivery(domain.SinkEmail)
		assert.Equal(t, 2, d.Attempts, "event %d failed once", id)
		assert.Empty(t, e.LastError, "a delivered event has no last error")
	}
}

// A permanent refusal is dead at once; the other sink and events go on.
func TestDispatcher_PermanentFailureIsDeadAtOnce(t *testing.T) {
	db := mustOpenDB(t, filepath.Join(t.TempDir(), "hr.db"), true)
	relay := newMailer(func(_ context.Context, m domain.Email) error {
		if m.To == "gone@example.com" {
			return ports.Permanent(errors.New("smtp: RCPT TO: 550 5.1.1 No such mailbox"))
		}
		return nil
	})
	obs := &observer{counts: map[string]int{}}
	a := newApp(db, relay, obs)
	p := mustUser(t, db, "pat", domain.RolePatient)
	gone := mustUser(t, db, "gone", domain.RoleDoctor)
	ok := mustUser(t, db, "ok", domain.RoleDoctor)
	d := mustDispatcher(t, a, outbox.Config{Email: true, PollInterval: 10 * time.Millisecond})
	db.OnOutboxCommit(d.Wake)
	startRun(t, d)
	ids := assign(t, db, a, p, []domain.User{gone, ok}, 4)

	require.Eventually(t, func() bool {
		dead, err := db.Outbox().List(context.Background(), ports.OutboxFilter{State: domain.OutboxDead}, domain.Page{Limit: 10})
		del, err2 := db.Outbox().List(context.Background(), ports.OutboxFilter{State: domain.OutboxDelivered}, domain.Page{Limit: 10})
		return err == nil && err2 == nil && len(dead) == 2 && len(del) == 2
	}, 10*time.Second, 10*time.Millisecond)
	for i, id := range ids {
		e, err := db.Outbox().Get(context.Background(), id)
		require.NoError(t, err)
		n, _ := e.Delivery(domain.SinkNotification)
		m, _ := e.Delivery(domain.SinkEmail)
		assert.Equal(t, domain.OutboxDelivered, n.State)
		if i%2 == 0 {
			assert.Equal(t, []any{domain.OutboxDead, 1}, []any{m.State, m.Attempts})
			assert.Contains(t, m.LastError, "550")
			assert.Contains(t, e.LastError, "550")
		} else {
			assert.Equal(t, domain.OutboxDelivered, m.State)
		}
	}
	// The observer hears an outcome just after its commit, so it may trail
	// what the store already shows by a moment.
	want := map[string]int{"notification/delivered": 4, "email/dead": 2, "email/delivered": 2}
	assert.Eventually(t, func() bool { return assert.ObjectsAreEqual(want, obs.snapshot()) }, 5*time.Second, 10*time.Millisecond,
		"the observer hears every attempt's outcome: %v", obs.snapshot())
}
