// Command hrbench is healthrecord's load benchmark. It starts
// `healthrecord serve` on a temporary database (or targets --url), seeds a
// realistic data set through the API, signs users in, drives each scenario
// for a fixed time with a fixed number of connections, and compares every
// line with a ceiling: a bare server giving the same answer to the same
// request with one token check and one SQLite statement, driven by the
// same client in the same run. The load comes from a Go client or, with
// --client wrk, from wrk, which leaves the server more of the CPU.
//
//	go run ./cmd/hrbench                                   # default data set, every scenario
//	go run ./cmd/hrbench --client wrk --duration 5s        # load from wrk
//	go run ./cmd/hrbench --duration 5s --scenarios list,create --json bench.json
//	go run ./cmd/hrbench --records 1000000                 # scale run (bulk-seeded)
//	go run ./cmd/hrbench --db postgres://postgres@127.0.0.1:5432/postgres   # on a fresh PostgreSQL database
//	go run ./cmd/hrbench --db postgres://… --instances 3 --scenarios list,create  # three serve processes
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if os.Getenv(ceilingChildEnv) != "" {
		// Re-executed as the ceiling server (see ceiling.go).
		if err := ceilingChild(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "hrbench ceiling:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "hrbench:", err)
		os.Exit(1)
	}
}

// allScenarios in the order they run: the read-only ones first, so that
// they all see the seeded data set unchanged, then the writes.
var allScenarios = []string{"list", "read", "doctor-list", "signin", "signin-storm", "create", "comment", "mixed"}

// options are the command line.
type options struct {
	URL               string        `json:"url,omitempty"`
	Duration          time.Duration `json:"-"`
	DurationText      string        `json:"duration"`
	Warmup            time.Duration `json:"-"`
	Conns             int           `json:"conns"`
	StormConns        int           `json:"storm_conns"`
	Patients          int           `json:"patients"`
	Doctors           int           `json:"doctors"`
	RecordsPerPatient int           `json:"records_per_patient"`
	Comments          int           `json:"comments_per_record"`
	Scenarios         []string      `json:"scenarios"`
	JSONFile          string        `json:"-"`
	Records           int           `json:"scale_records,omitempty"`
	Keep              bool          `json:"-"`
	ServerBin         string        `json:"-"`
	SeedWorkers       int           `json:"seed_workers"`
	Client            string        `json:"client"`
	WrkThreads        int           `json:"wrk_threads,omitempty"`
	DB                string        `json:"-"` // may hold a password
	Instances         int           `json:"instances"`
	patientsSet       bool
	scenariosSet      bool
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	var scen string
	fs := flag.NewFlagSet("hrbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.URL, "url", "", "target a running server (it must auto-approve doctors) instead of starting one")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time per scenario")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "unmeasured load before each scenario")
	fs.IntVar(&o.Conns, "conns", 32, "concurrent connections")
	fs.IntVar(&o.StormConns, "storm", 50, "concurrent sign-ins in signin-storm")
	fs.IntVar(&o.Patients, "patients", 1000, "patients to seed (scale run: default records ÷ records-per-patient)")
	fs.IntVar(&o.Doctors, "doctors", 50, "approved doctors to seed")
	fs.IntVar(&o.RecordsPerPatient, "records-per-patient", 10, "records per patient")
	fs.IntVar(&o.Comments, "comments", 2, "comments per assigned record")
	fs.StringVar(&scen, "scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ","))
	fs.StringVar(&o.JSONFile, "json", "", "also write the results as JSON to this file")
	fs.IntVar(&o.Records, "records", 0, "scale run: after the default data set, bulk-seed this many records and compare list and doctor-list")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (databases, server logs)")
	fs.StringVar(&o.ServerBin, "server-bin", "", "use this healthrecord binary instead of building ./cmd/healthrecord")
	fs.IntVar(&o.SeedWorkers, "seed-workers", 16, "concurrent requests while seeding")
	fs.StringVar(&o.Client, "client", clientGo, "load generator: go (in process) or wrk (the wrk command, less CPU; signin-storm stays in Go)")
	fs.IntVar(&o.WrkThreads, "wrk-threads", 2, "wrk's threads (--client wrk)")
	fs.StringVar(&o.DB, "db", "", "a postgres:// URL: run healthrecord on a fresh PostgreSQL database made on that server (dropped at the end unless --keep); default a SQLite file")
	fs.IntVar(&o.Instances, "instances", 1, "serve processes on the one database (--db postgres://… only); the load is spread over them round-robin")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) {
		o.patientsSet = o.patientsSet || f.Name == "patients"
		o.scenariosSet = o.scenariosSet || f.Name == "scenarios"
	})
	o.DurationText = o.Duration.String()
	for _, s := range strings.Split(scen, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !contains(allScenarios, s) {
			return o, fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(allScenarios, ","))
		}
		o.Scenarios = append(o.Scenarios, s)
	}
	// The scale run is about list and doctor-list: unless asked otherwise,
	// measure only those on the default data set too.
	if o.Records > 0 && !o.scenariosSet {
		o.Scenarios = []string{"list", "doctor-list"}
	}
	switch {
	case o.Duration <= 0 || o.Warmup < 0:
		return o, errors.New("--duration must be positive and --warmup not negative")
	case o.Conns < 1 || o.StormConns < 1 || o.SeedWorkers < 1:
		return o, errors.New("--conns, --storm and --seed-workers must be at least 1")
	case o.Patients < 1 || o.Doctors < 1 || o.RecordsPerPatient < 1 || o.Comments < 0:
		return o, errors.New("need at least one patient, one doctor and one record per patient")
	case o.Records > 0 && o.URL != "":
		return o, errors.New("--records (the bulk-seeded scale run) needs its own server: drop --url")
	case len(o.Scenarios) == 0:
		return o, errors.New("no scenario selected")
	case o.Client != clientGo && o.Client != clientWrk:
		return o, fmt.Errorf("--client must be %s or %s", clientGo, clientWrk)
	case o.WrkThreads < 1:
		return o, errors.New("--wrk-threads must be at least 1")
	case o.DB != "" && !isPostgresURL(o.DB):
		return o, errors.New("--db must be a postgres:// URL (without it, healthrecord runs on a SQLite file)")
	case o.DB != "" && o.URL != "":
		return o, errors.New("--db starts its own servers: drop --url")
	case o.DB != "" && o.Records > 0:
		return o, errors.New("--records (the bulk-seeded scale run) writes a SQLite file: drop --db")
	case o.Instances < 1:
		return o, errors.New("--instances must be at least 1")
	case o.Instances > 1 && o.DB == "":
		return o, errors.New("--instances needs --db postgres://…: several processes share a PostgreSQL database, not a SQLite file")
	case o.Conns < o.Instances:
		return o, errors.New("--conns must be at least --instances")
	}
	if o.Client != clientWrk {
		o.WrkThreads = 0
	}
	return o, nil
}

// The load generators.
const (
	clientGo  = "go"
	clientWrk = "wrk"
)

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// run is the whole benchmark; tests call it with small sizes.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "hrbench: "+format+"\n", a...) }
	if o.Client == clientWrk {
		if _, err := exec.LookPath("wrk"); err != nil {
			return fmt.Errorf("--client wrk needs the wrk command (Debian/Ubuntu: apt-get install wrk): %w", err)
		}
	}

	tmp, err := os.MkdirTemp("", "hrbench-")
	if err != nil {
		return err
	}
	if o.Keep {
		logf("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	rep := &Report{Machine: machineInfo(time.Now()), Config: o}
	rep.FsyncPerSec, err = fsyncRate(filepath.Join(tmp, "fsync.bin"), 2*time.Second)
	if err != nil {
		return fmt.Errorf("fsync rate: %w", err)
	}
	logf("fsync rate: %.0f/s", rep.FsyncPerSec)

	bin := o.ServerBin
	if bin == "" && (o.URL == "" || o.Records > 0) {
		logf("building healthrecord")
		if bin, err = buildServer(ctx, tmp); err != nil {
			return err
		}
	}

	b := &bench{o: o, logf: logf, client: newClient(o.Conns + o.StormConns), tmp: tmp}
	rep.Store, rep.Instances = storeSQLite, o.Instances
	// db is what serve's --db gets; keyFile its HEALTHRECORD_KEY_FILE
	// (PostgreSQL needs one, and every instance reads the same).
	db, keyFile := filepath.Join(tmp, "bench.db"), ""
	if o.DB != "" {
		pg, err := createPGDatabase(ctx, o.DB)
		if err != nil {
			return err
		}
		b.pg, rep.Store, rep.Database = pg, storePostgres, pg.Name
		pg.logf = logf
		defer func() {
			if o.Keep {
				pg.close()
				logf("keeping database %s", pg.Name)
				return
			}
			err = errors.Join(err, pg.drop())
		}()
		db, keyFile = pg.URL, filepath.Join(tmp, "keys")
		logf("fresh PostgreSQL database %s", redactURL(pg.URL))
	}
	var srvs []*serverProc
	stopAll := func() error {
		var errs []error
		for _, s := range srvs {
			errs = append(errs, s.stop())
		}
		srvs = nil
		return errors.Join(errs...)
	}
	if o.URL != "" {
		b.base = strings.TrimRight(o.URL, "/")
		rep.Target = b.base
	} else {
		defer func() { err = errors.Join(err, stopAll()) }()
		// The first instance migrates the database and makes the key
		// files; the others start on what it made.
		for i := range o.Instances {
			srv, err := startServer(ctx, bin, db, keyFile, filepath.Join(tmp, fmt.Sprintf("serve%d.log", i)))
			if err != nil {
				return err
			}
			srvs = append(srvs, srv)
		}
		b.useServers(srvs)
		rep.Target = "healthrecord serve (fresh database in " + tmp + ")"
		if b.pg != nil {
			rep.Target = fmt.Sprintf("healthrecord serve ×%d (fresh PostgreSQL database %s)", o.Instances, b.pg.Name)
		}
		rep.Server.StartupSeconds = srvs[0].startup.Seconds()
	}

	// Seed through the real write path.
	logf("seeding %d patients, %d doctors, %d records per patient, %d comments per record through the API",
		o.Patients, o.Doctors, o.RecordsPerPatient, o.Comments)
	ds, err := seedAPI(ctx, b, sizes{Patients: o.Patients, Doctors: o.Doctors, RecordsPerPatient: o.RecordsPerPatient, Comments: o.Comments})
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if count := b.outboxCount(); count != nil {
		// Let the dispatcher deliver the seeded assignments before measuring.
		t0 := time.Now()
		n, took, err := waitOutbox(ctx, count, 10*time.Minute)
		if err != nil {
			return err
		}
		ds.Seeding.Steps["outbox drain"] = took.Seconds()
		ds.Seeding.Seconds += time.Since(t0).Seconds()
		logf("  outbox: %d events pending after seeding, delivered in %.1fs", n, took.Seconds())
	}
	if b.pg != nil {
		if err := b.pg.analyze(ctx); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
	}
	rep.Seeding = ds.Seeding
	logf("seeded in %.1fs %s", ds.Seeding.Seconds, fmtSteps(ds.Seeding.Steps))
	b.ds = ds

	// The ceiling server, on a copy of the seeded rows (generated ones
	// of the same shape when the server is elsewhere).
	src := generatedSource(o.Patients, o.RecordsPerPatient, o.Comments)
	if len(srvs) > 0 {
		src = ceilingSource{FromDB: db, Records: ds.RecOf}
		for _, p := range ds.Patients {
			src.Owners = append(src.Owners, p.ID)
		}
	}
	ceil, err := startCeiling(ctx, tmp, src)
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	defer func() { err = errors.Join(err, ceil.stop()) }()
	b.ceil = ceil
	rep.CeilingSource = ceil.Source

	if err := b.runScenarios(ctx, rep); err != nil {
		return err
	}
	rep.CeilingRSS = ceil.proc.peakRSS()

	if len(srvs) > 0 {
		for _, s := range srvs {
			rep.Server.PeakRSSBytes = max(rep.Server.PeakRSSBytes, s.peakRSS())
		}
		// Start-up on the seeded database: stop, start again, stop.
		if err := stopAll(); err != nil {
			return err
		}
		again, err := startServer(ctx, bin, db, keyFile, filepath.Join(tmp, "serve-again.log"))
		if err != nil {
			return err
		}
		rep.Server.RestartSeconds = again.startup.Seconds()
		if err := again.stop(); err != nil {
			return err
		}
		if o.Records > 0 {
			sc, err := b.scaleRun(ctx, bin, tmp, db, rep.Results)
			if err != nil {
				return fmt.Errorf("scale run: %w", err)
			}
			rep.Scale = sc
		}
	}

	writeTable(stdout, rep)
	if o.JSONFile != "" {
		if err := writeJSON(o.JSONFile, rep); err != nil {
			return err
		}
		logf("wrote %s", o.JSONFile)
	}
	return nil
}

// fsyncRate is how many 4 KiB append + fsync rounds the disk under dir
// completes per second: the bound on durable commits one at a time.
func fsyncRate(path string, d time.Duration) (float64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(i)
	}
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		n++
		if n%1024 == 0 { // keep the file small, as a checkpointed WAL is
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return 0, err
			}
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
