package postgres_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/postgres"
	"healthrecord/domain"
	"healthrecord/internal/pgtest"
	"healthrecord/ports"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// mustUser creates an active, approved account with role.
func mustUser(t *testing.T, s ports.Store, name string, role domain.Role) domain.User {
	t.Helper()
	u := domain.User{Username: name, Email: name + "@example.com", Role: role, Approved: true, Active: true,
		PasswordHash: "h", CreatedAt: t0}
	require.NoError(t, s.Users().Create(t.Context(), &u))
	return u
}

// recordingTB hears whether a test was failed or skipped.
type recordingTB struct {
	testing.TB
	failed, skipped string
}

func (r *recordingTB) Helper()               {}
func (r *recordingTB) Fatal(args ...any)     { r.failed = fmt.Sprint(args...); runtime.Goexit() }
func (r *recordingTB) Skip(args ...any)      { r.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (r *recordingTB) Errorf(string, ...any) { panic("unexpected") }

func TestUnreachablePostgres_FailsInCISkipsElsewhere(t *testing.T) {
	run := func(ci bool) *recordingTB {
		r := &recordingTB{TB: t}
		done := make(chan struct{})
		go func() { defer close(done); pgtest.Unreachable(r, ci, "PostgreSQL unreachable at x") }()
		<-done
		return r
	}
	ci := run(true)
	assert.Equal(t, "PostgreSQL unreachable at x", ci.failed)
	assert.Empty(t, ci.skipped)
	local := run(false)
	assert.Empty(t, local.failed)
	assert.Equal(t, "PostgreSQL unreachable at x", local.skipped, "the skip says why")
}

func TestMigrations_StatusAndReady(t *testing.T) {
	d := mustTestDB(t)
	db := mustOpenURL(t, d.mustSchema(t))
	ctx := t.Context()
	require.Error(t, db.Ready(ctx), "not ready before Migrate")
	st, err := db.MigrationStatus(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, st)
	assert.Equal(t, postgres.MigrationStatus{Version: 1, Name: "00001_init.sql"}, st[0])

	applied, err := db.ApplyMigrations(ctx)
	require.NoError(t, err)
	assert.Len(t, applied, len(st))
	require.NoError(t, db.Ready(ctx))
	st, err = db.MigrationStatus(ctx)
	require.NoError(t, err)
	for _, m := range st {
		assert.True(t, m.Applied, m.Name)
		assert.False(t, m.AppliedAt.IsZero(), m.Name)
	}
	applied, err = db.ApplyMigrations(ctx)
	require.NoError(t, err)
	assert.Empty(t, applied, "migrating again does nothing")
}

func TestOpen_RefusesABadURLWithoutEchoingIt(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://u:s3cret@[::1")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}

// The audit chain is keyed under a key kept outside the database: a
// store holding another key finds every entry broken.
func TestAuditKey_VerifiesOnlyUnderItsKey(t *testing.T) {
	d := mustTestDB(t)
	url := d.mustSchema(t)
	a := mustOpenURL(t, url)
	require.NoError(t, a.Migrate(t.Context()))
	require.NoError(t, a.UseAuditKey(t.Context(), domain.AuditKey(strings.Repeat("k", 32)), true))
	e := domain.AuditEntry{At: t0, ActorID: 1, ActorRole: domain.RoleAdmin, Action: domain.ActionUserApprove, Outcome: domain.OutcomeAllowed}
	require.NoError(t, a.Audit().Append(t.Context(), e))
	c, err := a.Audit().Verify(t.Context(), nil)
	require.NoError(t, err)
	assert.Equal(t, domain.AuditCheck{Entries: 1}, c)

	b := mustOpenURL(t, url)
	require.NoError(t, b.UseAuditKey(t.Context(), domain.AuditKey(strings.Repeat("x", 32)), false))
	c, err = b.Audit().Verify(t.Context(), nil)
	require.NoError(t, err)
	assert.Equal(t, int64(1), c.FirstBroken, "another key")
	require.Error(t, a.UseAuditKey(t.Context(), domain.AuditKey("short"), false))
}

// Several instances on one database: each store below is another pool,
// as another process would have.
func TestInstances_ShareOneAuditChain(t *testing.T) {
	d := mustTestDB(t)
	url := d.mustSchema(t)
	key := domain.AuditKey(strings.Repeat("k", 32))
	stores := make([]*postgres.DB, 3)
	for i := range stores {
		stores[i] = mustOpenURL(t, url)
		if i == 0 {
			require.NoError(t, stores[i].Migrate(t.Context()))
		}
		require.NoError(t, stores[i].UseAuditKey(t.Context(), key, i == 0))
	}
	const rounds, batch = 20, 5
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			for r := range rounds {
				es := make([]domain.AuditEntry, batch)
				for j := range es {
					es[j] = domain.AuditEntry{At: t0.Add(time.Duration(r)), ActorID: int64(i + 1), ActorRole: domain.RoleDoctor,
						Action: domain.ActionRecordRead, Outcome: domain.OutcomeAllowed}
				}
				assert.NoError(t, s.Audit().Append(t.Context(), es...))
			}
		})
	}
	wg.Wait()
	for _, s := range stores {
		c, err := s.Audit().Verify(t.Context(), nil)
		require.NoError(t, err)
		assert.Equal(t, domain.AuditCheck{Entries: 3 * rounds * batch}, c)
	}
}

func TestInstances_ClaimEachDeliveryOnce(t *testing.T) {
	d := mustTestDB(t)
	url := d.mustSchema(t)
	first := mustOpenURL(t, url)
	require.NoError(t, first.Migrate(t.Context()))
	p, doc := mustUser(t, first, "p", domain.RolePatient), mustUser(t, first, "d", domain.RoleDoctor)
	const events = 60
	for i := range events {
		rec := domain.Record{PatientID: p.ID, DoctorID: doc.ID, Title: "t", Content: "c", CreatedAt: t0, UpdatedAt: t0}
		require.NoError(t, first.WithinTx(t.Context(), func(tx ports.Repos) error {
			if err := tx.Records().Create(t.Context(), &rec); err != nil {
				return err
			}
			e := domain.NewAssignmentEvent(rec, t0.Add(time.Duration(i)), domain.SinkEmail)
			return tx.Outbox().Add(t.Context(), &e)
		}))
	}
	stores := []*postgres.DB{first, mustOpenURL(t, url), mustOpenURL(t, url)}
	var mu sync.Mutex
	claimedBy := map[int64]string{}
	var wg sync.WaitGroup
	for i, s := range stores {
		owner := fmt.Sprintf("instance-%d", i)
		wg.Go(func() {
			for range events {
				got, err := s.Outbox().Claim(t.Context(), domain.SinkEmail, owner, t0.Add(time.Hour), time.Hour, 3)
				if !assert.NoError(t, err) || len(got) == 0 {
					return
				}
				mu.Lock()
				for _, e := range got {
					if prev, dup := claimedBy[e.ID]; dup {
						t.Errorf("event %d claimed by %s and %s", e.ID, prev, owner)
					}
					claimedBy[e.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Len(t, claimedBy, events, "every delivery claimed, once")
}

func TestInstances_RevocationsNumberedInCommitOrder(t *testing.T) {
	d := mustTestDB(t)
	url := d.mustSchema(t)
	first := mustOpenURL(t, url)
	require.NoError(t, first.Migrate(t.Context()))
	u := mustUser(t, first, "p", domain.RolePatient)
	stores := []*postgres.DB{first, mustOpenURL(t, url)}
	const n = 40
	for i := range n {
		require.NoError(t, first.Sessions().Create(t.Context(), domain.Session{ID: fmt.Sprintf("s%02d", i), UserID: u.ID,
			CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			assert.NoError(t, stores[i%2].Sessions().Revoke(t.Context(), fmt.Sprintf("s%02d", i), t0))
		})
	}
	wg.Wait()
	got, err := stores[1].Sessions().RevokedAfter(t.Context(), 0, t0)
	require.NoError(t, err)
	require.Len(t, got, n)
	for i, r := range got {
		assert.Equal(t, int64(i+1), r.Seq, "one number per revocation, no gaps")
	}
}

// The record's version moves with every change to it or its comments,
// whoever makes it: what a cache shared by instances will rely on.
func TestRecordVersion_MovedByTriggers(t *testing.T) {
	d := mustTestDB(t)
	url := d.mustSchema(t)
	db := mustOpenURL(t, url)
	require.NoError(t, db.Migrate(t.Context()))
	p, doc := mustUser(t, db, "p", domain.RolePatient), mustUser(t, db, "d", domain.RoleDoctor)
	rec := domain.Record{PatientID: p.ID, Title: "t", Content: "c", CreatedAt: t0, UpdatedAt: t0}
	require.NoError(t, db.Records().Create(t.Context(), &rec))
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(t.Context()) })
	version := func() int64 {
		var v int64
		require.NoError(t, conn.QueryRow(t.Context(), `SELECT version FROM records WHERE id = $1`, rec.ID).Scan(&v))
		return v
	}
	v0 := version()
	rec.DoctorID = doc.ID
	require.NoError(t, db.Records().Update(t.Context(), rec))
	v1 := version()
	assert.Greater(t, v1, v0, "an update")
	c := domain.Comment{RecordID: rec.ID, DoctorID: doc.ID, Text: "ok", CreatedAt: t0}
	require.NoError(t, db.Comments().Create(t.Context(), &c))
	assert.Greater(t, version(), v1, "a comment")
}

// Stats are what the metrics adapter scrapes.
func TestStats(t *testing.T) {
	d := mustTestDB(t)
	db := d.mustOpen(t)
	oldest, err := db.OldestPending(t.Context())
	require.NoError(t, err)
	assert.True(t, oldest.IsZero())
	p, doc := mustUser(t, db, "p", domain.RolePatient), mustUser(t, db, "d", domain.RoleDoctor)
	rec := domain.Record{ID: 7, PatientID: p.ID, DoctorID: doc.ID, CreatedAt: t0}
	e := domain.NewAssignmentEvent(rec, t0, domain.SinkEmail)
	e.CreatedAt = t0
	require.NoError(t, db.Outbox().Add(t.Context(), &e))
	oldest, err = db.OldestPending(t.Context())
	require.NoError(t, err)
	assert.True(t, t0.Equal(oldest), "%s", oldest)
	counts, err := db.OutboxCounts(t.Context())
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{domain.OutboxPending: 1}, counts)
	require.NoError(t, db.Audit().Append(t.Context(), domain.AuditEntry{At: t0, ActorID: 1, ActorRole: domain.RoleAdmin,
		Action: domain.ActionUserApprove, Outcome: domain.OutcomeAllowed}))
	n, err := db.AuditEntries(t.Context())
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
}
