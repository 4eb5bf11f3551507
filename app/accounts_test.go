package app

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/memstore"
	"healthrecord/domain"
	"healthrecord/ports"
)

func TestRegister(t *testing.T) {
	reg := func(name string, role domain.Role) domain.Registration {
		return domain.Registration{Username: name, Email: name + "@example.com", Password: "correct-horse-battery", Role: role}
	}
	tests := []struct {
		name         string
		role         domain.Role
		autoApprove  bool
		wantApproved bool
	}{
		{"patient", domain.RolePatient, false, true},
		{"doctor_unapproved", domain.RoleDoctor, false, false},
		{"doctor_auto_approved", domain.RoleDoctor, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{AutoApproveDoctors: tt.autoApprove})
			u, err := e.app.Register(ctx, reg("carol", tt.role), "192.0.2.1")
			require.NoError(t, err)
			assert.NotZero(t, u.ID)
			assert.Equal(t, tt.role, u.Role)
			assert.Equal(t, tt.wantApproved, u.Approved)
			assert.True(t, u.Active)
			assert.Equal(t, t0, u.CreatedAt)
			// The password went through the hasher; only its hash is kept.
			assert.Contains(t, e.hasher.hashed, "correct-horse-battery")
			assert.Equal(t, fakeHashPrefix+"correct-horse-battery", u.PasswordHash)
			stored, err := e.app.Me(ctx, actorOf(u))
			require.NoError(t, err)
			assert.Equal(t, u, stored)
		})
	}

	t.Run("invalid_is_not_hashed", func(t *testing.T) {
		e := newEnv(t, Config{})
		before := len(e.hasher.hashed)
		_, err := e.app.Register(ctx, domain.Registration{Username: "carol", Email: "carol@example.com", Password: "carol123", Role: domain.RoleAdmin}, "192.0.2.1")
		requireFields(t, err, map[string][]string{
			"role":     {`"ADMIN" is not a valid choice.`},
			"password": {"The password is too similar to the username."},
		})
		assert.Len(t, e.hasher.hashed, before)
		assert.Empty(t, e.db.rows().Users)
	})
	t.Run("username_taken", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.mustUser(t, "carol", domain.RolePatient)
		_, err := e.app.Register(ctx, reg("carol", domain.RoleDoctor), "192.0.2.1")
		requireFields(t, err, map[string][]string{"username": {"A user with that username already exists."}})
	})
	t.Run("hasher_fails", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.hasher.HashErr = errBoom
		_, err := e.app.Register(ctx, reg("carol", domain.RolePatient), "192.0.2.1")
		assert.ErrorIs(t, err, errBoom)
	})
}

func TestSignIn(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		e := newEnv(t, Config{AccessTTL: 2 * time.Minute, RefreshTTL: time.Hour})
		u := e.mustUser(t, "alice", domain.RolePatient)
		now := e.clock.Now()
		p, err := e.app.SignIn(ctx, "alice", password("alice"), "198.51.100.1")
		require.NoError(t, err)

		ac, rc := e.tokens.claims(t, p.Access), e.tokens.claims(t, p.Refresh)
		assert.Equal(t, ports.TokenClaims{Type: ports.AccessToken, UserID: u.ID, Role: domain.RolePatient,
			SessionID: ac.SessionID, JTI: ac.JTI, IssuedAt: now, ExpiresAt: now.Add(2 * time.Minute)}, ac)
		assert.Equal(t, ports.TokenClaims{Type: ports.RefreshToken, UserID: u.ID, Role: domain.RolePatient,
			SessionID: ac.SessionID, JTI: rc.JTI, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, rc)
		assert.NotEqual(t, ac.JTI, rc.JTI)
		assert.Len(t, ac.SessionID, 32, "16 random bytes, hex")

		s := e.session(t, ac.SessionID)
		assert.Equal(t, domain.Session{ID: ac.SessionID, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, s)
		assert.Equal(t, []string{u.PasswordHash}, e.hasher.verifiedHashes())
	})

	badCredentials := func(t *testing.T, err error) {
		t.Helper()
		requireCode(t, err, domain.EUnauthorized, "No active account found with the given credentials")
	}
	t.Run("wrong_password", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.mustUser(t, "alice", domain.RolePatient)
		_, err := e.app.SignIn(ctx, "alice", "not-her-password", "198.51.100.1")
		badCredentials(t, err)
		assert.Empty(t, e.db.rows().Sessions)
	})
	t.Run("unknown_user_still_verifies_a_hash", func(t *testing.T) {
		e := newEnv(t, Config{})
		_, err := e.app.SignIn(ctx, "nobody", "whatever-password", "198.51.100.1")
		badCredentials(t, err)
		assert.Equal(t, []string{dummyHash}, e.hasher.verifiedHashes())
	})
	t.Run("inactive_user_with_right_password", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.mustUser(t, "alice", domain.RolePatient, inactive)
		_, err := e.app.SignIn(ctx, "alice", password("alice"), "198.51.100.1")
		badCredentials(t, err)
		assert.Empty(t, e.db.rows().Sessions)
	})
	t.Run("unapproved_doctor_can_sign_in", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.mustUser(t, "drnew", domain.RoleDoctor, unapproved)
		e.mustSignIn(t, "drnew")
	})

	failures := []struct {
		name  string
		setup func(e *testEnv)
	}{
		{"user_lookup_fails", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Users.ByUsername") }},
		{"hasher_fails", func(e *testEnv) { e.hasher.VerifyErr = errBoom }},
		{"session_not_stored", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Sessions.Create") }},
		{"access_signing_fails", func(e *testEnv) { e.tokens.IssueErr = failType(ports.AccessToken) }},
		{"refresh_signing_fails", func(e *testEnv) { e.tokens.IssueErr = failType(ports.RefreshToken) }},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.mustUser(t, "alice", domain.RolePatient)
			tt.setup(e)
			_, err := e.app.SignIn(ctx, "alice", password("alice"), "198.51.100.1")
			assert.ErrorIs(t, err, errBoom)
			assert.Equal(t, domain.EInternal, domain.ErrorCode(err))
		})
	}
}

// failType fails signing tokens of one type.
func failType(typ string) func(ports.TokenClaims) error {
	return func(c ports.TokenClaims) error {
		if c.Type == typ {
			return errBoom
		}
		return nil
	}
}

func TestSignIn_ThrottlePerUsername(t *testing.T) {
	e := newEnv(t, Config{})
	e.mustUser(t, "alice", domain.RolePatient)
	e.mustUser(t, "bob", domain.RolePatient)
	start := e.clock.Now()
	for i := range 10 {
		_, err := e.app.SignIn(ctx, "alice", "wrong", fmt.Sprintf("198.51.100.%d", i))
		requireCode(t, err, domain.EUnauthorized, "")
	}

	// The 11th try is refused before any password work, even the right one.
	verified := len(e.hasher.verifiedHashes())
	_, err := e.app.SignIn(ctx, "alice", password("alice"), "203.0.113.50")
	requireWait(t, err, 900*time.Second)
	assert.Len(t, e.hasher.verifiedHashes(), verified)

	// Other usernames, from the same addresses, are not affected.
	_, err = e.app.SignIn(ctx, "bob", password("bob"), "198.51.100.1")
	require.NoError(t, err)

	e.clock.Advance(time.Minute)
	_, err = e.app.SignIn(ctx, "alice", password("alice"), "198.51.100.1")
	requireWait(t, err, 840*time.Second)

	// The window is 15 minutes from the failures.
	e.clock.Advance(start.Add(15 * time.Minute).Sub(e.clock.Now()))
	_, err = e.app.SignIn(ctx, "alice", password("alice"), "198.51.100.1")
	require.NoError(t, err)
}

func TestSignIn_ThrottleSlidingWindow(t *testing.T) {
	e := newEnv(t, Config{})
	e.mustUser(t, "alice", domain.RolePatient)
	start := e.clock.Now()
	for range 10 {
		_, err := e.app.SignIn(ctx, "alice", "wrong", "198.51.100.1")
		requireCode(t, err, domain.EUnauthorized, "")
		e.clock.Advance(time.Minute)
	}
	// Ten failures at start+0..9 min; now start+10 min: free again when
	// the first ages out at start+15 min.
	_, err := e.app.SignIn(ctx, "alice", password("alice"), "198.51.100.1")
	requireWait(t, err, 300*time.Second)

	e.clock.Advance(start.Add(15 * time.Minute).Sub(e.clock.Now()))
	// One failure aged out: one more try is allowed, and it fails again...
	_, err = e.app.SignIn(ctx, "alice", "wrong", "198.51.100.1")
	requireCode(t, err, domain.EUnauthorized, "")
	// ...which blocks until the second oldest ages out, a minute later.
	_, err = e.app.SignIn(ctx, "alice", password("alice"), "198.51.100.1")
	requireWait(t, err, 60*time.Second)
}

func TestSignIn_ThrottlePerAddress(t *testing.T) {
	e := newEnv(t, Config{})
	e.mustUser(t, "bob", domain.RolePatient)
	const attacker = "203.0.113.9"
	for i := range 100 {
		_, err := e.app.SignIn(ctx, fmt.Sprintf("guess%d", i), "wrong", attacker)
		requireCode(t, err, domain.EUnauthorized, "")
	}
	_, err := e.app.SignIn(ctx, "bob", password("bob"), attacker)
	requireCode(t, err, domain.EThrottled, "")
	// Bob from his own address is fine.
	_, err = e.app.SignIn(ctx, "bob", password("bob"), "198.51.100.7")
	require.NoError(t, err)

	e.clock.Advance(15 * time.Minute)
	_, err = e.app.SignIn(ctx, "bob", password("bob"), attacker)
	require.NoError(t, err)
}

func TestSignIn_ThrottleLimitsConfigurable(t *testing.T) {
	e := newEnv(t, Config{ThrottleUser: 2, ThrottleAddr: 3, ThrottleWindow: time.Minute})
	e.mustUser(t, "alice", domain.RolePatient)
	for range 2 {
		_, err := e.app.SignIn(ctx, "alice", "wrong", "198.51.100.1")
		requireCode(t, err, domain.EUnauthorized, "")
	}
	_, err := e.app.SignIn(ctx, "alice", password("alice"), "198.51.100.2")
	requireWait(t, err, 60*time.Second)
	e.clock.Advance(time.Minute)
	e.mustSignIn(t, "alice")
}

func TestThrottle_ForgetsAgedOutKeys(t *testing.T) {
	th := newTestThrottle(10, 100, 15*time.Minute)
	th.reserve("a", "addr-a", t0)
	th.reserve("b", "addr-b", t0.Add(10*time.Minute))
	assert.Equal(t, 4, th.size())
	// The timer's prune drops keys whose attempts all aged out, and keeps
	// live ones.
	th.prune(t0.Add(16 * time.Minute))
	assert.Equal(t, 2, th.size())
	th.prune(t0.Add(time.Hour))
	assert.Zero(t, th.size())
}

func TestThrottle_ReleaseForgetsTheAttempt(t *testing.T) {
	th := newTestThrottle(2, 100, 15*time.Minute)
	for range 5 {
		r, wait := th.reserve("a", "addr", t0)
		require.Zero(t, wait)
		th.release(r)
	}
	assert.Zero(t, th.size())
	th.reserve("a", "addr", t0)
	th.reserve("a", "addr", t0)
	_, wait := th.reserve("a", "addr", t0)
	assert.Equal(t, 15*time.Minute, wait)
}

func TestThrottle_MemoryBounded(t *testing.T) {
	th := newTestThrottle(10, 100, 15*time.Minute)
	for i := range maxThrottleUsers + 500 {
		th.reserve(fmt.Sprintf("user%d", i), fmt.Sprintf("addr%d", i), t0)
	}
	assert.LessOrEqual(t, th.size(), maxThrottleUsers+maxThrottleAddrs)
}

func TestRefresh(t *testing.T) {
	t.Run("rotates", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.mustUser(t, "alice", domain.RolePatient)
		p1 := e.mustSignIn(t, "alice")
		e.clock.Advance(time.Minute)
		p2, err := e.app.Refresh(ctx, p1.Refresh)
		require.NoError(t, err)
		assert.NotEqual(t, p1.Access, p2.Access)
		assert.NotEqual(t, p1.Refresh, p2.Refresh)
		c1, c2 := e.tokens.claims(t, p1.Refresh), e.tokens.claims(t, p2.Refresh)
		assert.Equal(t, c1.SessionID, c2.SessionID, "same sign-in")
		assert.Equal(t, e.clock.Now().Add(24*time.Hour), c2.ExpiresAt)
		// The new one works in turn, and its access token authenticates.
		_, err = e.app.Refresh(ctx, p2.Refresh)
		require.NoError(t, err)
		_, err = e.app.Authenticate(ctx, p2.Access)
		require.NoError(t, err)
	})

	t.Run("reuse_revokes_the_sign_in", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.mustUser(t, "alice", domain.RolePatient)
		p1 := e.mustSignIn(t, "alice")
		p2, err := e.app.Refresh(ctx, p1.Refresh)
		require.NoError(t, err)

		// Someone presents the already used token: the whole sign-in goes.
		_, err = e.app.Refresh(ctx, p1.Refresh)
		requireCode(t, err, domain.EUnauthorized, domain.MsgRefreshInvalid)
		sid := e.tokens.claims(t, p1.Refresh).SessionID
		assert.NotNil(t, e.session(t, sid).RevokedAt)

		_, err = e.app.Refresh(ctx, p2.Refresh)
		requireCode(t, err, domain.EUnauthorized, domain.MsgRefreshInvalid)
		_, err = e.app.Authenticate(ctx, p2.Access)
		requireCode(t, err, domain.EUnauthorized, domain.MsgTokenNotValid)

		// Another sign-in of the same user is untouched.
		p3 := e.mustSignIn(t, "alice")
		_, err = e.app.Refresh(ctx, p3.Refresh)
		require.NoError(t, err)
	})

	refused := []struct {
		name  string
		token func(e *testEnv, p TokenPair) string
		setup func(t *testing.T, e *testEnv, p TokenPair)
	}{
		{"garbage", func(*testEnv, TokenPair) string { return "not-a-token" }, nil},
		{"access_token", func(_ *testEnv, p TokenPair) string { return p.Access }, nil},
		{"expired", nil, func(_ *testing.T, e *testEnv, _ TokenPair) { e.clock.Advance(24 * time.Hour) }},
		{"inactive_user", nil, func(t *testing.T, e *testEnv, _ TokenPair) {
			e.db.Raw(func(t *memstore.Tables) {
				for id, u := range t.Users {
					u.Active = false
					t.Users[id] = u
				}
			})
		}},
		{"user_gone", nil, func(t *testing.T, e *testEnv, _ TokenPair) { e.db.Fail = failOn(domain.NotFound(), "Users.ByID") }},
		{"session_gone", nil, func(t *testing.T, e *testEnv, p TokenPair) {
			sid := e.tokens.claims(t, p.Refresh).SessionID
			e.db.Raw(func(t *memstore.Tables) { delete(t.Sessions, sid) })
		}},
		{"session_of_another_user", nil, func(t *testing.T, e *testEnv, p TokenPair) {
			sid := e.tokens.claims(t, p.Refresh).SessionID
			e.db.Raw(func(t *memstore.Tables) {
				s := t.Sessions[sid]
				s.UserID++
				t.Sessions[sid] = s
			})
		}},
		{"revoked_elsewhere", nil, func(t *testing.T, e *testEnv, p TokenPair) {
			e.revokeElsewhere(t, e.tokens.claims(t, p.Refresh).SessionID, e.clock.Now())
		}},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.mustUser(t, "alice", domain.RolePatient)
			p := e.mustSignIn(t, "alice")
			token := p.Refresh
			if tt.token != nil {
				token = tt.token(e, p)
			}
			if tt.setup != nil {
				tt.setup(t, e, p)
			}
			_, err := e.app.Refresh(ctx, token)
			requireCode(t, err, domain.EUnauthorized, domain.MsgRefreshInvalid)
		})
	}

	failures := []struct {
		name string
		ops  []string
	}{
		{"session_lookup_fails", []string{"Sessions.Get"}},
		{"use_refresh_fails", []string{"Sessions.UseRefresh"}},
	}
	for _, tt := range failures {
		t.Run("fails/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.mustUser(t, "alice", domain.RolePatient)
			p := e.mustSignIn(t, "alice")
			e.db.Fail = failOn(errBoom, tt.ops...)
			_, err := e.app.Refresh(ctx, p.Refresh)
			assert.ErrorIs(t, err, errBoom)
		})
	}
	t.Run("fails/revoke_on_reuse_fails", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.mustUser(t, "alice", domain.RolePatient)
		p := e.mustSignIn(t, "alice")
		_, err := e.app.Refresh(ctx, p.Refresh)
		require.NoError(t, err)
		e.db.Fail = failOn(errBoom, "Sessions.Revoke")
		_, err = e.app.Refresh(ctx, p.Refresh)
		assert.ErrorIs(t, err, errBoom)
	})
	t.Run("fails/signing_fails", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.mustUser(t, "alice", domain.RolePatient)
		p := e.mustSignIn(t, "alice")
		e.tokens.IssueErr = failType(ports.AccessToken)
		_, err := e.app.Refresh(ctx, p.Refresh)
		assert.ErrorIs(t, err, errBoom)
	})
}

func TestBlacklist(t *testing.T) {
	e := newEnv(t, Config{})
	e.mustUser(t, "alice", domain.RolePatient)
	p1 := e.mustSignIn(t, "alice")
	p2, err := e.app.Refresh(ctx, p1.Refresh)
	require.NoError(t, err)
	other := e.mustSignIn(t, "alice")

	require.NoError(t, e.app.Blacklist(ctx, p2.Refresh))

	// The token, its sign-in's access tokens and the sign-in itself stop.
	_, err = e.app.Refresh(ctx, p2.Refresh)
	requireCode(t, err, domain.EUnauthorized, domain.MsgRefreshInvalid)
	for _, access := range []string{p1.Access, p2.Access} {
		_, err = e.app.Authenticate(ctx, access)
		requireCode(t, err, domain.EUnauthorized, domain.MsgTokenNotValid)
	}
	assert.NotNil(t, e.session(t, e.tokens.claims(t, p2.Refresh).SessionID).RevokedAt)
	// Blacklisting again, or anything invalid, is a 401.
	requireCode(t, e.app.Blacklist(ctx, p2.Refresh), domain.EUnauthorized, domain.MsgRefreshInvalid)
	requireCode(t, e.app.Blacklist(ctx, other.Access), domain.EUnauthorized, domain.MsgRefreshInvalid)
	// The user's other sign-in goes on.
	_, err = e.app.Authenticate(ctx, other.Access)
	require.NoError(t, err)
	_, err = e.app.Refresh(ctx, other.Refresh)
	require.NoError(t, err)

	t.Run("revoke_fails", func(t *testing.T) {
		e.db.Fail = failOn(errBoom, "Sessions.Revoke")
		p := e.mustSignIn(t, "alice")
		assert.ErrorIs(t, e.app.Blacklist(ctx, p.Refresh), errBoom)
	})
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t, Config{})
	u := e.mustUser(t, "drwho", domain.RoleDoctor)
	p := e.mustSignIn(t, "drwho")

	a, err := e.app.Authenticate(ctx, p.Access)
	require.NoError(t, err)
	assert.Equal(t, domain.Actor{ID: u.ID, Role: domain.RoleDoctor, SessionID: e.tokens.claims(t, p.Access).SessionID}, a)

	for name, token := range map[string]string{"refresh_token": p.Refresh, "garbage": "x", "empty": ""} {
		t.Run(name, func(t *testing.T) {
			_, err := e.app.Authenticate(ctx, token)
			requireCode(t, err, domain.EUnauthorized, domain.MsgTokenNotValid)
		})
	}
	t.Run("expired", func(t *testing.T) {
		e.clock.Advance(5 * time.Minute)
		_, err := e.app.Authenticate(ctx, p.Access)
		requireCode(t, err, domain.EUnauthorized, domain.MsgTokenNotValid)
	})
}

func TestSyncRevocations(t *testing.T) {
	t.Run("picks_up_revocations_by_another_process", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.mustUser(t, "alice", domain.RolePatient)
		p := e.mustSignIn(t, "alice")
		sid := e.tokens.claims(t, p.Access).SessionID

		e.revokeElsewhere(t, sid, e.clock.Now())
		// Until the next sync the app answers from memory.
		_, err := e.app.Authenticate(ctx, p.Access)
		require.NoError(t, err)

		require.NoError(t, e.app.SyncRevocations(ctx))
		_, err = e.app.Authenticate(ctx, p.Access)
		requireCode(t, err, domain.EUnauthorized, domain.MsgTokenNotValid)
	})

	t.Run("finds_a_late_commit_by_number", func(t *testing.T) {
		// A revocation committed late may carry a time well before the
		// last sync; the next sync asks by number, so it is found.
		e := newEnv(t, Config{})
		e.mustUser(t, "alice", domain.RolePatient)
		p := e.mustSignIn(t, "alice")
		sid := e.tokens.claims(t, p.Access).SessionID
		e.clock.Advance(10 * time.Second)
		require.NoError(t, e.app.SyncRevocations(ctx))
		e.revokeElsewhere(t, sid, e.clock.Now().Add(-time.Minute))
		e.clock.Advance(time.Second)
		require.NoError(t, e.app.SyncRevocations(ctx))
		assert.True(t, e.app.revoked.has(sid))
	})

	t.Run("forgets_revocations_older_than_an_access_token", func(t *testing.T) {
		e := newEnv(t, Config{AccessTTL: 5 * time.Minute})
		e.mustUser(t, "alice", domain.RolePatient)
		p := e.mustSignIn(t, "alice")
		sid := e.tokens.claims(t, p.Access).SessionID
		require.NoError(t, e.app.Blacklist(ctx, p.Refresh))
		require.True(t, e.app.revoked.has(sid))

		e.clock.Advance(5*time.Minute + time.Minute - time.Second)
		require.NoError(t, e.app.SyncRevocations(ctx))
		assert.True(t, e.app.revoked.has(sid), "its access tokens may still be alive")

		e.clock.Advance(2 * time.Second)
		require.NoError(t, e.app.SyncRevocations(ctx))
		assert.False(t, e.app.revoked.has(sid), "every access token of it has expired")
		// And the token is refused anyway, by its expiry.
		_, err := e.app.Authenticate(ctx, p.Access)
		requireCode(t, err, domain.EUnauthorized, domain.MsgTokenNotValid)
	})

	t.Run("store_fails", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.db.Fail = failOn(errBoom, "Sessions.RevokedAfter")
		assert.ErrorIs(t, e.app.SyncRevocations(ctx), errBoom)
	})
}

func TestChangePassword(t *testing.T) {
	const newPassword = "a-much-better-passphrase"
	setup := func(t *testing.T) (*testEnv, domain.User, TokenPair) {
		e := newEnv(t, Config{})
		u := e.mustUser(t, "alice", domain.RolePatient)
		return e, u, e.mustSignIn(t, "alice")
	}

	t.Run("success_revokes_every_other_sign_in", func(t *testing.T) {
		e, u, p := setup(t)
		p2 := e.mustSignIn(t, "alice")
		current := e.mustSignIn(t, "alice")
		e.mustUser(t, "bob", domain.RolePatient)
		bob := e.mustSignIn(t, "bob")
		caller, err := e.app.Authenticate(ctx, current.Access)
		require.NoError(t, err)

		require.NoError(t, e.app.ChangePassword(ctx, caller, password("alice"), newPassword))
		_, err = e.app.Authenticate(ctx, current.Access)
		require.NoError(t, err, "the sign-in that changed the password stays")

		stored, err := e.app.Me(ctx, actorOf(u))
		require.NoError(t, err)
		assert.Equal(t, fakeHashPrefix+newPassword, stored.PasswordHash)
		for _, access := range []string{p.Access, p2.Access} {
			_, err := e.app.Authenticate(ctx, access)
			requireCode(t, err, domain.EUnauthorized, domain.MsgTokenNotValid)
		}
		_, err = e.app.Refresh(ctx, p2.Refresh)
		requireCode(t, err, domain.EUnauthorized, domain.MsgRefreshInvalid)
		_, err = e.app.Authenticate(ctx, bob.Access)
		require.NoError(t, err, "another user's sign-in is untouched")

		_, err = e.app.SignIn(ctx, "alice", password("alice"), "198.51.100.1")
		requireCode(t, err, domain.EUnauthorized, "")
		_, err = e.app.SignIn(ctx, "alice", newPassword, "198.51.100.1")
		require.NoError(t, err)
	})

	t.Run("wrong_old_password", func(t *testing.T) {
		e, u, p := setup(t)
		err := e.app.ChangePassword(ctx, actorOf(u), "not-it", newPassword)
		requireFields(t, err, map[string][]string{"old_password": {"Wrong password."}})
		stored, _ := e.app.Me(ctx, actorOf(u))
		assert.Equal(t, u.PasswordHash, stored.PasswordHash)
		_, err = e.app.Authenticate(ctx, p.Access)
		require.NoError(t, err)
	})

	weak := []struct {
		name     string
		password string
		want     []string
	}{
		{"too_short", "abc", []string{"This password is too short. It must contain at least 8 characters."}},
		{"too_common", "password123", []string{"This password is too common."}},
		{"numeric", "31415926535", []string{"This password is entirely numeric."}},
		{"like_username", "alice2024", []string{"The password is too similar to the username."}},
		{"blank", "", []string{domain.MsgBlank}},
	}
	for _, tt := range weak {
		t.Run("weak_new_password/"+tt.name, func(t *testing.T) {
			e, u, p := setup(t)
			err := e.app.ChangePassword(ctx, actorOf(u), password("alice"), tt.password)
			requireFields(t, err, map[string][]string{"new_password": tt.want})
			_, err = e.app.Authenticate(ctx, p.Access)
			require.NoError(t, err)
		})
	}

	t.Run("update_fails_nothing_revoked", func(t *testing.T) {
		e, u, p := setup(t)
		e.db.Fail = failOn(errBoom, "Sessions.RevokeUser")
		err := e.app.ChangePassword(ctx, actorOf(u), password("alice"), newPassword)
		assert.ErrorIs(t, err, errBoom)
		stored, _ := e.app.Me(ctx, actorOf(u))
		assert.Equal(t, u.PasswordHash, stored.PasswordHash, "rolled back with the revocation")
		_, err = e.app.Authenticate(ctx, p.Access)
		require.NoError(t, err)
	})

	failures := []struct {
		name  string
		setup func(e *testEnv)
	}{
		{"user_lookup", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Users.ByID") }},
		{"user_update", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Users.Update") }},
		{"verify", func(e *testEnv) { e.hasher.VerifyErr = errBoom }},
		{"hash", func(e *testEnv) { e.hasher.HashErr = errBoom }},
		{"sync", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Sessions.RevokedAfter") }},
	}
	for _, tt := range failures {
		t.Run("fails/"+tt.name, func(t *testing.T) {
			e, u, _ := setup(t)
			tt.setup(e)
			assert.ErrorIs(t, e.app.ChangePassword(ctx, actorOf(u), password("alice"), newPassword), errBoom)
		})
	}
}

func TestDoctors(t *testing.T) {
	e := newEnv(t, Config{})
	patient := e.mustUser(t, "alice", domain.RolePatient)
	d1 := e.mustUser(t, "dr1", domain.RoleDoctor)
	e.mustUser(t, "drpending", domain.RoleDoctor, unapproved)
	e.mustUser(t, "drgone", domain.RoleDoctor, inactive)
	d2 := e.mustUser(t, "dr2", domain.RoleDoctor)
	d3 := e.mustUser(t, "dr3", domain.RoleDoctor)
	e.mustUser(t, "root", domain.RoleAdmin)

	all, next, err := e.app.Doctors(ctx, actorOf(patient), domain.Page{})
	require.NoError(t, err)
	assert.Nil(t, next)
	assert.Equal(t, []domain.User{d3, d2, d1}, all, "approved active doctors, newest first")

	first, next, err := e.app.Doctors(ctx, actorOf(patient), domain.Page{Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, []domain.User{d3, d2}, first)
	require.NotNil(t, next)
	assert.Equal(t, domain.Cursor{CreatedAt: d2.CreatedAt, ID: d2.ID}, *next)
	rest, next, err := e.app.Doctors(ctx, actorOf(patient), domain.Page{Limit: 2, After: next})
	require.NoError(t, err)
	assert.Equal(t, []domain.User{d1}, rest)
	assert.Nil(t, next)

	e.db.Fail = failOn(errBoom, "Users.List")
	_, _, err = e.app.Doctors(ctx, actorOf(patient), domain.Page{})
	assert.ErrorIs(t, err, errBoom)
}
