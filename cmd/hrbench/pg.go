package main

// --db postgres://…: the servers under test share a fresh PostgreSQL
// database, made on the given server for this run and dropped at its end
// (unless --keep). The ceiling keeps its copy of the rows in a schema of
// its own in the same database, so both sides run on the same server with
// the same settings.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The stores hrbench can run healthrecord on.
const (
	storeSQLite   = "sqlite"
	storePostgres = "postgres"
)

// isPostgresURL reports whether db names a PostgreSQL server (by its URL
// scheme), as healthrecord decides.
func isPostgresURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// redactURL hides a password in a PostgreSQL URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// pgDatabase is the run's fresh database.
type pgDatabase struct {
	URL  string // connects to it, with the given URL's user, host and options
	Name string
	// conn is hrbench's own connection to it: the outbox backlog and the
	// backends' CPU are read through it.
	conn  *pgx.Conn
	local bool // the server runs on this machine: its backends' CPU is readable
	admin string
	// logf reports what the benchmark could not measure (nil: nothing).
	logf func(string, ...any)
}

// createPGDatabase creates hrbench_<random> on the server of admin (a
// postgres:// URL of any database there) and connects to it.
func createPGDatabase(ctx context.Context, admin string) (*pgDatabase, error) {
	u, err := url.Parse(admin)
	if err != nil || u.Host == "" && u.Query().Get("host") == "" {
		return nil, errors.New("--db: not a postgres://user@host:port/database URL")
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, admin)
	if err != nil {
		return nil, fmt.Errorf("--db: connect to %s: %w", redactURL(admin), err)
	}
	defer c.Close(context.Background())
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := "hrbench_" + hex.EncodeToString(b)
	if _, err := c.Exec(cctx, "CREATE DATABASE "+name+" ENCODING 'UTF8' TEMPLATE template0"); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	d := &pgDatabase{Name: name, admin: admin}
	u.Path = "/" + name
	d.URL = u.String()
	if d.conn, err = pgx.Connect(cctx, d.URL); err != nil {
		_ = d.drop()
		return nil, fmt.Errorf("connect to %s: %w", name, err)
	}
	cfg := d.conn.Config()
	d.local = isLoopback(cfg.Host)
	return d, nil
}

// isLoopback: a unix socket or a loopback address is this machine.
func isLoopback(host string) bool {
	if strings.HasPrefix(host, "/") || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// close closes hrbench's connection (the database stays).
func (d *pgDatabase) close() {
	if d.conn != nil {
		_ = d.conn.Close(context.Background())
		d.conn = nil
	}
}

// drop closes hrbench's connection and drops the database, with any
// connection still open to it.
func (d *pgDatabase) drop() error {
	d.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, d.admin)
	if err != nil {
		return fmt.Errorf("drop %s: %w", d.Name, err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+d.Name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop %s: %w", d.Name, err)
	}
	return nil
}

// analyze gathers the planner's statistics after seeding, as autovacuum
// would within a minute or so on a database that had just grown: the
// scenarios then run on the plans a live database has.
func (d *pgDatabase) analyze(ctx context.Context) error {
	_, err := d.conn.Exec(ctx, "ANALYZE")
	return err
}

// pendingOutbox is how many outbox events wait for delivery.
func (d *pgDatabase) pendingOutbox(ctx context.Context) (int, error) {
	var n int
	err := d.conn.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE state = 'pending'`).Scan(&n)
	return n, err
}

// backendPIDs are the server processes serving connections to the
// database (healthrecord's pools, the ceiling's, hrbench's own), when the
// server runs on this machine.
func (d *pgDatabase) backendPIDs(ctx context.Context) []int {
	if d == nil || !d.local {
		return nil
	}
	rows, err := d.conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	var pids []int32
	if err == nil {
		pids, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	}
	if err != nil {
		if d.logf != nil {
			d.logf("db CPU not measured: %v", err)
		}
		return nil
	}
	out := make([]int, len(pids))
	for i, p := range pids {
		out[i] = int(p)
	}
	return out
}

// dbCPU starts counting the CPU the database's backends spend; the
// returned function ends the count. Backends that came and went in
// between are missed, and PostgreSQL's own background processes (WAL
// writer, checkpointer) are not counted: it is a lower bound.
func (d *pgDatabase) dbCPU(ctx context.Context) func() time.Duration {
	if d == nil || !d.local {
		return func() time.Duration { return 0 }
	}
	before := map[int]time.Duration{}
	for _, pid := range d.backendPIDs(ctx) {
		before[pid] = procCPU(pid)
	}
	return func() time.Duration {
		var total time.Duration
		for _, pid := range d.backendPIDs(ctx) {
			total += procCPU(pid) - before[pid] // a new backend counts from zero
		}
		return max(total, 0)
	}
}
