// Command run measures the PocketBase app of this module the way
// cmd/hrbench --client wrk measures healthrecord: it builds the app, seeds
// a fresh data directory, starts `serve`, and drives each scenario with
// wrk from a generated Lua script (a table of ready requests with each
// patient's token; one drawn at random per request), after an unmeasured
// warm-up. It prints req/s, p50/p99, non-2xx answers, the server's CPU
// share and its RSS.
//
//	cd bench/pocketbase && go run ./run --patients 200 --doctors 20 --duration 5s
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"healthrecord/bench/pocketbase/internal/text"
)

// wrkRequests is how many requests a script's table holds, as in hrbench.
const wrkRequests = 2048

// seeded is what the app's seed command writes (main.go's Seeded).
type seeded struct {
	Patients []struct {
		ID      string   `json:"id"`
		Token   string   `json:"token"`
		Records []string `json:"records"`
	} `json:"patients"`
	Doctors []string `json:"doctors"`
}

type options struct {
	patients, doctors, records, comments int
	conns, threads                       int
	duration, warmup                     time.Duration
	scenarios                            string
	keep, requestLogs                    bool
}

func main() {
	var o options
	flag.IntVar(&o.patients, "patients", 200, "patients to seed")
	flag.IntVar(&o.doctors, "doctors", 20, "doctors to seed")
	flag.IntVar(&o.records, "records", 10, "records per patient")
	flag.IntVar(&o.comments, "comments", 2, "comments per record")
	flag.IntVar(&o.conns, "conns", 32, "wrk connections (-c)")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads (-t)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per scenario (whole seconds, as wrk takes it)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each scenario (0: none)")
	flag.StringVar(&o.scenarios, "scenarios", "list,read,create", "comma-separated, in order: list, list-skiptotal, read, create")
	flag.BoolVar(&o.requestLogs, "request-logs", true, "leave PocketBase's request log on, as it ships (false: Logs.MaxDays=0)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binary, data, scripts)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not installed (apt-get install wrk)")
	}
	scenarios := strings.Split(o.scenarios, ",")
	for _, s := range scenarios {
		if _, ok := paths[s]; !ok {
			return fmt.Errorf("unknown scenario %q", s)
		}
	}
	tmp, err := os.MkdirTemp("", "pbbench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	// The module's directory: the working directory under `go run ./run`
	// or run.sh.
	bin := filepath.Join(tmp, "pocketbase-bench")
	t0 := time.Now()
	if err := runCmd(ctx, "", "go", "build", "-o", bin, "."); err != nil {
		return fmt.Errorf("build (run from bench/pocketbase): %w", err)
	}
	fmt.Printf("built in %.1fs\n", time.Since(t0).Seconds())

	// --dev=false always: PocketBase turns dev mode (every SQL statement
	// printed) on by itself for a binary under the temporary directory.
	data := filepath.Join(tmp, "pb_data")
	tokens := filepath.Join(tmp, "tokens.json")
	t0 = time.Now()
	if err := runCmd(ctx, "", bin, "--dir", data, "--dev=false", "seed",
		"--patients", strconv.Itoa(o.patients), "--doctors", strconv.Itoa(o.doctors),
		"--records", strconv.Itoa(o.records), "--comments", strconv.Itoa(o.comments), "--request-logs="+strconv.FormatBool(o.requestLogs), "--out", tokens); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	var ds seeded
	b, err := os.ReadFile(tokens)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &ds); err != nil {
		return err
	}
	fmt.Printf("seeded %d patients, %d doctors, %d records each, %d comments per record in %.1fs\n",
		len(ds.Patients), len(ds.Doctors), o.records, o.comments, time.Since(t0).Seconds())

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	srv := exec.CommandContext(ctx, bin, "--dir", data, "--dev=false", "serve", "--http", addr)
	srvLog, err := os.Create(filepath.Join(tmp, "serve.log"))
	if err != nil {
		return err
	}
	defer srvLog.Close()
	srv.Stdout, srv.Stderr = srvLog, srvLog
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		_ = srv.Wait()
	}()
	base := "http://" + addr
	if err := waitHealthy(ctx, base+"/api/health"); err != nil {
		return err
	}
	pid := srv.Process.Pid
	fmt.Printf("PocketBase serving on %s (pid %d), RSS %s\n\n", base, pid, fmtKiB(procStatus(pid, "VmRSS")))

	fmt.Printf("%-15s %9s %9s %9s %8s %10s %12s %11s %11s\n", "scenario", "req/s", "p50", "p99", "non-2xx", "server CPU", "CPU/request", "RSS after", "peak RSS")
	for _, s := range scenarios {
		reqs := table(s, ds, wrkRequests)
		if o.warmup > 0 {
			if _, err := runWrk(ctx, tmp, base, reqs, o.conns, o.threads, o.warmup); err != nil {
				return err
			}
		}
		cpu0, w0 := procCPU(pid), time.Now()
		sum, err := runWrk(ctx, tmp, base, reqs, o.conns, o.threads, o.duration)
		if err != nil {
			return err
		}
		cpu := procCPU(pid) - cpu0
		share := cpu.Seconds() / time.Since(w0).Seconds() / float64(runtime.NumCPU())
		bad := sum.socketErrors
		for st, n := range sum.status {
			if st/100 != 2 {
				bad += n
			}
		}
		perReq := time.Duration(0)
		if sum.requests > 0 {
			perReq = cpu / time.Duration(sum.requests)
		}
		fmt.Printf("%-15s %9.0f %9s %9s %8d %9.0f%% %12s %11s %11s\n", s, float64(sum.requests)/sum.duration.Seconds(),
			fmtDur(sum.p50), fmtDur(sum.p99), bad, 100*share, fmtDur(perReq), fmtKiB(procStatus(pid, "VmRSS")), fmtKiB(procStatus(pid, "VmHWM")))
	}
	fmt.Printf("\nwrk -t%d -c%d -d%s after a %s warm-up; server CPU is the share of all %d cores, CPU/request the server's CPU time over the requests wrk counted; peak RSS is the server's since it started; request log on: %v.\n",
		o.threads, o.conns, wrkDuration(o.duration), o.warmup, runtime.NumCPU(), o.requestLogs)
	return nil
}

// paths are the scenarios' requests, each healthrecord's counterpart:
// list is GET /api/records/ (a patient's newest records with their
// comments), read GET /api/records/{id}/ (one own record with its
// comments), create POST /api/records/ (a record for the signed-in
// patient, assigned to a doctor). list-skiptotal is list without the
// COUNT(*) PocketBase runs for totalItems, which healthrecord's bare
// array does not need.
var paths = map[string]string{
	"list":           "/api/collections/records/records?perPage=10&sort=-created&expand=comments_via_record",
	"list-skiptotal": "/api/collections/records/records?perPage=10&sort=-created&expand=comments_via_record&skipTotal=1",
	"read":           "/api/collections/records/records/%s?expand=comments_via_record",
	"create":         "/api/collections/records/records",
}

type wrkReq struct{ method, path, auth, body string }

// table draws n requests of scenario s with a fixed seed, so runs compare:
// a random patient each, a random own record for read, and for create a
// doctor other than the first, as hrbench picks them.
func table(s string, ds seeded, n int) []wrkReq {
	rng := mrand.New(mrand.NewPCG(1, 2))
	out := make([]wrkReq, 0, n)
	for range n {
		p := ds.Patients[rng.IntN(len(ds.Patients))]
		r := wrkReq{method: "GET", path: paths[s], auth: p.Token}
		switch s {
		case "read":
			r.path = fmt.Sprintf(paths[s], p.Records[rng.IntN(len(p.Records))])
		case "create":
			d := ds.Doctors[0]
			if len(ds.Doctors) > 1 {
				d = ds.Doctors[1+rng.IntN(len(ds.Doctors)-1)]
			}
			title, content := text.Record(rng)
			body, _ := json.Marshal(map[string]string{"patient": p.ID, "doctor": d, "title": title, "content": content})
			r.method, r.body = "POST", string(body)
		}
		out = append(out, r)
	}
	return out
}

// luaQuote is s as a Lua string literal (as cmd/hrbench quotes it).
func luaQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// script is the Lua script for reqs: cmd/hrbench's (wrk.go), so both
// servers see the same client.
func script(reqs []wrkReq) string {
	var b strings.Builder
	b.WriteString("-- generated by bench/pocketbase/run: a table of requests, one drawn at random per request\nlocal reqs = {\n")
	opt := func(s string) string {
		if s == "" {
			return "false"
		}
		return luaQuote(s)
	}
	for _, r := range reqs {
		fmt.Fprintf(&b, "{%s,%s,%s,%s},\n", luaQuote(r.method), luaQuote(r.path), opt(r.auth), opt(r.body))
	}
	b.WriteString(scriptBody)
	return b.String()
}

const scriptBody = `}
local threads = {}
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end
local formatted = {}
local count = 0
codes = {}
function init(args)
  for i, r in ipairs(reqs) do
    local h = {}
    if r[3] then h["Authorization"] = r[3] end
    if r[4] then h["Content-Type"] = "application/json" end
    formatted[i] = wrk.format(r[1], r[2], h, r[4] or nil)
  end
  count = #formatted
  math.randomseed(7919 * tid)
end
function request()
  return formatted[math.random(count)]
end
function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("PBBENCH duration_us %.0f\n", summary.duration))
  io.write(string.format("PBBENCH requests %.0f\n", summary.requests))
  io.write(string.format("PBBENCH socket_errors %.0f\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("PBBENCH p50_us %.0f\n", latency:percentile(50)))
  io.write(string.format("PBBENCH p99_us %.0f\n", latency:percentile(99)))
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("codes")) do
      io.write(string.format("PBBENCH status %d %.0f\n", status, n))
    end
  end
end
`

type summary struct {
	duration, p50, p99     time.Duration
	requests, socketErrors int
	status                 map[int]int
}

// runWrk runs wrk with reqs' script for d and parses its done() lines.
func runWrk(ctx context.Context, dir, base string, reqs []wrkReq, conns, threads int, d time.Duration) (summary, error) {
	f, err := os.CreateTemp(dir, "wrk-*.lua")
	if err != nil {
		return summary{}, err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(script(reqs)); err != nil {
		f.Close()
		return summary{}, err
	}
	if err := f.Close(); err != nil {
		return summary{}, err
	}
	threads = max(1, min(threads, conns))
	cmd := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", wrkDuration(d),
		"--timeout", "10s", "--latency", "-s", f.Name(), base+"/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return summary{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	s := summary{status: map[int]int{}}
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "PBBENCH" {
			continue
		}
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return s, fmt.Errorf("wrk summary %q: %w", sc.Text(), err)
		}
		seen++
		us := time.Duration(n) * time.Microsecond
		switch f[1] {
		case "duration_us":
			s.duration = us
		case "requests":
			s.requests = int(n)
		case "socket_errors":
			s.socketErrors = int(n)
		case "p50_us":
			s.p50 = us
		case "p99_us":
			s.p99 = us
		case "status":
			if len(f) != 4 {
				return s, fmt.Errorf("wrk summary %q", sc.Text())
			}
			c, err := strconv.Atoi(f[3])
			if err != nil {
				return s, fmt.Errorf("wrk summary %q: %w", sc.Text(), err)
			}
			s.status[int(n)] += c
		}
	}
	if seen < 5 || s.duration <= 0 {
		return s, fmt.Errorf("wrk printed no summary:\n%s", out)
	}
	return s, nil
}

// wrkDuration is d in wrk's whole seconds, at least one.
func wrkDuration(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second))) + "s"
}

func runCmd(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, tail(string(out), 2000))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitHealthy(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer 200 within 30s", url)
}

// procStatus is a "kB" line of /proc/pid/status (VmRSS, VmHWM), in KiB.
func procStatus(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// procCPU is the user and system time pid has used (clock ticks of 10 ms,
// Linux's USER_HZ).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime, stime are fields 14, 15
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

func fmtKiB(k int64) string { return fmt.Sprintf("%.0f MiB", float64(k)/1024) }

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
