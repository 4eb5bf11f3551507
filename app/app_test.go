package app

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

func TestPageQuery(t *testing.T) {
	after := &domain.Cursor{CreatedAt: t0, ID: 9}
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{"default_when_zero", 0, domain.DefaultPageSize + 1},
		{"default_when_negative", -5, domain.DefaultPageSize + 1},
		{"one", 1, 2},
		{"max", domain.MaxPageSize, domain.MaxPageSize + 1},
		{"clamped_to_max", domain.MaxPageSize + 1, domain.MaxPageSize + 1},
		{"far_over_max", 1 << 30, domain.MaxPageSize + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pageQuery(domain.Page{Limit: tt.limit, After: after})
			assert.Equal(t, domain.Page{Limit: tt.want, After: after}, got, "one more than the page, to see a next one")
		})
	}
}

func TestTrimPage(t *testing.T) {
	ints := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i + 1
		}
		return out
	}
	cursor := func(i int) domain.Cursor { return domain.Cursor{ID: int64(i)} }
	tests := []struct {
		name     string
		items    int
		limit    int
		wantLen  int
		wantNext *domain.Cursor
	}{
		{"empty", 0, 3, 0, nil},
		{"fewer_than_page", 2, 3, 2, nil},
		{"exactly_a_page", 3, 3, 3, nil},
		{"one_more_than_page", 4, 3, 3, &domain.Cursor{ID: 3}},
		{"default_page_exact", domain.DefaultPageSize, 0, domain.DefaultPageSize, nil},
		{"default_page_more", domain.DefaultPageSize + 1, 0, domain.DefaultPageSize, &domain.Cursor{ID: domain.DefaultPageSize}},
		{"clamped_page_more", domain.MaxPageSize + 1, 10_000, domain.MaxPageSize, &domain.Cursor{ID: domain.MaxPageSize}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next := trimPage(ints(tt.items), domain.Page{Limit: tt.limit}, cursor)
			assert.Equal(t, ints(tt.wantLen), got)
			assert.Equal(t, tt.wantNext, next)
		})
	}
}

func TestNew_Defaults(t *testing.T) {
	a := New(Deps{Store: newFakeDB()}, Config{})
	assert.Equal(t, Config{
		AccessTTL: 5 * time.Minute, RefreshTTL: 24 * time.Hour, MailHost: "healthrecord.localhost",
		ThrottleUser: 10, ThrottleAddr: 100, ThrottleWindow: 15 * time.Minute, AuditFlushInterval: 50 * time.Millisecond,
		AuditHeadInterval: time.Hour,
		OutboxBackoff:     2 * time.Second, OutboxMaxBackoff: 15 * time.Minute, OutboxMaxAge: 72 * time.Hour,
		HashConcurrency: 2,
	}, a.cfg)
	assert.NotNil(t, a.log)

	set := Config{AccessTTL: time.Minute, RefreshTTL: time.Hour, MailHost: "h", ThrottleUser: 1, ThrottleAddr: 2,
		ThrottleWindow: time.Second, AuditFlushInterval: time.Millisecond, AutoApproveDoctors: true, AuditHeadInterval: time.Minute,
		OutboxBackoff: time.Second, OutboxMaxBackoff: time.Minute, OutboxMaxAge: time.Hour, HashConcurrency: 3, QuotaBytes: 9}
	assert.Equal(t, set, New(Deps{Store: newFakeDB()}, set).cfg)
}

func TestStart(t *testing.T) {
	newApp := func(db *fakeDB, h *fakeHasher) *App {
		return New(Deps{Store: db, Tokens: &fakeTokens{issued: map[string]ports.TokenClaims{}},
			Hasher: h, Clock: &fakeClock{t: t0}, Random: counterRandom()}, Config{})
	}
	t.Run("loads_revocations", func(t *testing.T) {
		db := newFakeDB()
		u := domain.User{Username: "p", Role: domain.RolePatient, Active: true, CreatedAt: t0}
		require.NoError(t, db.Users().Create(ctx, &u))
		require.NoError(t, db.Sessions().Create(ctx, domain.Session{ID: "s1", UserID: u.ID, CreatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(time.Hour)}))
		require.NoError(t, db.Sessions().Revoke(ctx, "s1", t0.Add(-time.Minute)))
		a := newApp(db, &fakeHasher{})
		require.NoError(t, a.Start(ctx))
		assert.True(t, a.revoked.has("s1"))
		assert.Equal(t, dummyHash, a.dummyHash)
	})
	t.Run("hasher_fails", func(t *testing.T) {
		a := newApp(newFakeDB(), &fakeHasher{HashErr: errBoom})
		assert.ErrorIs(t, a.Start(ctx), errBoom)
	})
	t.Run("store_fails", func(t *testing.T) {
		db := newFakeDB()
		db.Fail = failOn(errBoom, "Sessions.RevokedAfter")
		assert.ErrorIs(t, newApp(db, &fakeHasher{}).Start(ctx), errBoom)
	})
}

func TestAuditBatcher(t *testing.T) {
	t.Run("reads_wait_for_flush", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		_, err := e.app.GetRecord(ctx, actorOf(c.owner), c.record.ID)
		require.NoError(t, err)
		assert.Empty(t, e.auditEntries())
		txs := e.db.txs
		require.NoError(t, e.app.audit.Flush(ctx))
		entries := e.auditEntries()
		require.Len(t, entries, 1)
		assert.Equal(t, txs+1, e.db.txs, "one transaction per flush")
		assert.Equal(t, domain.AuditEntry{
			ID: entries[0].ID, At: e.clock.Now(), ActorID: c.owner.ID, ActorRole: domain.RolePatient,
			Action: domain.ActionRecordRead, RecordID: c.record.ID, PatientID: c.owner.ID, Outcome: domain.OutcomeAllowed,
			RequestID: "req-alice", RemoteAddr: "192.0.2.1", PrevHash: "", Hash: entries[0].Hash,
		}, entries[0])
	})

	t.Run("empty_flush_writes_nothing", func(t *testing.T) {
		e := newEnv(t, Config{})
		txs := e.db.txs
		require.NoError(t, e.app.audit.Flush(ctx))
		assert.Equal(t, txs, e.db.txs)
	})

	t.Run("close_writes_what_is_left", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		for range 3 {
			_, err := e.app.GetRecord(ctx, actorOf(c.doctor), c.record.ID)
			require.NoError(t, err)
		}
		require.NoError(t, e.app.Close(ctx))
		assert.Len(t, e.auditEntries(), 3)
	})

	t.Run("failed_flush_requeues_in_order", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		_, err := e.app.GetRecord(ctx, actorOf(c.owner), c.record.ID)
		require.NoError(t, err)
		_, err = e.app.GetRecord(ctx, actorOf(c.doctor), c.record.ID)
		require.NoError(t, err)

		e.db.Fail = failOn(errBoom, "Audit.Append")
		assert.ErrorIs(t, e.app.audit.Flush(ctx), errBoom)
		e.db.Fail = failOn(errBoom, "WithinTx")
		assert.ErrorIs(t, e.app.Close(ctx), errBoom)
		assert.Empty(t, e.auditEntries())

		// A read arriving meanwhile goes after the re-queued ones.
		_, err = e.app.GetRecord(ctx, actorOf(c.otherPatient), c.record.ID)
		requireCode(t, err, domain.ENotFound, "")
		e.db.Fail = nil
		require.NoError(t, e.app.Close(ctx))
		assert.Equal(t, []int64{c.owner.ID, c.doctor.ID, c.otherPatient.ID},
			[]int64{e.auditEntries()[0].ActorID, e.auditEntries()[1].ActorID, e.auditEntries()[2].ActorID})
		broken, err := e.app.VerifyAudit(ctx)
		require.NoError(t, err)
		assert.Zero(t, broken)
	})

	t.Run("run_flushes_every_interval", func(t *testing.T) {
		e := newEnv(t, Config{AuditFlushInterval: 5 * time.Millisecond})
		c := newCast(t, e)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { e.app.audit.Run(runCtx); close(done) }()
		_, err := e.app.GetRecord(ctx, actorOf(c.owner), c.record.ID)
		require.NoError(t, err)
		require.Eventually(t, func() bool { return len(e.auditEntries()) == 1 }, 5*time.Second, time.Millisecond)
		cancel()
		<-done
	})

	t.Run("run_flushes_early_when_the_buffer_fills", func(t *testing.T) {
		e := newEnv(t, Config{AuditFlushInterval: time.Hour})
		c := newCast(t, e)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { e.app.audit.Run(runCtx); close(done) }()
		defer func() { cancel(); <-done }()
		for range maxPendingAudit {
			e.app.auditRead(actorOf(c.owner), domain.ActionRecordRead, c.record, domain.OutcomeAllowed)
		}
		require.Eventually(t, func() bool { return len(e.auditEntries()) == maxPendingAudit }, 5*time.Second, time.Millisecond)
	})

	t.Run("run_logs_a_failed_flush_and_retries", func(t *testing.T) {
		e := newEnv(t, Config{AuditFlushInterval: 5 * time.Millisecond})
		logs := e.captureLogs()
		c := newCast(t, e)
		e.db.Fail = failTimes(1, errBoom, "Audit.Append")
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { e.app.audit.Run(runCtx); close(done) }()
		defer func() { cancel(); <-done }()
		e.app.auditRead(actorOf(c.owner), domain.ActionRecordRead, c.record, domain.OutcomeAllowed)
		require.Eventually(t, func() bool { return len(e.auditEntries()) == 1 }, 5*time.Second, time.Millisecond)
		assert.Contains(t, logs.String(), `"msg":"audit flush"`)
	})
}

func TestRunBackground(t *testing.T) {
	t.Run("stops_with_its_context", func(t *testing.T) {
		e := newEnv(t, Config{})
		runCtx, cancel := context.WithCancel(ctx)
		cancel()
		done := make(chan struct{})
		go func() { e.app.RunBackground(runCtx); close(done) }()
		<-done
	})

	t.Run("polls_revocations_and_flushes_audit", func(t *testing.T) {
		e := newEnv(t, Config{AuditFlushInterval: 5 * time.Millisecond})
		c := newCast(t, e)
		p := e.mustSignIn(t, "alice")
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { e.app.RunBackground(runCtx); close(done) }()
		defer func() { cancel(); <-done }()

		_, err := e.app.GetRecord(ctx, actorOf(c.owner), c.record.ID)
		require.NoError(t, err)
		e.revokeElsewhere(t, e.tokens.claims(t, p.Access).SessionID, e.clock.Now())
		require.Eventually(t, func() bool {
			_, err := e.app.Authenticate(ctx, p.Access)
			return err != nil && len(e.auditEntries()) == 2 // the sign-in and the read
		}, 5*time.Second, 10*time.Millisecond)
	})

	t.Run("keeps_polling_after_a_failed_sync", func(t *testing.T) {
		e := newEnv(t, Config{})
		logs := e.captureLogs()
		e.mustUser(t, "alice", domain.RolePatient)
		p := e.mustSignIn(t, "alice")
		e.db.Fail = failTimes(1, errBoom, "Sessions.RevokedAfter")
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { e.app.RunBackground(runCtx); close(done) }()
		defer func() { cancel(); <-done }()
		e.revokeElsewhere(t, e.tokens.claims(t, p.Access).SessionID, e.clock.Now())
		require.Eventually(t, func() bool {
			_, err := e.app.Authenticate(ctx, p.Access)
			return err != nil
		}, 5*time.Second, 10*time.Millisecond)
		assert.Contains(t, logs.String(), `"msg":"sync revocations"`)
	})
}
