package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"healthrecord/ports"
	"healthrecord/ports/storetest"
)

// mustOpenDB opens a migrated database in a fresh temporary directory.
func mustOpenDB(t *testing.T) *DB {
	t.Helper()
	db, _ := mustOpenDBAt(t)
	return db
}

// mustOpenDBAt is mustOpenDB that also tells where the file is.
func mustOpenDBAt(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	db := mustOpenRaw(t, path)
	require.NoError(t, db.Migrate(t.Context()))
	return db, path
}

// mustOpenRaw opens path without migrating it.
func mustOpenRaw(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// rawSQL opens the file behind the adapter's back, as an intruder would.
func rawSQL(t *testing.T, path string) *sql.DB {
	t.Helper()
	c, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ports.Store { return mustOpenDB(t) })
}

// count returns the rows of table as the adapter's read pool sees them.
func count(t *testing.T, db *DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.read.QueryRowContext(context.Background(), `SELECT count(*) FROM `+table).Scan(&n))
	return n
}

// sqlConns is a pool and its size.
type sqlConns struct {
	db *sql.DB
	n  int
}

// all takes every connection of the pool at once, released at cleanup.
func (p *sqlConns) all(t *testing.T) []*sql.Conn {
	t.Helper()
	var cs []*sql.Conn
	for range p.n {
		c, err := p.db.Conn(t.Context())
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		cs = append(cs, c)
	}
	return cs
}
