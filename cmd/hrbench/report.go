package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one measured line: a scenario (or a part of one) against
// healthrecord, or the same load against the ceiling server.
type Result struct {
	Name       string         `json:"name"`
	Scenario   string         `json:"scenario"`
	Target     string         `json:"target"` // "healthrecord" or "ceiling"
	Conns      int            `json:"conns"`
	Seconds    float64        `json:"seconds"`
	OK         int            `json:"ok"`
	Errors     int            `json:"errors"`
	ErrorCodes map[string]int `json:"error_codes,omitempty"`
	RPS        float64        `json:"rps"` // 2xx answers per second
	P50ms      float64        `json:"p50_ms"`
	P95ms      float64        `json:"p95_ms"`
	P99ms      float64        `json:"p99_ms"`
	MaxMs      float64        `json:"max_ms"`
	// Ceiling is the ceiling's req/s for the same kind of work, and Ratio
	// RPS ÷ Ceiling; both zero when there is no ceiling for the line.
	Ceiling    string  `json:"ceiling,omitempty"`
	CeilingRPS float64 `json:"ceiling_rps,omitempty"`
	Ratio      float64 `json:"ratio,omitempty"`
	// MoreCeilings are further ceilings the line is compared with (the
	// create's synchronous=FULL one).
	MoreCeilings []CeilingRatio `json:"more_ceilings,omitempty"`
	// Client is the load generator ("go" or "wrk"); ClientCPUShare and
	// ServerCPUShare the CPU it and the server used during the measured
	// window, as a share of all the machine's cores.
	Client         string  `json:"client,omitempty"`
	ClientCPUShare float64 `json:"client_cpu_share"`
	ServerCPUShare float64 `json:"server_cpu_share,omitempty"`
	// DBCPUShare is what PostgreSQL's backends for the database used
	// (a local server only; background processes not counted).
	DBCPUShare  float64 `json:"db_cpu_share,omitempty"`
	PeakRSSByte int64   `json:"peak_rss_bytes,omitempty"` // sampled VmRSS of the server during the line
	// OutboxBacklog is how many outbox events were still pending when a
	// write scenario ended, and OutboxDrainSeconds how long the
	// dispatcher then took to deliver them.
	OutboxBacklog      int     `json:"outbox_backlog,omitempty"`
	OutboxDrainSeconds float64 `json:"outbox_drain_seconds,omitempty"`
	Note               string  `json:"note,omitempty"`
}

// Machine describes where the numbers were taken, so runs can be compared.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel,omitempty"`
	Date      string `json:"date"`
}

// Seeding is what the data set holds and how long it took to make.
type Seeding struct {
	Path        string             `json:"path"` // "api" or "bulk"
	Patients    int                `json:"patients"`
	Doctors     int                `json:"doctors"`
	Records     int                `json:"records"`
	Comments    int                `json:"comments"`
	BusyRecords int                `json:"busy_doctor_records"`
	Seconds     float64            `json:"seconds"`
	Steps       map[string]float64 `json:"steps_seconds"`
}

// ServerInfo is the measured process (not reported with --url).
type ServerInfo struct {
	PeakRSSBytes   int64   `json:"peak_rss_bytes,omitempty"` // VmHWM at the end, seeding included
	StartupSeconds float64 `json:"startup_seconds,omitempty"`
	// RestartSeconds is the start-up time of serve on the seeded database.
	RestartSeconds float64 `json:"restart_seconds,omitempty"`
}

// Scale is the --records run compared with the default data set.
type Scale struct {
	Seeding        Seeding `json:"seeding"`
	DBBytes        int64   `json:"db_bytes"`
	BytesPerRecord float64 `json:"bytes_per_record"`
	DefaultDBBytes int64   `json:"default_db_bytes,omitempty"`
	DefaultPerRec  float64 `json:"default_bytes_per_record,omitempty"`
	DefaultRecords int     `json:"default_records,omitempty"`
	// Tables and DefaultTables are bytes per table, indexes included.
	Tables          map[string]int64 `json:"table_bytes"`
	DefaultTables   map[string]int64 `json:"default_table_bytes,omitempty"`
	StartupSeconds  float64          `json:"startup_seconds"`
	Server          ServerInfo       `json:"server"`
	Results         []Result         `json:"results"`
	DefaultBaseline []Result         `json:"default_results"`
}

// Report is the whole run, as printed and as written by --json.
type Report struct {
	Machine Machine `json:"machine"`
	Config  options `json:"config"`
	Target  string  `json:"target"`
	// Store is the database healthrecord ran on (sqlite or postgres),
	// Instances how many serve processes shared it.
	Store     string `json:"store,omitempty"`
	Instances int    `json:"instances,omitempty"`
	// Database is the PostgreSQL database made for the run.
	Database    string     `json:"database,omitempty"`
	FsyncPerSec float64    `json:"fsync_per_sec"`
	Seeding     Seeding    `json:"seeding"`
	Server      ServerInfo `json:"server"`
	CeilingRSS  int64      `json:"ceiling_peak_rss_bytes,omitempty"`
	Results     []Result   `json:"results"`
	Ceilings    []Result   `json:"ceilings"`
	Scale       *Scale     `json:"scale,omitempty"`
	// CeilingSource says what rows the ceiling serves.
	CeilingSource string `json:"ceiling_source,omitempty"`
	// Warnings name every ceiling healthrecord beat: such a ceiling is
	// not one, and its ratios measure its own overhead.
	Warnings []string `json:"warnings,omitempty"`
}

// CeilingRatio is a line's comparison with one more ceiling.
type CeilingRatio struct {
	Ceiling    string  `json:"ceiling"`
	CeilingRPS float64 `json:"ceiling_rps"`
	Ratio      float64 `json:"ratio"`
}

func machineInfo(now time.Time) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		GoVersion: runtime.Version(), Date: now.UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/version"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// summarize turns a load run into a Result line.
func summarize(name, scenario, target string, r loadResult) Result {
	res := Result{Name: name, Scenario: scenario, Target: target, Conns: r.Conns,
		Seconds: r.Elapsed.Seconds(), Errors: r.Errors, ErrorCodes: r.Codes}
	if q := r.Quantiles; q != nil {
		res.OK, res.P50ms, res.P95ms, res.P99ms, res.MaxMs = q.OK, ms(q.P50), ms(q.P95), ms(q.P99), ms(q.Max)
	} else {
		sort.Slice(r.Lat, func(i, j int) bool { return r.Lat[i] < r.Lat[j] })
		res.OK = len(r.Lat)
		res.P50ms, res.P95ms, res.P99ms = ms(percentile(r.Lat, 50)), ms(percentile(r.Lat, 95)), ms(percentile(r.Lat, 99))
		if len(r.Lat) > 0 {
			res.MaxMs = ms(r.Lat[len(r.Lat)-1])
		}
	}
	if r.Elapsed > 0 {
		res.RPS = float64(res.OK) / r.Elapsed.Seconds()
	}
	cores := runtime.NumCPU()
	res.ClientCPUShare = cpuShare(r.ClientCPU, r.ClientWall, cores)
	res.ServerCPUShare = cpuShare(r.ServerCPU, r.ClientWall, cores)
	res.DBCPUShare = cpuShare(r.DBCPU, r.ClientWall, cores)
	if len(res.ErrorCodes) == 0 {
		res.ErrorCodes = nil
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// withCeilings sets the line's ceiling and ratio from the ceiling lines:
// the first name is the ratio column, the others go to MoreCeilings.
func withCeilings(r Result, ceilings []Result, names []string) Result {
	r.MoreCeilings = nil
	for i, name := range names {
		for _, c := range ceilings {
			if c.Name != name || c.RPS <= 0 {
				continue
			}
			if i == 0 {
				r.Ceiling, r.CeilingRPS, r.Ratio = c.Name, c.RPS, r.RPS/c.RPS
			} else {
				r.MoreCeilings = append(r.MoreCeilings, CeilingRatio{Ceiling: c.Name, CeilingRPS: c.RPS, Ratio: r.RPS / c.RPS})
			}
		}
	}
	return r
}

// ceilingWarnings names each ceiling a line beat. A ceiling is the least
// work for the same answer: if the service answers faster, the ceiling
// carries overhead of its own (or the service skips work it should do),
// and ratios to it flatter the service.
func ceilingWarnings(results []Result) []string {
	var out []string
	for _, r := range results {
		check := append([]CeilingRatio{{Ceiling: r.Ceiling, CeilingRPS: r.CeilingRPS, Ratio: r.Ratio}}, r.MoreCeilings...)
		for _, c := range check {
			if c.CeilingRPS > 0 && c.Ratio > 1 {
				out = append(out, fmt.Sprintf("%s (%.0f req/s) beats the %q ceiling (%.0f req/s, ratio %.2f): that ceiling is not one",
					r.Name, r.RPS, c.Ceiling, c.CeilingRPS, c.Ratio))
			}
		}
	}
	return out
}

func mib(b int64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// pct is a CPU share as a percentage of the machine, "-" when unknown.
func pct(share float64) string {
	if share <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*share)
}

func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fms", v)
}

// writeTable prints the results as aligned tables.
func writeTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "\nhealthrecord load benchmark — %s, %d CPUs, %s/%s, %s\n", rep.Machine.Date, rep.Machine.CPUs,
		rep.Machine.GOOS, rep.Machine.GOARCH, rep.Machine.GoVersion)
	fmt.Fprintf(w, "target %s; client %s; %d connections, %s per scenario (after %s warm-up); client and server share the machine\n",
		rep.Target, rep.Config.Client, rep.Config.Conns, rep.Config.Duration, rep.Config.Warmup)
	if rep.Store != "" {
		fmt.Fprintf(w, "store %s, %s\n", rep.Store, instancesText(rep))
	}
	s := rep.Seeding
	fmt.Fprintf(w, "data set (%s): %d patients, %d doctors, %d records (busy doctor: %d), %d comments; seeded in %.1fs %s\n\n",
		s.Path, s.Patients, s.Doctors, s.Records, s.BusyRecords, s.Comments, s.Seconds, fmtSteps(s.Steps))
	db := hasDBCPU(rep)
	resultTable(w, rep.Results, true, db)
	if len(rep.Ceilings) > 0 {
		if rep.Store == storePostgres {
			fmt.Fprintln(w, "\nceilings: bare net/http + HS256 check + one prepared pgx statement on PostgreSQL (same server, same database, a schema of its own), same requests, same answers, same client")
		} else {
			fmt.Fprintln(w, "\nceilings: bare net/http + HS256 check + one prepared modernc SQLite statement (WAL), same requests, same answers, same client")
		}
		if rep.CeilingSource != "" {
			fmt.Fprintf(w, "the ceiling serves %s\n", rep.CeilingSource)
		}
		resultTable(w, rep.Ceilings, false, db)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "fsync rate (4 KiB append + fsync, tmpdir): %.0f/s\n", rep.FsyncPerSec)
	if rep.Server.PeakRSSBytes > 0 {
		fmt.Fprintf(w, "healthrecord peak RSS (VmHWM, whole run incl. seeding): %s\n", mib(rep.Server.PeakRSSBytes))
	}
	if rep.CeilingRSS > 0 {
		fmt.Fprintf(w, "ceiling server peak RSS: %s\n", mib(rep.CeilingRSS))
	}
	if rep.Server.StartupSeconds > 0 {
		fmt.Fprintf(w, "serve start-up: %.0fms on an empty database, %.0fms on the seeded one\n",
			rep.Server.StartupSeconds*1000, rep.Server.RestartSeconds*1000)
	}
	for _, r := range append(append([]Result{}, rep.Results...), rep.Ceilings...) {
		if r.Errors > 0 {
			fmt.Fprintf(w, "errors in %s (%s): %v\n", r.Name, r.Target, r.ErrorCodes)
		}
	}
	if sc := rep.Scale; sc != nil {
		writeScale(w, sc)
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
}

func fmtSteps(steps map[string]float64) string {
	if len(steps) == 0 {
		return ""
	}
	keys := make([]string, 0, len(steps))
	for k := range steps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.1fs", k, steps[k])
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// instancesText says how many serve processes ran and how the load
// reached them.
func instancesText(rep *Report) string {
	if rep.Instances <= 1 {
		return "one serve process"
	}
	how := "the Go client's connections spread over them round-robin"
	if rep.Config.Client == clientWrk {
		how = "one wrk per instance at once, connections split evenly; counts summed, each latency quantile the largest of the instances' (an upper bound)"
	}
	return fmt.Sprintf("%d serve processes on the one database (%s)", rep.Instances, how)
}

// hasDBCPU: some line measured the database's CPU (PostgreSQL, local).
func hasDBCPU(rep *Report) bool {
	for _, r := range append(append([]Result{}, rep.Results...), rep.Ceilings...) {
		if r.DBCPUShare > 0 {
			return true
		}
	}
	return false
}

func resultTable(w io.Writer, rs []Result, withRatio, withDB bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := "ceiling\treq/s\tp50\tp95\tp99\terrors\tserver CPU\t"
	if withRatio {
		head = "scenario\treq/s\tp50\tp95\tp99\terrors\tceiling\tceiling req/s\tratio\tserver RSS\tserver CPU\t"
	}
	if withDB {
		head += "db CPU\t"
	}
	fmt.Fprintln(tw, head+"client CPU\t")
	for _, r := range rs {
		line := fmt.Sprintf("%s\t%.0f\t%s\t%s\t%s\t%d\t", r.Name, r.RPS, fmtMs(r.P50ms), fmtMs(r.P95ms), fmtMs(r.P99ms), r.Errors)
		if withRatio {
			name, ceil, ratio := "-", "-", "-"
			if r.CeilingRPS > 0 {
				name, ceil, ratio = r.Ceiling, fmt.Sprintf("%.0f", r.CeilingRPS), fmt.Sprintf("%.2f", r.Ratio)
			}
			for _, m := range r.MoreCeilings {
				name += "; " + m.Ceiling
				ceil += fmt.Sprintf("; %.0f", m.CeilingRPS)
				ratio += fmt.Sprintf("; %.2f", m.Ratio)
			}
			line += fmt.Sprintf("%s\t%s\t%s\t%s\t", name, ceil, ratio, mib(r.PeakRSSByte))
		}
		line += pct(r.ServerCPUShare) + "\t"
		if withDB {
			line += pct(r.DBCPUShare) + "\t"
		}
		line += pct(r.ClientCPUShare) + "\t"
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
	for _, r := range rs {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Name, r.Note)
		}
	}
}

func writeScale(w io.Writer, sc *Scale) {
	s := sc.Seeding
	fmt.Fprintf(w, "\nscale run (%s path): %d patients, %d doctors, %d records (busy doctor: %d), %d comments; seeded in %.1fs %s\n",
		s.Path, s.Patients, s.Doctors, s.Records, s.BusyRecords, s.Comments, s.Seconds, fmtSteps(s.Steps))
	fmt.Fprintf(w, "database: %.1f MiB, %.0f bytes per record (bulk rows carry no audit trail)", float64(sc.DBBytes)/(1<<20), sc.BytesPerRecord)
	if sc.DefaultPerRec > 0 {
		fmt.Fprintf(w, "; default data set after its benchmark: %.1f MiB, %.0f bytes per record (%d records)",
			float64(sc.DefaultDBBytes)/(1<<20), sc.DefaultPerRec, sc.DefaultRecords)
	}
	fmt.Fprintln(w)
	tableSizeTable(w, sc)
	fmt.Fprintf(w, "serve start-up on it: %.0fms; peak RSS: %s\n", sc.StartupSeconds*1000, mib(sc.Server.PeakRSSBytes))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\treq/s default\treq/s scale\tp99 default\tp99 scale\tp99 scale/default\terrors\t")
	for _, r := range sc.Results {
		var base *Result
		for i := range sc.DefaultBaseline {
			if sc.DefaultBaseline[i].Name == r.Name {
				base = &sc.DefaultBaseline[i]
			}
		}
		dr, dp, ratio := "-", "-", "-"
		if base != nil {
			dr, dp = fmt.Sprintf("%.0f", base.RPS), fmtMs(base.P99ms)
			if base.P99ms > 0 {
				ratio = fmt.Sprintf("%.2f", r.P99ms/base.P99ms)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%d\t\n", r.Name, dr, r.RPS, dp, fmtMs(r.P99ms), ratio, r.Errors)
	}
	_ = tw.Flush()
	for _, r := range sc.Results {
		if r.Errors > 0 {
			fmt.Fprintf(w, "errors in scale %s: %v\n", r.Name, r.ErrorCodes)
		}
	}
}

// tableSizeTable prints bytes per record by table, scale and default.
func tableSizeTable(w io.Writer, sc *Scale) {
	names := make([]string, 0, len(sc.Tables))
	for n := range sc.Tables {
		names = append(names, n)
	}
	for n := range sc.DefaultTables {
		if _, ok := sc.Tables[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		return sc.Tables[names[i]]+sc.DefaultTables[names[i]] > sc.Tables[names[j]]+sc.DefaultTables[names[j]]
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "table (with indexes)\tscale MiB\tscale bytes/record\tdefault MiB\tdefault bytes/record\t")
	per := func(b int64, n int) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", float64(b)/float64(n))
	}
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%.1f\t%s\t\n", n, float64(sc.Tables[n])/(1<<20), per(sc.Tables[n], sc.Seeding.Records),
			float64(sc.DefaultTables[n])/(1<<20), per(sc.DefaultTables[n], sc.DefaultRecords))
	}
	_ = tw.Flush()
}

// writeJSON writes the report to path.
func writeJSON(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
