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
	"errors"
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
	db, drop, err := Create()
	var down *ErrUnreachable
	if errors.As(err, &down) {
		Unreachable(t, os.Getenv("CI") == "true", err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// ErrUnreachable is Create's error when the server does not answer.
type ErrUnreachable struct{ msg string }

func (e *ErrUnreachable) Error() string { return e.msg }

// Create is New for a caller without a test, such as a TestMain: it
// creates the database and returns drop, which drops it (with any
// connection still open to it). An unreachable server is an
// *ErrUnreachable.
func Create() (db *DB, drop func() error, err error) {
	base := BaseURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return nil, nil, &ErrUnreachable{fmt.Sprintf("PostgreSQL unreachable at %s (set HEALTHRECORD_TEST_POSTGRES, "+
			"or start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): %v", Redact(base), err)}
	}
	defer admin.Close(context.Background())
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return nil, nil, err
	}
	name := "hr_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" ENCODING 'UTF8' TEMPLATE template0"); err != nil {
		return nil, nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
		return nil
	}
	u, err := url.Parse(base)
	if err != nil {
		_ = drop()
		return nil, nil, err
	}
	u.Path = "/" + name
	return &DB{URL: u.String()}, drop, nil
}

// BaseURL is the server the tests use: HEALTHRECORD_TEST_POSTGRES, or
// DefaultURL.
func BaseURL() string {
	if base := os.Getenv("HEALTHRECORD_TEST_POSTGRES"); base != "" {
		return base
	}
	return DefaultURL
}

// Schema creates an empty schema in the database and returns the URL whose
// connections use it: a fresh store for the price of a CREATE SCHEMA.
func (d *DB) Schema(t testing.TB) string {
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
