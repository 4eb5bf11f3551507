// Command pocketbase is PocketBase set up for healthrecord's job, so that
// hrbench's list, read and create scenarios can be measured against it on
// the same machine (see README.md and ./run).
//
//	go build -o /tmp/pb-app . && /tmp/pb-app --dir /tmp/pb seed --patients 200 --doctors 20 --out /tmp/pb/tokens.json
//	/tmp/pb-app --dir /tmp/pb serve --http 127.0.0.1:8090
//
// The schema is a Go migration, applied by `serve` (as PocketBase applies
// every app migration) and by `seed`. The database is PocketBase's default
// SQLite connection: WAL, synchronous=NORMAL (core.DefaultDBConnect).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	_ "net/http/pprof"
	"os"
	"sync"

	"github.com/pocketbase/pocketbase"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"
	"github.com/spf13/cobra"

	"healthrecord/bench/pocketbase/internal/text"
)

// Rules. A patient lists, reads and creates only their own records, as in
// healthrecord; doctors' access to assigned records is not modelled in the
// records rules (the scenarios are patients'), which only spares
// PocketBase work. A comment is visible exactly when its record is to the
// record's patient or its assigned doctor, healthrecord's comment rule.
const (
	recordsRead   = "patient = @request.auth.id"
	recordsCreate = `@request.auth.id != "" && patient = @request.auth.id`
	commentsRead  = "record.patient = @request.auth.id || record.doctor = @request.auth.id"
	commentsWrite = `@request.auth.id != "" && doctor = @request.auth.id && record.doctor = @request.auth.id`
)

func init() {
	migrations.Register(func(app core.App) error {
		users, err := app.FindCollectionByNameOrId("users")
		if err != nil {
			return err
		}
		// A role as healthrecord's users have; the rules above do not read it.
		users.Fields.Add(&core.SelectField{Name: "role", Values: []string{"PATIENT", "DOCTOR"}, MaxSelect: 1})
		if err := app.Save(users); err != nil {
			return err
		}

		records := core.NewBaseCollection("records")
		records.ListRule = types.Pointer(recordsRead)
		records.ViewRule = types.Pointer(recordsRead)
		records.CreateRule = types.Pointer(recordsCreate)
		records.UpdateRule = types.Pointer(recordsRead)
		records.DeleteRule = types.Pointer(recordsRead)
		records.Fields.Add(
			&core.RelationField{Name: "patient", Required: true, CollectionId: users.Id, MaxSelect: 1, CascadeDelete: true},
			&core.RelationField{Name: "doctor", CollectionId: users.Id, MaxSelect: 1},
			// healthrecord's limits: title ≤ 100 characters, content ≤ 100,000.
			&core.TextField{Name: "title", Required: true, Max: 100},
			&core.TextField{Name: "content", Max: 100000},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		// The index a patient's newest-first page needs (healthrecord has one).
		records.AddIndex("idx_records_patient_created", false, "patient, created", "")
		records.AddIndex("idx_records_doctor", false, "doctor", "")
		if err := app.Save(records); err != nil {
			return err
		}

		comments := core.NewBaseCollection("comments")
		comments.ListRule = types.Pointer(commentsRead)
		comments.ViewRule = types.Pointer(commentsRead)
		comments.CreateRule = types.Pointer(commentsWrite)
		comments.Fields.Add(
			&core.RelationField{Name: "record", Required: true, CollectionId: records.Id, MaxSelect: 1, CascadeDelete: true},
			&core.RelationField{Name: "doctor", Required: true, CollectionId: users.Id, MaxSelect: 1},
			&core.TextField{Name: "comment", Required: true, Max: 10000},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		// The back-relation expand (comments_via_record) looks comments up by record.
		comments.AddIndex("idx_comments_record", false, "record", "")
		return app.Save(comments)
	}, func(app core.App) error {
		for _, name := range []string{"comments", "records"} {
			c, err := app.FindCollectionByNameOrId(name)
			if err != nil {
				return err
			}
			if err := app.Delete(c); err != nil {
				return err
			}
		}
		return nil
	}, "1764979200_healthrecord_bench.go")
}

func main() {
	// PBBENCH_PPROF=127.0.0.1:6060 serves net/http/pprof there, to see
	// where PocketBase spends a scenario's CPU.
	if addr := os.Getenv("PBBENCH_PPROF"); addr != "" {
		go func() { log.Println(http.ListenAndServe(addr, nil)) }()
	}
	app := pocketbase.New()
	app.RootCmd.AddCommand(seedCommand(app))
	if err := app.Start(); err != nil {
		log.Fatal(err)
	}
}

// Seeded is what seed writes to --out, what the driver needs to make its
// requests: every patient's token and record ids, and the doctors' ids.
type Seeded struct {
	Password string    `json:"password"`
	Patients []Patient `json:"patients"`
	Doctors  []string  `json:"doctors"`
}

// Patient is one seeded patient.
type Patient struct {
	ID      string   `json:"id"`
	Email   string   `json:"email"`
	Token   string   `json:"token"`
	Records []string `json:"records"`
}

// seedPassword is every seeded user's password.
const seedPassword = "Amber-Kettle-4071"

func seedCommand(app *pocketbase.PocketBase) *cobra.Command {
	var patients, doctors, perPatient, perRecord, workers int
	var out string
	var requestLogs bool
	c := &cobra.Command{
		Use:   "seed",
		Short: "Create users, records and comments and write the patients' tokens as JSON",
		RunE: func(*cobra.Command, []string) error {
			if patients < 1 || doctors < 1 || out == "" {
				return errors.New("seed: --patients and --doctors must be at least 1, --out is required")
			}
			if err := app.RunAllMigrations(); err != nil {
				return err
			}
			if !requestLogs {
				// PocketBase's switch for its request log (the _logs table of
				// auxiliary.db): keep no days.
				settings := app.Settings()
				settings.Logs.MaxDays = 0
				if err := app.Save(settings); err != nil {
					return err
				}
			}
			s, err := seed(app, patients, doctors, perPatient, perRecord, workers)
			if err != nil {
				return err
			}
			b, err := json.Marshal(s)
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, 0o600)
		},
	}
	c.Flags().IntVar(&patients, "patients", 200, "patients to create")
	c.Flags().IntVar(&doctors, "doctors", 20, "doctors to create")
	c.Flags().IntVar(&perPatient, "records", 10, "records per patient")
	c.Flags().IntVar(&perRecord, "comments", 2, "comments per record, by its doctor")
	c.Flags().IntVar(&workers, "workers", 4, "users created at once (each hashes a password with bcrypt)")
	c.Flags().BoolVar(&requestLogs, "request-logs", true, "keep PocketBase's request log on, as it ships (5 days)")
	c.Flags().StringVar(&out, "out", "", "file to write the patients' tokens and record ids to (JSON)")
	return c
}

// seed creates the users (through the app, in parallel: bcrypt dominates),
// then every record and comment in one transaction, and mints each
// patient's auth token as an auth-with-password sign-in would.
func seed(app core.App, patients, doctors, perPatient, perRecord, workers int) (*Seeded, error) {
	users, err := app.FindCollectionByNameOrId("users")
	if err != nil {
		return nil, err
	}
	n := patients + doctors
	made := make([]*core.Record, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				u := core.NewRecord(users)
				role, name := "PATIENT", fmt.Sprintf("pat%d", i-doctors)
				if i < doctors {
					role, name = "DOCTOR", fmt.Sprintf("dr%d", i)
				}
				u.SetEmail(name + "@bench.example")
				u.SetVerified(true)
				u.SetPassword(seedPassword)
				u.Set("name", name)
				u.Set("role", role)
				errs[i] = app.Save(u)
				made[i] = u
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	s := &Seeded{Password: seedPassword, Patients: make([]Patient, patients)}
	for _, d := range made[:doctors] {
		s.Doctors = append(s.Doctors, d.Id)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	err = app.RunInTransaction(func(tx core.App) error {
		records, err := tx.FindCollectionByNameOrId("records")
		if err != nil {
			return err
		}
		comments, err := tx.FindCollectionByNameOrId("comments")
		if err != nil {
			return err
		}
		for k := range perPatient {
			for p := range patients {
				doctor := made[(p*perPatient+k)%doctors].Id
				r := core.NewRecord(records)
				title, content := text.Record(rng)
				r.Set("patient", made[doctors+p].Id)
				r.Set("doctor", doctor)
				r.Set("title", title)
				r.Set("content", content)
				if err := tx.Save(r); err != nil {
					return err
				}
				s.Patients[p].Records = append(s.Patients[p].Records, r.Id)
				for range perRecord {
					c := core.NewRecord(comments)
					c.Set("record", r.Id)
					c.Set("doctor", doctor)
					c.Set("comment", text.Comment(rng))
					if err := tx.Save(c); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for p := range patients {
		u := made[doctors+p]
		tok, err := u.NewAuthToken()
		if err != nil {
			return nil, err
		}
		s.Patients[p].ID, s.Patients[p].Email, s.Patients[p].Token = u.Id, u.Email(), tok
	}
	return s, nil
}
