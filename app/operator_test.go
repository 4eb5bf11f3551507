package app

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/memstore"
	"healthrecord/domain"
	"healthrecord/ports"
)

func TestCreateSuperuser(t *testing.T) {
	t.Run("makes_an_admin", func(t *testing.T) {
		e := newEnv(t, Config{})
		u, err := e.app.CreateSuperuser(ctx, "root", "root@example.com", "correct-horse-battery")
		require.NoError(t, err)
		assert.Equal(t, domain.User{ID: u.ID, Username: "root", Email: "root@example.com", Role: domain.RoleAdmin,
			Approved: true, Active: true, PasswordHash: fakeHashPrefix + "correct-horse-battery", CreatedAt: t0}, u)
		p, err := e.app.SignIn(ctx, "root", "correct-horse-battery", "127.0.0.1")
		require.NoError(t, err)
		a, err := e.app.Authenticate(ctx, p.Access)
		require.NoError(t, err)
		assert.Equal(t, domain.RoleAdmin, a.Role)
	})

	tests := []struct {
		name   string
		user   string
		pw     string
		setup  func(t *testing.T, e *testEnv)
		fields map[string][]string
	}{
		{"weak_password", "root", "12345678", nil,
			map[string][]string{"password": {"This password is too common.", "This password is entirely numeric."}}},
		{"bad_username", "ro ot", "correct-horse-battery", nil,
			map[string][]string{"username": {msgBadUsername}}},
		{"taken", "alice", "correct-horse-battery", func(t *testing.T, e *testEnv) { e.mustUser(t, "alice", domain.RolePatient) },
			map[string][]string{"username": {"A user with that username already exists."}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			if tt.setup != nil {
				tt.setup(t, e)
			}
			_, err := e.app.CreateSuperuser(ctx, tt.user, "admin@example.com", tt.pw)
			requireFields(t, err, tt.fields)
		})
	}

	t.Run("hasher_fails", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.hasher.HashErr = errBoom
		_, err := e.app.CreateSuperuser(ctx, "root", "root@example.com", "correct-horse-battery")
		assert.ErrorIs(t, err, errBoom)
	})
}

const msgBadUsername = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."

func TestSetUserByName(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)

	u, err := e.app.SetUserByName(ctx, "drnew", OpApprove)
	require.NoError(t, err)
	assert.True(t, u.Approved)
	assert.Equal(t, c.pendingDoctor.ID, u.ID)

	p := e.mustSignIn(t, "drhouse")
	u, err = e.app.SetUserByName(ctx, "drhouse", OpDeactivate)
	require.NoError(t, err)
	assert.False(t, u.Active)
	_, err = e.app.Authenticate(ctx, p.Access)
	requireCode(t, err, domain.EUnauthorized, domain.MsgTokenNotValid)

	_, err = e.app.SetUserByName(ctx, "nobody", OpApprove)
	requireCode(t, err, domain.ENotFound, "")
}

func TestListUsers(t *testing.T) {
	e := newEnv(t, Config{})
	newCast(t, e)
	active := false
	got, next, err := e.app.ListUsers(ctx, ports.UserFilter{Active: &active}, domain.Page{})
	require.NoError(t, err)
	assert.Nil(t, next)
	require.Len(t, got, 1)
	assert.Equal(t, "drgone", got[0].Username)

	page1, next, err := e.app.ListUsers(ctx, ports.UserFilter{}, domain.Page{Limit: 6})
	require.NoError(t, err)
	assert.Len(t, page1, 6)
	require.NotNil(t, next)
	page2, next, err := e.app.ListUsers(ctx, ports.UserFilter{}, domain.Page{Limit: 6, After: next})
	require.NoError(t, err)
	assert.Len(t, page2, 1)
	assert.Nil(t, next)

	e.db.Fail = failOn(errBoom, "Users.List")
	_, _, err = e.app.ListUsers(ctx, ports.UserFilter{}, domain.Page{})
	assert.ErrorIs(t, err, errBoom)
}

func TestOperatorOutbox(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	dead := e.mustEvent(t, c.record, domain.OutboxDead)

	got, _, err := e.app.OutboxList(ctx, ports.OutboxFilter{State: domain.OutboxDead}, domain.Page{})
	require.NoError(t, err)
	assert.Equal(t, []domain.OutboxEvent{dead}, got)
	_, _, err = e.app.OutboxList(ctx, ports.OutboxFilter{State: "DEAD"}, domain.Page{})
	requireFields(t, err, map[string][]string{"state": {`"DEAD" is not a valid choice.`}})

	ev, err := e.app.OutboxRetry(ctx, dead.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.OutboxPending, ev.State)
	_, err = e.app.OutboxRetry(ctx, dead.ID)
	requireCode(t, err, domain.EConflict, "")
}

func TestVerifyAudit(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	for range 3 {
		_, err := e.app.GetRecord(ctx, actorOf(c.owner), c.record.ID)
		require.NoError(t, err)
	}
	require.NoError(t, e.app.Close(ctx))

	broken, err := e.app.VerifyAudit(ctx)
	require.NoError(t, err)
	assert.Zero(t, broken, "the app's entries chain")

	var id int64
	e.db.Raw(func(t *memstore.Tables) {
		t.Audit[1].Outcome = domain.OutcomeDenied // an edit behind the app's back
		id = t.Audit[1].ID
	})
	broken, err = e.app.VerifyAudit(ctx)
	require.NoError(t, err)
	assert.Equal(t, id, broken)
}
