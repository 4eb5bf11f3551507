package main

// The scale run's bulk path. A million records through the API would take
// hours of durable commits, so the scale data set is written straight into
// the SQLite file before serve starts, with the real schema (made by
// `healthrecord migrate`) and rows as the write path leaves them:
// accounts with real argon2id hashes (one hash, computed once, shared),
// records assigned to doctors, comments by the assigned doctor, one
// delivered outbox event and one notification per assignment. What it
// leaves out is the audit trail: its hash chain is the server's business,
// so the bulk rows have no audit entries (the default data set, written
// through the API, has them).

import (
	"context"
	"database/sql"
	"fmt"
	mrand "math/rand/v2"
	"os/exec"
	"path/filepath"
	"time"

	"healthrecord/adapters/password"
	"healthrecord/internal/username"
)

// bulkBatch is how many records go in one transaction.
const bulkBatch = 50000

// bulkSeed writes the scale data set into the migrated database at path.
func bulkSeed(ctx context.Context, path string, sz sizes, total int) (Seeding, error) {
	s := Seeding{Path: "bulk", Patients: sz.Patients, Doctors: sz.Doctors, Records: total, Steps: map[string]float64{}}
	start := time.Now()
	// synchronous=OFF: a bulk load is redone, not recovered; the file is
	// checkpointed and closed before serve opens it.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)&_pragma=foreign_keys(0)&_txlock=immediate")
	if err != nil {
		return s, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	hash, err := password.New(password.DefaultParams, 1).Hash(ctx, benchPassword)
	if err != nil {
		return s, err
	}
	base := time.Now().Add(-time.Duration(total+sz.Patients+sz.Doctors) * time.Second)
	at := func(sec int) int64 { return base.Add(time.Duration(sec) * time.Second).UnixNano() }

	// Accounts: doctors get ids 1..D, patients D+1..D+P.
	t0 := time.Now()
	err = inTx(ctx, db, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO users (id, username, username_key, email, role, approved, active, password_hash, created_at)
			VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`)
		if err != nil {
			return err
		}
		for i := range sz.Doctors + sz.Patients {
			name, role, approved := doctorName("bulk", i), "DOCTOR", 1
			if i >= sz.Doctors {
				name, role, approved = patientName("bulk", i-sz.Doctors), "PATIENT", 0
			}
			if _, err := ins.ExecContext(ctx, i+1, name, username.Key(name), name+"@bench.example", role, approved, hash, at(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("bulk users: %w", err)
	}
	s.Steps["users"] = time.Since(t0).Seconds()

	// Records with their comments, outbox event and notification, in
	// big transactions.
	t0 = time.Now()
	userAt := sz.Doctors + sz.Patients
	for lo := 0; lo < total; lo += bulkBatch {
		hi := min(total, lo+bulkBatch)
		err := inTx(ctx, db, func(tx *sql.Tx) error {
			stmts := map[string]*sql.Stmt{}
			for name, q := range map[string]string{
				"record":  `INSERT INTO records (id, patient_id, doctor_id, title, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				"comment": `INSERT INTO comments (record_id, doctor_id, comment, created_at) VALUES (?, ?, ?, ?)`,
				"outbox": `INSERT INTO outbox (id, kind, record_id, patient_id, doctor_id, state, attempts, next_attempt_at, created_at, delivered_at)
					VALUES (?, 'doctor_assigned', ?, ?, ?, 'delivered', 1, ?, ?, ?)`,
				"delivery": `INSERT INTO outbox_deliveries (event_id, sink, state, attempts, next_attempt_at, since, delivered_at)
					VALUES (?, 'notification', 'delivered', 1, ?, ?, ?)`,
				"notification": `INSERT INTO notifications (user_id, kind, record_id, patient_id, event_id, created_at) VALUES (?, 'doctor_assigned', ?, ?, ?, ?)`,
			} {
				st, err := tx.PrepareContext(ctx, q)
				if err != nil {
					return err
				}
				stmts[name] = st
			}
			for i := lo; i < hi; i++ {
				id := int64(i + 1)
				patient := int64(sz.Doctors + 1 + i%sz.Patients)
				doctor := int64(1 + assign(i, total, sz.Doctors))
				rng := mrand.New(mrand.NewPCG(uint64(i), 7))
				title, content := recordText(rng)
				created := at(userAt + i)
				if _, err := stmts["record"].ExecContext(ctx, id, patient, doctor, title, content, created, created); err != nil {
					return err
				}
				if _, err := stmts["outbox"].ExecContext(ctx, id, id, patient, doctor, created, created, created+int64(50*time.Millisecond)); err != nil {
					return err
				}
				if _, err := stmts["delivery"].ExecContext(ctx, id, created, created, created+int64(50*time.Millisecond)); err != nil {
					return err
				}
				if _, err := stmts["notification"].ExecContext(ctx, doctor, id, patient, id, created+int64(50*time.Millisecond)); err != nil {
					return err
				}
				for k := range sz.Comments {
					if _, err := stmts["comment"].ExecContext(ctx, id, doctor, commentText(rng), created+int64(k+1)*int64(time.Minute)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return s, fmt.Errorf("bulk records: %w", err)
		}
	}
	s.Steps["records"] = time.Since(t0).Seconds()
	s.Comments = total * sz.Comments

	t0 = time.Now()
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return s, err
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM records WHERE doctor_id = 1`).Scan(&s.BusyRecords); err != nil {
		return s, err
	}
	s.Steps["checkpoint"] = time.Since(t0).Seconds()
	s.Seconds = time.Since(start).Seconds()
	return s, db.Close()
}

func inTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// waitOutbox waits until count (the server's pending outbox events) is
// zero, returning how many were pending at first and how long they took.
func waitOutbox(ctx context.Context, count func(context.Context) (int, error), limit time.Duration) (int, time.Duration, error) {
	start := time.Now()
	first := -1
	for {
		n, err := count(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("outbox backlog: %w", err)
		}
		if first < 0 {
			first = n
		}
		if n == 0 {
			return first, time.Since(start), nil
		}
		if time.Since(start) > limit {
			return first, time.Since(start), fmt.Errorf("outbox: %d events still pending after %s", n, limit)
		}
		select {
		case <-ctx.Done():
			return first, time.Since(start), ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sqliteOutbox counts the pending outbox events in the SQLite database at
// path (WAL lets a reader in beside the server).
func sqliteOutbox(path string) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
		if err != nil {
			return 0, err
		}
		defer db.Close()
		var n int
		err = db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE state = 'pending'`).Scan(&n)
		return n, err
	}
}

// tableSizes is the bytes each table takes with its indexes (dbstat).
func tableSizes(ctx context.Context, path string) (map[string]int64, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT m.tbl_name, sum(s.pgsize) FROM dbstat s
		JOIN sqlite_master m ON m.name = s.name GROUP BY m.tbl_name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, err
		}
		out[name] = n
	}
	return out, rows.Err()
}

// countRecords is how many records a database holds.
func countRecords(ctx context.Context, path string) (int, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n)
	return n, err
}

// scaleRun bulk-seeds --records records, starts serve on them (timing the
// start-up), and measures list and doctor-list as on the default data set.
func (b *bench) scaleRun(ctx context.Context, bin, tmp, defaultDB string, baseline []Result) (*Scale, error) {
	o := b.o
	total := o.Records
	sz := sizes{Patients: o.Patients, Doctors: o.Doctors, RecordsPerPatient: o.RecordsPerPatient, Comments: o.Comments}
	if !o.patientsSet {
		// Grow the clinic by patients, so each still has as many records
		// and list's first page stays comparable.
		sz.Patients = max(1, total/o.RecordsPerPatient)
	}
	sc := &Scale{}
	for _, r := range baseline {
		if r.Scenario == "list" || r.Scenario == "doctor-list" {
			sc.DefaultBaseline = append(sc.DefaultBaseline, r)
		}
	}
	if n, err := countRecords(ctx, defaultDB); err == nil && n > 0 {
		sc.DefaultDBBytes = fileSize(defaultDB)
		sc.DefaultPerRec = float64(sc.DefaultDBBytes) / float64(n)
		sc.DefaultRecords = n
		sc.DefaultTables, _ = tableSizes(ctx, defaultDB)
	}

	path := filepath.Join(tmp, "scale.db")
	if out, err := exec.CommandContext(ctx, bin, "migrate", "--db", path).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("healthrecord migrate: %w\n%s", err, out)
	}
	b.logf("scale run: bulk-seeding %d records for %d patients and %d doctors", total, sz.Patients, sz.Doctors)
	seeding, err := bulkSeed(ctx, path, sz, total)
	if err != nil {
		return nil, err
	}
	sc.Seeding = seeding
	sc.DBBytes = fileSize(path)
	sc.BytesPerRecord = float64(sc.DBBytes) / float64(max(1, total))
	if sc.Tables, err = tableSizes(ctx, path); err != nil {
		return nil, err
	}
	b.logf("bulk-seeded in %.1fs %s; %.1f MiB", seeding.Seconds, fmtSteps(seeding.Steps), float64(sc.DBBytes)/(1<<20))

	srv, err := startServer(ctx, bin, path, "", filepath.Join(tmp, "serve-scale.log"))
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	sc.StartupSeconds = srv.startup.Seconds()
	b.logf("serve ready on the scale database in %.0fms", sc.StartupSeconds*1000)

	// Sign in the busy doctor and a sample of patients.
	sb := *b
	sb.useServers([]*serverProc{srv})
	ds := &dataset{Password: benchPassword, Seeding: seeding, Doctors: []user{{ID: 1, Name: doctorName("bulk", 0)}},
		Patients: make([]user, min(sz.Patients, 200))}
	for i := range ds.Patients {
		p := (i * sz.Patients) / len(ds.Patients) // spread over the id range
		ds.Patients[i] = user{ID: int64(sz.Doctors + 1 + p), Name: patientName("bulk", p)}
	}
	err = parallel(ctx, len(ds.Patients)+1, o.SeedWorkers, func(ctx context.Context, i int) error {
		u := &ds.Doctors[0]
		if i > 0 {
			u = &ds.Patients[i-1]
		}
		var err error
		u.Token, err = sb.signIn(ctx, u.Name, ds.Password)
		return err
	})
	if err != nil {
		return nil, err
	}
	sb.ds = ds

	first, later, err := sb.doctorPages(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range []struct {
		name, scenario string
		g              []gen
	}{
		{"list", "list", sb.each(sb.genList)},
		{"doctor-list", "doctor-list", sb.each(sb.genGet(first, ds.Doctors[0].Token))},
		{"doctor-list-cursor", "doctor-list", sb.each(sb.genGet(later, ds.Doctors[0].Token))},
	} {
		r, err := sb.measure(ctx, m.name, m.scenario, o.Conns, m.g)
		if err != nil {
			_ = srv.stop()
			return nil, err
		}
		sc.Results = append(sc.Results, r)
	}
	sc.Server.PeakRSSBytes = srv.peakRSS()
	sc.Server.StartupSeconds = sc.StartupSeconds
	return sc, srv.stop()
}
