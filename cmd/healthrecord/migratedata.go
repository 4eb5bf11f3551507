package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	"healthrecord/domain"
)

// migrateDataTables are the tables migrate-data copies, parents first.
// audit_head, a single row that migrations create, is updated instead.
var migrateDataTables = []string{
	"users", "records", "comments", "notifications", "outbox", "outbox_deliveries",
	"audit", "sessions", "used_refresh",
}

// triggeredTables have triggers that keep derived columns (a user's
// stored bytes, a record's version); the copy brings those columns as
// they are, so the triggers are off while it runs.
var triggeredTables = []string{"users", "records", "comments"}

// cmdMigrateData copies a SQLite database into an empty PostgreSQL one, in
// one PostgreSQL transaction, and verifies the audit chain on both sides
// under the same key.
func cmdMigrateData(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const use = "usage: healthrecord migrate-data --from sqlite://PATH --to postgres://… [--key-file FILE]"
	var from, to string
	var c config
	fs := newFlagSet("migrate-data", getenv, stderr, use)
	fs.StringVar(&from, "from", "", "the SQLite database to copy, as sqlite://PATH")
	fs.StringVar(&to, "to", "", "the PostgreSQL database to fill, as postgres://…; it must hold no data")
	fs.str(&c.KeyFile, "key-file", "HEALTHRECORD_KEY_FILE", "", "the key file the SQLite database uses (default: its path + .keys); PostgreSQL's instances use it from now on")
	fs.str(&c.AuditKeyFile, "audit-key-file", "HEALTHRECORD_AUDIT_KEY_FILE", "", "audit chain key file (default: the key file + .audit)")
	fs.str(&c.LogLevel, "log-level", "HEALTHRECORD_LOG_LEVEL", "info", "debug, info, warn or error")
	if err := fs.parseArgs(args, 0, 0); err != nil {
		return err
	}
	path, ok := strings.CutPrefix(from, "sqlite://")
	if !ok || path == "" {
		return usageError{"--from must be sqlite://PATH\n" + use}
	}
	if !isPostgres(to) {
		return usageError{"--to must be a postgres:// URL\n" + use}
	}
	src := c
	src.DB = path
	if err := src.validate(); err != nil {
		return err
	}
	if err := requireDB(src); err != nil {
		return err
	}
	dst := src // the same key files: the chain was keyed with them
	dst.DB = to
	log := newLogger(stderr, c.LogLevel)

	// The source first: migrated to the schema PostgreSQL's mirrors, and
	// its chain intact, or nothing is copied.
	sdb, err := openDB(ctx, src, nil)
	if err != nil {
		return err
	}
	defer sdb.Close()
	before, err := newApp(sdb, nil, nil, nil, nil, src, log).CheckAudit(ctx, nil)
	if err != nil {
		return err
	}
	if !before.OK() {
		return fmt.Errorf("the SQLite audit trail is broken at entry %d (under %s): nothing copied", before.FirstBroken, src.AuditKeyFile)
	}
	ddb, err := openDB(ctx, dst, nil)
	if err != nil {
		return err
	}
	defer ddb.Close()

	raw, err := sql.Open("sqlite", "file:"+strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)+"?_pragma=query_only(1)")
	if err != nil {
		return inFile("database", path, err)
	}
	defer raw.Close()
	pg, err := pgx.Connect(ctx, to)
	if err != nil {
		return fmt.Errorf("database %s: %w", dbName(to), err)
	}
	defer pg.Close(context.Background())
	lite, ok := sdb.(sqliteStore)
	if !ok {
		return fmt.Errorf("migrate-data: %s did not open as SQLite", path)
	}
	counts, err := copySQLiteToPostgres(ctx, raw, pg, lite.EachAuditEntry)
	if err != nil {
		return fmt.Errorf("migrate-data: nothing copied: %w", err)
	}

	after, err := newApp(ddb, nil, nil, nil, nil, dst, log).CheckAudit(ctx, nil)
	if err != nil {
		return err
	}
	if !after.OK() || after.Entries != before.Entries {
		return fmt.Errorf("the copied audit trail does not verify (entry %d of %d; %d on SQLite): drop the PostgreSQL database and report this",
			after.FirstBroken, after.Entries, before.Entries)
	}
	for _, t := range migrateDataTables {
		fmt.Fprintf(stdout, "%-18s %d rows\n", t, counts[t])
	}
	fmt.Fprintf(stdout, "Copied %s to %s. Audit trail intact on PostgreSQL: %d entries, under %s.\n"+
		"Run every instance with HEALTHRECORD_DB set to the PostgreSQL URL and HEALTHRECORD_KEY_FILE=%s.\n",
		path, dbName(to), after.Entries, dst.AuditKeyFile, dst.KeyFile)
	return nil
}

// copySQLiteToPostgres copies every table from one SQLite read snapshot
// into PostgreSQL in one transaction, ids kept, and moves each identity
// past the largest id SQLite ever gave (ids are never reused). The
// PostgreSQL database must hold no data.
//
// The audit table is read entry by entry through eachAudit: SQLite keeps
// a list's entries in one row, PostgreSQL one row each.
func copySQLiteToPostgres(ctx context.Context, src *sql.DB, pg *pgx.Conn,
	eachAudit func(context.Context, *sql.Tx, func(domain.AuditEntry) error) error) (map[string]int64, error) {
	stx, err := src.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer func() { _ = stx.Rollback() }()
	tx, err := pg.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	for _, t := range triggeredTables {
		// Also locks the table against every other session until commit.
		if _, err := tx.Exec(ctx, "ALTER TABLE "+t+" DISABLE TRIGGER USER"); err != nil {
			return nil, err
		}
	}
	for _, t := range migrateDataTables {
		var held bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t+")").Scan(&held); err != nil {
			return nil, err
		}
		if held {
			return nil, fmt.Errorf("the PostgreSQL database already holds %s: migrate-data fills an empty database only", t)
		}
	}
	counts := map[string]int64{}
	for _, t := range migrateDataTables {
		cols, bools, err := pgColumns(ctx, tx, t)
		if err != nil {
			return nil, err
		}
		var rows [][]any
		if t == "audit" {
			rows, err = readAudit(ctx, stx, cols, eachAudit)
		} else {
			rows, err = readTable(ctx, stx, t, cols, bools)
		}
		if err != nil {
			return nil, err
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{t}, cols, pgx.CopyFromRows(rows))
		if err != nil {
			return nil, fmt.Errorf("copy %s: %w", t, err)
		}
		counts[t] = n
		if t == "outbox_deliveries" || t == "audit" || t == "sessions" || t == "used_refresh" {
			continue // no identity
		}
		var next int64
		if err := stx.QueryRowContext(ctx, `SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0),
			coalesce((SELECT max(id) FROM `+t+`), 0))`, t).Scan(&next); err != nil {
			return nil, fmt.Errorf("%s: last id: %w", t, err)
		}
		if next > 0 {
			if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, 'id'), $2)`, t, next); err != nil {
				return nil, fmt.Errorf("%s: identity: %w", t, err)
			}
		}
	}
	var lastID int64
	var lastHash, headMAC string
	if err := stx.QueryRowContext(ctx, `SELECT last_id, last_hash, head_mac FROM audit_head WHERE one = 1`).Scan(&lastID, &lastHash, &headMAC); err != nil {
		return nil, fmt.Errorf("audit head: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE audit_head SET last_id = $1, last_hash = $2, head_mac = $3 WHERE one = 1`, lastID, lastHash, headMAC); err != nil {
		return nil, fmt.Errorf("audit head: %w", err)
	}
	for _, t := range triggeredTables {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+t+" ENABLE TRIGGER USER"); err != nil {
			return nil, err
		}
	}
	return counts, tx.Commit(ctx)
}

// pgColumns lists a PostgreSQL table's columns, and which are boolean
// (SQLite stores those as 0 and 1).
func pgColumns(ctx context.Context, tx pgx.Tx, table string) ([]string, map[int]bool, error) {
	rows, err := tx.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, table)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var cols []string
	bools := map[int]bool{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, nil, err
		}
		if typ == "boolean" {
			bools[len(cols)] = true
		}
		cols = append(cols, name)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if len(cols) == 0 {
		return nil, nil, fmt.Errorf("no table %s on PostgreSQL", table)
	}
	return cols, bools, nil
}

// readAudit reads the audit trail entry by entry, as PostgreSQL's cols.
func readAudit(ctx context.Context, tx *sql.Tx, cols []string,
	each func(context.Context, *sql.Tx, func(domain.AuditEntry) error) error) ([][]any, error) {
	var out [][]any
	err := each(ctx, tx, func(e domain.AuditEntry) error {
		field := map[string]any{
			"id": e.ID, "at": e.At.UTC().UnixNano(), "actor_id": e.ActorID, "actor_role": string(e.ActorRole),
			"action": e.Action, "record_id": e.RecordID, "patient_id": e.PatientID, "outcome": e.Outcome,
			"request_id": e.RequestID, "remote_addr": e.RemoteAddr, "prev_hash": e.PrevHash, "hash": e.Hash,
		}
		vals := make([]any, len(cols))
		for i, c := range cols {
			v, ok := field[c]
			if !ok {
				return fmt.Errorf("audit.%s on PostgreSQL has no counterpart on SQLite (do both schemas match?)", c)
			}
			vals[i] = v
		}
		out = append(out, vals)
		return nil
	})
	return out, err
}

// readTable reads the columns of a SQLite table, ordered by its key.
func readTable(ctx context.Context, tx *sql.Tx, table string, cols []string, bools map[int]bool) ([][]any, error) {
	rows, err := tx.QueryContext(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+table+" ORDER BY 1")
	if err != nil {
		return nil, fmt.Errorf("read %s from SQLite (do both schemas match?): %w", table, err)
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i := range vals {
			if b, ok := vals[i].([]byte); ok {
				vals[i] = string(b)
			}
			if bools[i] {
				n, ok := vals[i].(int64)
				if !ok {
					return nil, fmt.Errorf("%s.%s: %v is not 0 or 1", table, cols[i], vals[i])
				}
				vals[i] = n != 0
			}
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}
