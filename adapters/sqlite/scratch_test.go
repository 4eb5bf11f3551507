package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"os"
)

func TestScratch(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "x.db")
	db, err := Open(ctx, p)
	if err != nil { t.Fatal(err) }
	defer db.Close()
	if err := db.Ready(ctx); err == nil { t.Fatal("ready") } else { t.Log(err) }
	st, err := db.MigrationStatus(ctx); t.Log(st, err)
	if err := db.Migrate(ctx); err != nil { t.Fatal(err) }
	st, err = db.MigrationStatus(ctx); t.Log(st, err)
	t.Log(db.Ready(ctx))
	for _, q := range []string{
		"SELECT id FROM records WHERE patient_id = 1 AND (created_at, id) < (5, 6) ORDER BY created_at DESC, id DESC LIMIT 3",
		"SELECT id FROM records WHERE doctor_id = 1 AND (created_at, id) < (5, 6) ORDER BY created_at DESC, id DESC LIMIT 3",
		"SELECT id FROM comments WHERE record_id IN (SELECT id FROM records WHERE patient_id = 3) AND (created_at, id) < (5, 6) ORDER BY created_at DESC, id DESC LIMIT 3",
		"SELECT id FROM comments WHERE doctor_id = 3 AND (created_at, id) < (5, 6) ORDER BY created_at DESC, id DESC LIMIT 3",
		"SELECT id FROM audit WHERE (at, id) < (5, 6) ORDER BY at DESC, id DESC LIMIT 3",
		"SELECT id FROM audit WHERE actor_id = 2 AND (at, id) < (5, 6) ORDER BY at DESC, id DESC LIMIT 3",
		"SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= 5 AND (claimed_until IS NULL OR claimed_until <= 5) ORDER BY next_attempt_at, id LIMIT 3",
		"SELECT id FROM outbox WHERE state = 'dead' AND (created_at, id) < (5, 6) ORDER BY created_at DESC, id DESC LIMIT 3",
	} {
		rows, err := db.read.Query("EXPLAIN QUERY PLAN " + q)
		if err != nil { t.Fatal(err) }
		for rows.Next() { var a, b, c int; var d string; rows.Scan(&a, &b, &c, &d); t.Log(q[:40], "=>", d) }
		rows.Close()
	}
	if err := db.Backup(ctx, p+".bak"); err != nil { t.Fatal(err) }
	fi, _ := os.Stat(p+".bak"); t.Log(fi.Mode())
	ents, _ := os.ReadDir(filepath.Dir(p)); for _, e := range ents { i, _ := e.Info(); t.Log(e.Name(), i.Mode(), i.Size()) }
}
