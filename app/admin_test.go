package app

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

func TestAdmin_NonAdminsForbidden(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	ops := map[string]func(a domain.Actor) error{
		"users": func(a domain.Actor) error {
			_, _, err := e.app.AdminUsers(ctx, a, ports.UserFilter{}, domain.Page{})
			return err
		},
		"set_user": func(a domain.Actor) error {
			_, err := e.app.AdminSetUser(ctx, a, c.pendingDoctor.ID, OpApprove)
			return err
		},
		"audit": func(a domain.Actor) error {
			_, _, err := e.app.AdminAudit(ctx, a, ports.AuditFilter{}, domain.Page{})
			return err
		},
		"outbox": func(a domain.Actor) error {
			_, _, err := e.app.AdminOutbox(ctx, a, ports.OutboxFilter{}, domain.Page{})
			return err
		},
		"retry_outbox": func(a domain.Actor) error {
			_, err := e.app.AdminRetryOutbox(ctx, a, 1)
			return err
		},
	}
	for name, op := range ops {
		for _, who := range []domain.User{c.owner, c.doctor} {
			t.Run(name+"/"+string(who.Role), func(t *testing.T) {
				requireCode(t, op(actorOf(who)), domain.EForbidden, domain.MsgNoPermission)
			})
		}
	}
	u, _ := e.app.Me(ctx, actorOf(c.pendingDoctor))
	assert.False(t, u.Approved, "nothing changed")
}

func TestAdminUsers(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	root := actorOf(c.admin)

	all, next, err := e.app.AdminUsers(ctx, root, ports.UserFilter{}, domain.Page{})
	require.NoError(t, err)
	assert.Nil(t, next)
	assert.Len(t, all, 7)
	assert.Equal(t, c.admin, all[0], "newest first")

	role, no := domain.RoleDoctor, false
	pending, _, err := e.app.AdminUsers(ctx, root, ports.UserFilter{Role: &role, Approved: &no}, domain.Page{})
	require.NoError(t, err)
	assert.Equal(t, []domain.User{c.pendingDoctor}, pending)

	page1, next, err := e.app.AdminUsers(ctx, root, ports.UserFilter{}, domain.Page{Limit: 3})
	require.NoError(t, err)
	assert.Equal(t, all[:3], page1)
	require.NotNil(t, next)

	e.db.Fail = failOn(errBoom, "Users.List")
	_, _, err = e.app.AdminUsers(ctx, root, ports.UserFilter{}, domain.Page{})
	assert.ErrorIs(t, err, errBoom)
}

func TestAdminSetUser(t *testing.T) {
	t.Run("approve_doctor", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		u, err := e.app.AdminSetUser(ctx, actorOf(c.admin), c.pendingDoctor.ID, OpApprove)
		require.NoError(t, err)
		assert.True(t, u.Approved)
		stored, _ := e.app.Me(ctx, actorOf(c.pendingDoctor))
		assert.True(t, stored.Approved)
		// Now it can be assigned.
		_, err = e.app.CreateRecord(ctx, actorOf(c.owner), domain.RecordChange{Title: ptr("t"), Content: ptr("c"), SetDoctor: true, DoctorID: u.ID})
		require.NoError(t, err)
	})

	t.Run("approve_patient_refused", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		_, err := e.app.AdminSetUser(ctx, actorOf(c.admin), c.owner.ID, OpApprove)
		requireCode(t, err, domain.EInvalid, "Only doctors need approval.")
	})

	t.Run("deactivate_revokes_sign_ins_at_once", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		p := e.mustSignIn(t, "alice")
		u, err := e.app.AdminSetUser(ctx, actorOf(c.admin), c.owner.ID, OpDeactivate)
		require.NoError(t, err)
		assert.False(t, u.Active)
		_, err = e.app.Authenticate(ctx, p.Access)
		requireCode(t, err, domain.EUnauthorized, domain.MsgTokenNotValid)
		_, err = e.app.Refresh(ctx, p.Refresh)
		requireCode(t, err, domain.EUnauthorized, domain.MsgRefreshInvalid)
		_, err = e.app.SignIn(ctx, "alice", password("alice"), "198.51.100.1")
		requireCode(t, err, domain.EUnauthorized, domain.MsgBadCredentials)

		t.Run("activate_again", func(t *testing.T) {
			u, err := e.app.AdminSetUser(ctx, actorOf(c.admin), c.owner.ID, OpActivate)
			require.NoError(t, err)
			assert.True(t, u.Active)
			e.mustSignIn(t, "alice")
		})
	})

	t.Run("unknown_op", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		_, err := e.app.AdminSetUser(ctx, actorOf(c.admin), c.owner.ID, UserOp(99))
		requireCode(t, err, domain.EInvalid, "Unknown operation.")
	})

	t.Run("missing_user", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		_, err := e.app.AdminSetUser(ctx, actorOf(c.admin), 9999, OpActivate)
		requireCode(t, err, domain.ENotFound, "")
	})
}

func TestAdminAudit(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	root := actorOf(c.admin)
	_, err := e.app.GetRecord(ctx, actorOf(c.doctor), c.record.ID)
	require.NoError(t, err)
	_, err = e.app.GetRecord(ctx, actorOf(c.otherPatient), c.record.ID)
	requireCode(t, err, domain.ENotFound, "")
	require.Empty(t, e.auditEntries(), "reads are still buffered")

	all, next, err := e.app.AdminAudit(ctx, root, ports.AuditFilter{}, domain.Page{})
	require.NoError(t, err)
	assert.Nil(t, next)
	assert.Equal(t, []auditShape{
		{c.otherPatient.ID, domain.ActionRecordRead, c.record.ID, c.owner.ID, domain.OutcomeDenied},
		{c.doctor.ID, domain.ActionRecordRead, c.record.ID, c.owner.ID, domain.OutcomeAllowed},
	}, shapes(all), "flushed first, newest first")

	mine, _, err := e.app.AdminAudit(ctx, root, ports.AuditFilter{ActorID: c.doctor.ID}, domain.Page{})
	require.NoError(t, err)
	assert.Len(t, mine, 1)

	page1, next, err := e.app.AdminAudit(ctx, root, ports.AuditFilter{}, domain.Page{Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, all[:1], page1)
	require.NotNil(t, next)
	assert.Equal(t, domain.Cursor{CreatedAt: all[0].At, ID: all[0].ID}, *next)

	t.Run("flush_fails", func(t *testing.T) {
		_, err := e.app.GetRecord(ctx, actorOf(c.doctor), c.record.ID)
		require.NoError(t, err)
		e.db.Fail = failOn(errBoom, "Audit.Append")
		defer func() { e.db.Fail = nil }()
		_, _, err = e.app.AdminAudit(ctx, root, ports.AuditFilter{}, domain.Page{})
		assert.ErrorIs(t, err, errBoom)
	})
	t.Run("list_fails", func(t *testing.T) {
		e.db.Fail = failOn(errBoom, "Audit.List")
		defer func() { e.db.Fail = nil }()
		_, _, err := e.app.AdminAudit(ctx, root, ports.AuditFilter{}, domain.Page{})
		assert.ErrorIs(t, err, errBoom)
	})
}

// mustEvent stores an outbox event in the given state.
func (e *testEnv) mustEvent(t *testing.T, r domain.Record, state string) domain.OutboxEvent {
	t.Helper()
	ev := domain.NewAssignmentEvent(r, e.clock.Now())
	ev.State, ev.Attempts = state, 3
	for i := range ev.Deliveries { // as the store would hold such an event
		ev.Deliveries[i].State, ev.Deliveries[i].Attempts = state, 3
	}
	require.NoError(t, e.db.Outbox().Add(ctx, &ev))
	e.clock.Advance(time.Millisecond)
	return ev
}

func TestAdminOutbox(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	root := actorOf(c.admin)
	pending := e.mustEvent(t, c.record, domain.OutboxPending)
	dead := e.mustEvent(t, c.record, domain.OutboxDead)
	delivered := e.mustEvent(t, c.record, domain.OutboxDelivered)

	all, next, err := e.app.AdminOutbox(ctx, root, ports.OutboxFilter{}, domain.Page{})
	require.NoError(t, err)
	assert.Nil(t, next)
	assert.Equal(t, []domain.OutboxEvent{delivered, dead, pending}, all)

	onlyDead, _, err := e.app.AdminOutbox(ctx, root, ports.OutboxFilter{State: domain.OutboxDead}, domain.Page{})
	require.NoError(t, err)
	assert.Equal(t, []domain.OutboxEvent{dead}, onlyDead)

	page1, next, err := e.app.AdminOutbox(ctx, root, ports.OutboxFilter{}, domain.Page{Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, all[:2], page1)
	require.NotNil(t, next)

	_, _, err = e.app.AdminOutbox(ctx, root, ports.OutboxFilter{State: "stuck"}, domain.Page{})
	requireFields(t, err, map[string][]string{"state": {`"stuck" is not a valid choice.`}})

	t.Run("retry_dead", func(t *testing.T) {
		now := e.clock.Now()
		got, err := e.app.AdminRetryOutbox(ctx, root, dead.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.OutboxPending, got.State)
		assert.Zero(t, got.Attempts)
		assert.Equal(t, now, got.NextAttemptAt)
	})
	t.Run("retry_not_dead", func(t *testing.T) {
		_, err := e.app.AdminRetryOutbox(ctx, root, delivered.ID)
		requireCode(t, err, domain.EConflict, "")
	})
	t.Run("retry_missing", func(t *testing.T) {
		_, err := e.app.AdminRetryOutbox(ctx, root, 9999)
		requireCode(t, err, domain.ENotFound, "")
	})
	t.Run("list_fails", func(t *testing.T) {
		e.db.Fail = failOn(errBoom, "Outbox.List")
		defer func() { e.db.Fail = nil }()
		_, _, err := e.app.AdminOutbox(ctx, root, ports.OutboxFilter{}, domain.Page{})
		assert.ErrorIs(t, err, errBoom)
	})
}
