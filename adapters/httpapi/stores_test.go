package httpapi_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"healthrecord/adapters/postgres"
	"healthrecord/adapters/sqlite"
	"healthrecord/internal/pgtest"
	"healthrecord/ports"
)

// testStore is what the tests need of a store, whichever adapter.
type testStore interface {
	ports.Store
	Ready(ctx context.Context) error
}

// The package's tests run once per store: first on SQLite, then (the
// whole suite again) on PostgreSQL, each test on a store of its own.
// HEALTHRECORD_TEST_STORES=sqlite (or =postgres) runs one pass only.
// The browser tests run on SQLite only: they test the pages, which see
// the store only through the API the other tests already run on both.
var (
	// pgDB is the PostgreSQL database of the PostgreSQL pass, nil during
	// the SQLite pass; each test's store is a schema in it.
	pgDB *pgtest.DB
)

// sqliteOnly names the tests the PostgreSQL pass skips.
const sqliteOnly = "^TestBrowser_"

func TestMain(m *testing.M) {
	flag.Parse()
	want := os.Getenv("HEALTHRECORD_TEST_STORES")
	if want == "" {
		want = "sqlite,postgres"
	}
	if fuzzing() {
		// The fuzz targets decode requests and touch no store; a second
		// m.Run would fuzz them again, past the -fuzztime the caller set.
		want = "sqlite"
	}
	code := 0
	if strings.Contains(want, "sqlite") {
		code = m.Run()
	}
	if strings.Contains(want, "postgres") {
		code = max(code, runOnPostgres(m))
	}
	os.Exit(code)
}

// fuzzing reports whether this process fuzzes (go test -fuzz) or is one
// of the fuzzing engine's workers.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// runOnPostgres runs the suite again with every store on PostgreSQL. An
// unreachable server fails the run in CI and skips the pass elsewhere,
// saying why either way.
func runOnPostgres(m *testing.M) int {
	db, drop, err := pgtest.Create()
	var down *pgtest.ErrUnreachable
	if errors.As(err, &down) && os.Getenv("CI") != "true" {
		fmt.Println("SKIP the PostgreSQL pass:", err)
		return 0
	}
	if err != nil {
		fmt.Println("FAIL the PostgreSQL pass:", err)
		return 1
	}
	defer func() {
		if err := drop(); err != nil {
			fmt.Println("FAIL the PostgreSQL pass:", err)
		}
	}()
	skip := sqliteOnly
	if s := flag.Lookup("test.skip"); s != nil {
		if s.Value.String() != "" {
			skip = s.Value.String() + "|" + sqliteOnly
		}
		if err := s.Value.Set(skip); err != nil {
			fmt.Println("FAIL the PostgreSQL pass:", err)
			return 1
		}
	}
	fmt.Println("=== the same tests on PostgreSQL")
	pgDB = db
	return m.Run()
}

// onPostgres reports whether this is the PostgreSQL pass.
func onPostgres() bool { return pgDB != nil }

// openTestStore opens and migrates a fresh store of this pass, closed
// when tb ends: a SQLite file, or a PostgreSQL schema of its own.
func openTestStore(tb testing.TB) testStore {
	tb.Helper()
	ctx := context.Background()
	if onPostgres() {
		db, err := postgres.Open(ctx, pgDB.Schema(tb))
		require.NoError(tb, err)
		tb.Cleanup(db.Close)
		require.NoError(tb, db.Migrate(ctx))
		return db
	}
	db, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "test.db"))
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = db.Close() })
	require.NoError(tb, db.Migrate(ctx))
	return db
}

// countersOf are the throttle counters the service uses on db: shared in
// the database on PostgreSQL, as `serve` wires them; nil (the app's and
// the server's own memory) on SQLite.
func countersOf(tb testing.TB, db testStore) (ports.Attempts, ports.Rates) {
	tb.Helper()
	pg, ok := db.(*postgres.DB)
	if !ok {
		return nil, nil
	}
	c, err := pg.Counters(context.Background())
	require.NoError(tb, err)
	return c, c
}
