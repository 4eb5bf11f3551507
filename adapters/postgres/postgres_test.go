package postgres_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"healthrecord/adapters/postgres"
	"healthrecord/internal/pgtest"
	"healthrecord/ports"
	"healthrecord/ports/storetest"
)

// testDB is a database made for this test.
type testDB struct{ *pgtest.DB }

func mustTestDB(t *testing.T) testDB { return testDB{pgtest.New(t)} }

// mustOpen opens and migrates a new, empty store in a schema of its own
// (a database per store would cost a CREATE DATABASE each), closed when
// the test ends.
func (d testDB) mustOpen(t *testing.T) *postgres.DB {
	t.Helper()
	db := mustOpenURL(t, d.mustSchema(t))
	require.NoError(t, db.Migrate(t.Context()))
	return db
}

// mustSchema is the URL of an empty schema of the database.
func (d testDB) mustSchema(t *testing.T) string { return d.Schema(t) }

// mustOpenURL opens the database at url (another instance, when a store
// is open there already), closed when the test ends.
func mustOpenURL(t *testing.T, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

func TestStoreContract(t *testing.T) {
	d := mustTestDB(t)
	storetest.Run(t, func(t *testing.T) ports.Store { return d.mustOpen(t) })
}
