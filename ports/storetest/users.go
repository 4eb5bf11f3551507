package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

func testUsers(t *testing.T, open Opener) {
	t.Run("create_and_get", func(t *testing.T) {
		s := open(t)
		u := domain.User{
			Username: "alice", Email: "alice@example.com", Role: domain.RoleDoctor,
			Approved: false, Active: true, PasswordHash: "$argon2id$x", CreatedAt: t0,
		}
		require.NoError(t, s.Users().Create(ctx(t), &u))
		require.NotZero(t, u.ID)

		byID, err := s.Users().ByID(ctx(t), u.ID)
		require.NoError(t, err)
		requireSameTime(t, u.CreatedAt, byID.CreatedAt)
		byID.CreatedAt = u.CreatedAt
		assert.Equal(t, u, byID)

		byName, err := s.Users().ByUsername(ctx(t), "alice")
		require.NoError(t, err)
		assert.Equal(t, u.ID, byName.ID)
	})

	t.Run("absent_is_not_found", func(t *testing.T) {
		s := open(t)
		_, err := s.Users().ByID(ctx(t), 999)
		requireCode(t, domain.ENotFound, err)
		_, err = s.Users().ByUsername(ctx(t), "nobody")
		requireCode(t, domain.ENotFound, err)
	})

	t.Run("duplicate_username_is_taken", func(t *testing.T) {
		s := open(t)
		mustPatient(t, s, "bob")
		dup := domain.User{Username: "bob", Email: "x@example.com", Role: domain.RolePatient, Active: true, PasswordHash: "h", CreatedAt: t0}
		err := s.Users().Create(ctx(t), &dup)
		requireCode(t, domain.EInvalid, err)
		var de *domain.Error
		require.ErrorAs(t, err, &de)
		assert.Contains(t, de.Fields, "username")
		// Compared after NFKC normalisation and case folding.
		for _, name := range []string{"Bob", "ＢＯＢ"} {
			dup.Username = name
			requireCode(t, domain.EInvalid, s.Users().Create(ctx(t), &dup))
		}
		got, err := s.Users().ByUsername(ctx(t), "ｂｏｂ")
		require.NoError(t, err)
		assert.Equal(t, "bob", got.Username, "sign-in compares the same way")
	})

	t.Run("update", func(t *testing.T) {
		s := open(t)
		u := mustDoctor(t, s, "carol")
		u.Email, u.Approved, u.Active, u.PasswordHash = "new@example.com", false, false, "$argon2id$new"
		u.Username = "ignored"
		require.NoError(t, s.Users().Update(ctx(t), u))
		got, err := s.Users().ByID(ctx(t), u.ID)
		require.NoError(t, err)
		assert.Equal(t, "carol", got.Username, "the username does not change")
		assert.Equal(t, "new@example.com", got.Email)
		assert.False(t, got.Approved)
		assert.False(t, got.Active)
		assert.Equal(t, "$argon2id$new", got.PasswordHash)

		requireCode(t, domain.ENotFound, s.Users().Update(ctx(t), domain.User{ID: 999, Email: "a@b.c"}))
	})

	t.Run("list_filters_newest_first", func(t *testing.T) {
		s := open(t)
		add := func(name string, role domain.Role, approved, active bool, sec int) int64 {
			u := domain.User{Username: name, Email: name + "@example.com", Role: role, Approved: approved, Active: active, PasswordHash: "h", CreatedAt: at(sec)}
			require.NoError(t, s.Users().Create(ctx(t), &u))
			return u.ID
		}
		p1 := add("p1", domain.RolePatient, true, true, 0)
		d1 := add("d1", domain.RoleDoctor, true, true, 1)
		d2 := add("d2", domain.RoleDoctor, false, true, 2)
		d3 := add("d3", domain.RoleDoctor, true, false, 3)
		a := add("a", domain.RoleAdmin, true, true, 4)
		doctor, yes, no := domain.RoleDoctor, true, false
		for _, tc := range []struct {
			name string
			f    ports.UserFilter
			want []int64
		}{
			{"all", ports.UserFilter{}, []int64{a, d3, d2, d1, p1}},
			{"doctors", ports.UserFilter{Role: &doctor}, []int64{d3, d2, d1}},
			{"assignable", ports.UserFilter{Role: &doctor, Approved: &yes, Active: &yes}, []int64{d1}},
			{"unapproved", ports.UserFilter{Approved: &no}, []int64{d2}},
			{"inactive", ports.UserFilter{Active: &no}, []int64{d3}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := walk(t, 2, func(p domain.Page) ([]domain.User, error) {
					return s.Users().List(ctx(t), tc.f, p)
				}, func(u domain.User) (time.Time, int64) { return u.CreatedAt, u.ID })
				assert.Equal(t, tc.want, got)
			})
		}
	})
}
