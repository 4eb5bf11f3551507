package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// mustSession creates a live sign-in of user, expiring a day after t0.
func mustSession(t *testing.T, r ports.Repos, id string, user int64) domain.Session {
	t.Helper()
	s := domain.Session{ID: id, UserID: user, CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
	require.NoError(t, r.Sessions().Create(ctx(t), s))
	return s
}

func sessionIDs(rs []ports.RevokedSession) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testSessions(t *testing.T, open Opener) {
	t.Run("create_and_get", func(t *testing.T) {
		s := open(t)
		u := mustPatient(t, s, "p")
		want := mustSession(t, s, "s1", u.ID)
		got, err := s.Sessions().Get(ctx(t), "s1")
		require.NoError(t, err)
		requireSameTime(t, want.CreatedAt, got.CreatedAt)
		requireSameTime(t, want.ExpiresAt, got.ExpiresAt)
		assert.Equal(t, []any{"s1", u.ID}, []any{got.ID, got.UserID})
		assert.Nil(t, got.RevokedAt)
		_, err = s.Sessions().Get(ctx(t), "nope")
		requireCode(t, domain.ENotFound, err)
	})

	t.Run("revoke_keeps_first_time", func(t *testing.T) {
		s := open(t)
		u := mustPatient(t, s, "p")
		mustSession(t, s, "s1", u.ID)
		require.NoError(t, s.Sessions().Revoke(ctx(t), "s1", at(10)))
		require.NoError(t, s.Sessions().Revoke(ctx(t), "s1", at(20)))
		got, err := s.Sessions().Get(ctx(t), "s1")
		require.NoError(t, err)
		require.NotNil(t, got.RevokedAt)
		requireSameTime(t, at(10), *got.RevokedAt)
		requireCode(t, domain.ENotFound, s.Sessions().Revoke(ctx(t), "nope", at(10)))
	})

	t.Run("revoke_user_and_revoked_since", func(t *testing.T) {
		s := open(t)
		u, v := mustPatient(t, s, "u"), mustPatient(t, s, "v")
		mustSession(t, s, "u1", u.ID)
		mustSession(t, s, "u2", u.ID)
		mustSession(t, s, "v1", v.ID)
		mustSession(t, s, "v2", v.ID)
		require.NoError(t, s.Sessions().Revoke(ctx(t), "v2", at(5)))
		mustSession(t, s, "u3", u.ID)
		require.NoError(t, s.Sessions().RevokeUser(ctx(t), u.ID, "u3", at(10)))
		u3, err := s.Sessions().Get(ctx(t), "u3")
		require.NoError(t, err)
		assert.Nil(t, u3.RevokedAt, "the kept sign-in stays")

		for _, id := range []string{"u1", "u2"} {
			got, err := s.Sessions().Get(ctx(t), id)
			require.NoError(t, err)
			require.NotNil(t, got.RevokedAt, id)
			requireSameTime(t, at(10), *got.RevokedAt)
		}
		v1, err := s.Sessions().Get(ctx(t), "v1")
		require.NoError(t, err)
		assert.Nil(t, v1.RevokedAt, "another user's sign-in stays")

		all, err := s.Sessions().RevokedAfter(ctx(t), 0, at(0))
		require.NoError(t, err)
		assert.Equal(t, []string{"v2", "u1", "u2"}, sessionIDs(all), "in the order revoked")
		requireSameTime(t, at(5), all[0].RevokedAt)
		assert.Less(t, all[0].Seq, all[1].Seq)
		later, err := s.Sessions().RevokedAfter(ctx(t), all[0].Seq, at(0))
		require.NoError(t, err)
		assert.Equal(t, []string{"u1", "u2"}, sessionIDs(later))
		none, err := s.Sessions().RevokedAfter(ctx(t), all[2].Seq, at(0))
		require.NoError(t, err)
		assert.Empty(t, none)
		recent, err := s.Sessions().RevokedAfter(ctx(t), 0, at(6))
		require.NoError(t, err)
		assert.Equal(t, []string{"u1", "u2"}, sessionIDs(recent), "notBefore")

		// A revocation dated before the last one seen (a write that took
		// long to commit) is still after it in sequence.
		require.NoError(t, s.Sessions().Revoke(ctx(t), "u3", at(1)))
		slow, err := s.Sessions().RevokedAfter(ctx(t), all[2].Seq, at(0))
		require.NoError(t, err)
		assert.Equal(t, []string{"u3"}, sessionIDs(slow))
	})

	t.Run("refresh_token_reuse", func(t *testing.T) {
		s := open(t)
		u := mustPatient(t, s, "p")
		mustSession(t, s, "s1", u.ID)
		exp := at(3600)
		for _, tc := range []struct {
			jti   string
			fresh bool
		}{{"j1", true}, {"j1", false}, {"j2", true}, {"j1", false}, {"j2", false}} {
			fresh, err := s.Sessions().UseRefresh(ctx(t), tc.jti, "s1", exp, at(1))
			require.NoError(t, err)
			assert.Equal(t, tc.fresh, fresh, tc.jti)
		}
	})
}
