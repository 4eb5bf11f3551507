package memstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/memstore"
	"healthrecord/domain"
	"healthrecord/ports"
	"healthrecord/ports/storetest"
)

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) ports.Store { return memstore.New(memstore.Options{}) })
}

// mustPatient stores a patient named name.
func mustPatient(t *testing.T, s *memstore.Store, name string) domain.User {
	t.Helper()
	u := domain.User{Username: name, Email: name + "@example.com", Role: domain.RolePatient, Active: true,
		PasswordHash: "h", CreatedAt: time.Unix(0, 0)}
	require.NoError(t, s.Users().Create(t.Context(), &u))
	return u
}

func TestHook(t *testing.T) {
	boom := errors.New("boom")
	t.Run("fails_an_operation", func(t *testing.T) {
		s := memstore.New(memstore.Options{Hook: func(op memstore.Op) error {
			if op.Name == "Users.Create" {
				return boom
			}
			return nil
		}})
		u := domain.User{Username: "p", Role: domain.RolePatient, CreatedAt: time.Unix(0, 0)}
		require.ErrorIs(t, s.Users().Create(t.Context(), &u), boom)
		_, err := s.Users().ByUsername(t.Context(), "p")
		require.Equal(t, domain.ENotFound, domain.ErrorCode(err), "nothing stored")
	})

	t.Run("failed_commit_rolls_back", func(t *testing.T) {
		var ops []memstore.Op
		s := memstore.New(memstore.Options{Hook: func(op memstore.Op) error {
			ops = append(ops, op)
			if op.Name == "Commit" {
				return boom
			}
			return nil
		}})
		err := s.WithinTx(t.Context(), func(tx ports.Repos) error {
			mustPatientIn(t, tx, "p")
			return nil
		})
		require.ErrorIs(t, err, boom)
		_, err = s.Users().ByUsername(t.Context(), "p")
		require.Equal(t, domain.ENotFound, domain.ErrorCode(err))
		assert.Equal(t, []memstore.Op{{Name: "WithinTx"}, {Name: "Users.Create", InTx: true}, {Name: "Commit", InTx: true},
			{Name: "Users.ByUsername"}}, ops)
	})
}

func mustPatientIn(t *testing.T, r ports.Repos, name string) {
	t.Helper()
	u := domain.User{Username: name, Role: domain.RolePatient, Active: true, CreatedAt: time.Unix(0, 0)}
	require.NoError(t, r.Users().Create(t.Context(), &u))
}

func TestTransactionRepositoriesEndWithIt(t *testing.T) {
	s := memstore.New(memstore.Options{})
	var kept ports.Repos
	require.NoError(t, s.WithinTx(t.Context(), func(tx ports.Repos) error { kept = tx; return nil }))
	_, err := kept.Users().ByID(t.Context(), 1)
	require.Error(t, err)
	assert.NotEqual(t, domain.ENotFound, domain.ErrorCode(err), "a closed transaction, not a missing user")
}

func TestRaw(t *testing.T) {
	s := memstore.New(memstore.Options{})
	p := mustPatient(t, s, "p")
	var before *memstore.Tables
	s.Raw(func(tb *memstore.Tables) { before = tb })
	s.Raw(func(tb *memstore.Tables) { delete(tb.Users, p.ID) })
	_, err := s.Users().ByID(t.Context(), p.ID)
	assert.Equal(t, domain.ENotFound, domain.ErrorCode(err), "changed behind the ports' back")
	assert.Contains(t, before.Users, p.ID, "tables read earlier stay as they were")
}
