package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/postgres"
	"healthrecord/ports"
	"healthrecord/ports/storetest"
)

// defaultTestURL is the PostgreSQL this machine kind runs: local, trust
// authentication, user postgres.
const defaultTestURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// testDB is a database made for this run: its URL, and a counter naming
// a fresh schema per store.
type testDB struct {
	url     string
	schemas atomic.Int64
}

// mustTestDB creates a database named hr_test_<random> on the server
// HEALTHRECORD_TEST_POSTGRES names (the local one by default) and drops it
// when the test ends. An unreachable server fails the test under CI=true
// and skips it, saying why, elsewhere.
func mustTestDB(t *testing.T) *testDB {
	t.Helper()
	base := os.Getenv("HEALTHRECORD_TEST_POSTGRES")
	if base == "" {
		base = defaultTestURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		unreachable(t, os.Getenv("CI") == "true", fmt.Sprintf("PostgreSQL unreachable at %s (set HEALTHRECORD_TEST_POSTGRES, "+
			"or start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): %v", redact(base), err))
	}
	defer admin.Close(context.Background())
	name := "hr_test_" + randomHex(t)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name+" ENCODING 'UTF8' TEMPLATE template0")
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "/" + name
	return &testDB{url: u.String()}
}

// mustOpen opens and migrates a new, empty store in a schema of its own
// (a database per store would cost a CREATE DATABASE each), closed when
// the test ends.
func (d *testDB) mustOpen(t *testing.T) *postgres.DB {
	t.Helper()
	db := mustOpenURL(t, d.mustSchema(t))
	require.NoError(t, db.Migrate(t.Context()))
	return db
}

// mustSchema creates an empty schema and returns the URL whose
// connections use it.
func (d *testDB) mustSchema(t *testing.T) string {
	t.Helper()
	schema := fmt.Sprintf("s%d", d.schemas.Add(1))
	admin, err := pgx.Connect(t.Context(), d.url)
	require.NoError(t, err)
	_, err = admin.Exec(t.Context(), "CREATE SCHEMA "+schema)
	require.NoError(t, admin.Close(context.Background()))
	require.NoError(t, err)
	u, err := url.Parse(d.url)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// mustOpenURL opens the database at url (another instance, when a store
// is open there already), closed when the test ends.
func mustOpenURL(t *testing.T, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

// unreachable fails the test in CI, where the PostgreSQL tests must run,
// and skips it elsewhere, saying why either way.
func unreachable(t testing.TB, ci bool, msg string) {
	t.Helper()
	if ci {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// redact hides a password in a URL for a message.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func TestStoreContract(t *testing.T) {
	d := mustTestDB(t)
	storetest.Run(t, func(t *testing.T) ports.Store { return d.mustOpen(t) })
}
