package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

// TestAdminSetUser_CannotDeactivateSelf: an admin who deactivated itself
// would lock the service out of its only console; another admin may.
func TestAdminSetUser_CannotDeactivateSelf(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	_, err := e.app.AdminSetUser(ctx, actorOf(c.admin), c.admin.ID, OpDeactivate)
	requireCode(t, err, domain.EInvalid, domain.MsgNoSelfDeactivate)
	u, err := e.app.Me(ctx, actorOf(c.admin))
	require.NoError(t, err)
	assert.True(t, u.Active)

	other := e.mustUser(t, "root2", domain.RoleAdmin)
	u, err = e.app.AdminSetUser(ctx, actorOf(other), c.admin.ID, OpDeactivate)
	require.NoError(t, err)
	assert.False(t, u.Active)
}

// securityEntries are the flushed entries of account, key and outbox
// events, without the health-data ones.
func (e *testEnv) securityEntries(t *testing.T) []domain.AuditEntry {
	t.Helper()
	var out []domain.AuditEntry
	for _, en := range e.flushed(t) {
		if !strings.HasPrefix(en.Action, "record.") && !strings.HasPrefix(en.Action, "comment.") {
			out = append(out, en)
		}
	}
	return out
}

// TestSecurityEvents: every account, key and outbox event leaves an entry
// with the account that acted (none from the command line), no record and
// no patient, through the API and the CLI alike.
func TestSecurityEvents(t *testing.T) {
	const addr = "198.51.100.1" // mustSignIn's address
	type want struct {
		actor   func(c cast) int64
		action  string
		outcome string
	}
	none := func(cast) int64 { return 0 }
	var created int64 // the account a case created
	isCreated := func(cast) int64 { return created }
	tests := []struct {
		name string
		do   func(t *testing.T, e *testEnv, c cast)
		want []want
	}{
		{"signin_allowed", func(t *testing.T, e *testEnv, c cast) { e.mustSignIn(t, c.owner.Username) },
			[]want{{func(c cast) int64 { return c.owner.ID }, domain.ActionSignIn, domain.OutcomeAllowed}}},
		{"signin_wrong_password", func(t *testing.T, e *testEnv, c cast) {
			_, err := e.app.SignIn(ctx, c.owner.Username, "wrong", addr)
			require.Error(t, err)
		}, []want{{func(c cast) int64 { return c.owner.ID }, domain.ActionSignIn, domain.OutcomeDenied}}},
		{"signin_inactive", func(t *testing.T, e *testEnv, c cast) {
			_, err := e.app.SignIn(ctx, c.goneDoctor.Username, password(c.goneDoctor.Username), addr)
			require.Error(t, err)
		}, []want{{func(c cast) int64 { return c.goneDoctor.ID }, domain.ActionSignIn, domain.OutcomeDenied}}},
		{"signin_unknown_user", func(t *testing.T, e *testEnv, c cast) {
			_, err := e.app.SignIn(ctx, "nobody", "wrong", addr)
			require.Error(t, err)
		}, []want{{none, domain.ActionSignIn, domain.OutcomeDenied}}},
		{"refresh_reuse", func(t *testing.T, e *testEnv, c cast) {
			p := e.mustSignIn(t, c.owner.Username)
			_, err := e.app.Refresh(ctx, p.Refresh)
			require.NoError(t, err)
			_, err = e.app.Refresh(ctx, p.Refresh)
			require.Error(t, err)
		}, []want{
			{func(c cast) int64 { return c.owner.ID }, domain.ActionSignIn, domain.OutcomeAllowed},
			{func(c cast) int64 { return c.owner.ID }, domain.ActionRefreshReuse, domain.OutcomeDenied},
		}},
		{"password_change", func(t *testing.T, e *testEnv, c cast) {
			require.NoError(t, e.app.ChangePassword(ctx, actorOf(c.owner), password(c.owner.Username), "a-New-passphrase-77"))
		}, []want{{func(c cast) int64 { return c.owner.ID }, domain.ActionPasswordChange, domain.OutcomeAllowed}}},
		{"register", func(t *testing.T, e *testEnv, c cast) {
			u, err := e.app.Register(ctx, domain.Registration{Username: "newbie", Email: "newbie@example.com",
				Password: "a-New-passphrase-77", Role: domain.RolePatient}, "192.0.2.7")
			require.NoError(t, err)
			created = u.ID
		}, []want{{isCreated, domain.ActionUserRegister, domain.OutcomeAllowed}}},
		{"create_superuser", func(t *testing.T, e *testEnv, c cast) {
			u, err := e.app.CreateSuperuser(ctx, "root2", "root2@example.com", "a-New-passphrase-77")
			require.NoError(t, err)
			created = u.ID
		}, []want{{isCreated, domain.ActionUserCreateSuperuser, domain.OutcomeAllowed}}},
		{"admin_approve_deactivate_activate", func(t *testing.T, e *testEnv, c cast) {
			for _, op := range []UserOp{OpApprove, OpDeactivate, OpActivate} {
				_, err := e.app.AdminSetUser(ctx, actorOf(c.admin), c.pendingDoctor.ID, op)
				require.NoError(t, err)
			}
		}, []want{
			{func(c cast) int64 { return c.admin.ID }, domain.ActionUserApprove, domain.OutcomeAllowed},
			{func(c cast) int64 { return c.admin.ID }, domain.ActionUserDeactivate, domain.OutcomeAllowed},
			{func(c cast) int64 { return c.admin.ID }, domain.ActionUserActivate, domain.OutcomeAllowed},
		}},
		{"cli_approve_deactivate_activate", func(t *testing.T, e *testEnv, c cast) {
			for _, op := range []UserOp{OpApprove, OpDeactivate, OpActivate} {
				_, err := e.app.SetUserByName(ctx, c.pendingDoctor.Username, op)
				require.NoError(t, err)
			}
		}, []want{
			{none, domain.ActionUserApprove, domain.OutcomeAllowed},
			{none, domain.ActionUserDeactivate, domain.OutcomeAllowed},
			{none, domain.ActionUserActivate, domain.OutcomeAllowed},
		}},
		{"outbox_retry", func(t *testing.T, e *testEnv, c cast) {
			d1, d2 := e.mustEvent(t, c.record, domain.OutboxDead), e.mustEvent(t, c.record, domain.OutboxDead)
			_, err := e.app.AdminRetryOutbox(ctx, actorOf(c.admin), d1.ID)
			require.NoError(t, err)
			_, err = e.app.OutboxRetry(ctx, d2.ID)
			require.NoError(t, err)
		}, []want{
			{func(c cast) int64 { return c.admin.ID }, domain.ActionOutboxRetry, domain.OutcomeAllowed},
			{none, domain.ActionOutboxRetry, domain.OutcomeAllowed},
		}},
		{"keys_rotate", func(t *testing.T, e *testEnv, c cast) {
			require.NoError(t, e.app.KeysRotated(ctx))
		}, []want{{none, domain.ActionKeysRotate, domain.OutcomeAllowed}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			tt.do(t, e, c)
			got := e.securityEntries(t)
			require.Len(t, got, len(tt.want), "%+v", got)
			for i, w := range tt.want {
				g := got[i]
				assert.Equal(t, w.actor(c), g.ActorID, "actor of %s", g.Action)
				assert.Equal(t, w.action, g.Action)
				assert.Equal(t, w.outcome, g.Outcome)
				assert.Zero(t, g.RecordID, "record")
				assert.Zero(t, g.PatientID, "patient")
				if g.Action == domain.ActionUserCreateSuperuser || (w.actor(c) == 0 && g.Action != domain.ActionSignIn) {
					assert.Equal(t, "cli", g.RequestID, "the command line is named")
				}
			}
		})
	}
}

// TestRunBackground_LogsTheAuditHead: the head is logged when the
// background work starts and at every interval after (an hour in serve),
// so a copy outside the server exists even if nobody runs `audit head`.
func TestRunBackground_LogsTheAuditHead(t *testing.T) {
	e := newEnv(t, Config{AuditHeadInterval: 20 * time.Millisecond})
	logs := e.captureLogs()
	c := newCast(t, e)
	_, err := e.app.GetRecord(ctx, actorOf(c.owner), c.record.ID)
	require.NoError(t, err)
	require.NoError(t, e.app.audit.Flush(ctx))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.app.RunBackground(runCtx); close(done) }()
	defer func() { cancel(); <-done }()
	head := e.auditEntries()[0]
	require.Eventually(t, func() bool {
		return strings.Count(logs.String(), `"msg":"audit head","id":1,"hash":"`+head.Hash+`"`) >= 2
	}, 5*time.Second, 10*time.Millisecond, logs.String())
}
