// Package pgtest gives tests a PostgreSQL database of their own: created on
// the server HEALTHRECORD_TEST_POSTGRES names (the machine's local one by
// default: 127.0.0.1:5432, trust authentication, user postgres) and
// dropped when the test ends. An unreachable server fails the test under
// CI=true and skips it, saying why, elsewhere.
package pgtest

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
)

// DefaultURL is the PostgreSQL this machine kind runs.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DB is a database made for one test.
type DB struct {
	// URL connects to it.
	URL     string
	schemas atomic.Int64
}

// New creates a database named hr_test_<random> and drops it (with any
// connection still open to it) when t ends.
func New(t *testing.T) *DB {
	t.Helper()
	base := os.Getenv("HEALTHRECORD_TEST_POSTGRES")
	if base == "" {
		base = DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		Unreachable(t, os.Getenv("CI") == "true", fmt.Sprintf("PostgreSQL unreachable at %s (set HEALTHRECORD_TEST_POSTGRES, "+
			"or start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): %v", Redact(base), err))
	}
	defer admin.Close(context.Background())
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "hr_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" ENCODING 'UTF8' TEMPLATE template0"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return &DB{URL: u.String()}
}

// Schema creates an empty schema in the database and returns the URL whose
// connections use it: a fresh store for the price of a CREATE SCHEMA.
func (d *DB) Schema(t *testing.T) string {
	t.Helper()
	schema := fmt.Sprintf("s%d", d.schemas.Add(1))
	admin, err := pgx.Connect(t.Context(), d.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Unreachable fails the test in CI, where the PostgreSQL tests must run,
// and skips it elsewhere, saying why either way.
func Unreachable(t testing.TB, ci bool, msg string) {
	t.Helper()
	if ci {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Redact hides a password in a URL for a message.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
