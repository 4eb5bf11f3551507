package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// newClient is one client for the whole run, keeping a connection per
// worker alive.
func newClient(conns int) *http.Client {
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: t, Timeout: 60 * time.Second}
}

// gen makes the next request of a worker; rng is the worker's own.
type gen func(rng *rand.Rand) *http.Request

// loadResult is what the workers of one run saw: latencies of 2xx answers
// and the count of everything else by status code ("transport" for no
// answer at all).
type loadResult struct {
	Conns   int
	Elapsed time.Duration
	Lat     []time.Duration
	Errors  int
	Codes   map[string]int
	// Quantiles replaces Lat when the client (wrk) summarizes itself.
	Quantiles *quantiles
	// ClientCPU is the CPU time the load generator spent over ClientWall;
	// ServerCPU the server's (all its instances') over the same time and
	// DBCPU PostgreSQL's backends' (0 when unknown).
	ClientCPU, ClientWall, ServerCPU, DBCPU time.Duration
}

// quantiles are latencies a client reported already summarized, and the
// count of 2xx answers.
type quantiles struct {
	OK                 int
	P50, P95, P99, Max time.Duration
}

// drive runs conns workers, each sending its generator's requests one
// after another on its own connection, for d: worker i uses gs[i % len(gs)],
// so with one generator per server instance the connections are spread
// over the instances round-robin. Latency is measured from sending to the
// end of the body.
func drive(ctx context.Context, c *http.Client, conns int, d time.Duration, gs ...gen) loadResult {
	type worker struct {
		lat   []time.Duration
		codes map[string]int
		errs  int
	}
	cpu0 := selfCPU()
	ws := make([]worker, conns)
	expect := int(d.Seconds()*20000)/conns + 64 // preallocated for up to 20k req/s in total
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range ws {
		ws[i] = worker{lat: make([]time.Duration, 0, expect), codes: map[string]int{}}
		wg.Add(1)
		go func(w *worker, seed uint64, g gen) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(start.UnixNano())))
			for ctx.Err() == nil && time.Now().Before(deadline) {
				req := g(rng).WithContext(ctx)
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						w.errs++
						w.codes["transport"]++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				dt := time.Since(t0)
				if resp.StatusCode/100 == 2 {
					w.lat = append(w.lat, dt)
				} else {
					w.errs++
					w.codes[strconv.Itoa(resp.StatusCode)]++
				}
			}
		}(&ws[i], uint64(i)+1, gs[i%len(gs)])
	}
	wg.Wait()
	r := loadResult{Conns: conns, Elapsed: time.Since(start), Codes: map[string]int{}}
	r.ClientCPU, r.ClientWall = selfCPU()-cpu0, r.Elapsed
	n := 0
	for _, w := range ws {
		n += len(w.lat)
	}
	r.Lat = make([]time.Duration, 0, n)
	for _, w := range ws {
		r.Lat = append(r.Lat, w.lat...)
		r.Errors += w.errs
		for k, v := range w.codes {
			r.Codes[k] += v
		}
	}
	return r
}

// request builds a request; body nil for GET.
func request(method, url, token string, body []byte) *http.Request {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		panic(err) // the URLs are ours
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// weighted picks one of gens with the given weights (in percent).
func weighted(weights []int, gens []gen) gen {
	total := 0
	for _, w := range weights {
		total += w
	}
	return func(rng *rand.Rand) *http.Request {
		n := rng.IntN(total)
		for i, w := range weights {
			if n < w {
				return gens[i](rng)
			}
			n -= w
		}
		return gens[len(gens)-1](rng)
	}
}

// bench holds what the scenarios need.
type bench struct {
	o      options
	logf   func(string, ...any)
	client *http.Client
	// base and srv are the (first) server: seeding and preparation go
	// there; bases and srvs are every instance the scenarios spread over.
	base  string
	srv   *serverProc // nil with --url
	bases []string
	srvs  []*serverProc
	pg    *pgDatabase // with --db postgres://…
	ds    *dataset
	ceil  *ceiling
	tmp   string // for wrk's scripts
}

// useServers makes srvs the servers under test.
func (b *bench) useServers(srvs []*serverProc) {
	b.srvs, b.bases = srvs, nil
	for _, s := range srvs {
		b.bases = append(b.bases, s.url)
	}
	b.srv, b.base = srvs[0], srvs[0].url
}

// each is one generator per instance, mk(base) for each server's base URL.
func (b *bench) each(mk func(base string) gen) []gen {
	bases := b.bases
	if len(bases) == 0 {
		bases = []string{b.base}
	}
	gs := make([]gen, len(bases))
	for i, base := range bases {
		gs[i] = mk(base)
	}
	return gs
}

// outboxCount counts the server's pending outbox events, nil with --url.
func (b *bench) outboxCount() func(context.Context) (int, error) {
	switch {
	case b.pg != nil:
		return b.pg.pendingOutbox
	case b.srv != nil:
		return sqliteOutbox(b.srv.db)
	}
	return nil
}

// drive runs one load with the selected client (gs: one generator per
// instance) and measures the CPU the client, the server processes (pids)
// and, with PostgreSQL, the database's backends spent meanwhile.
func (b *bench) drive(ctx context.Context, conns int, d time.Duration, gs []gen, pids []int) (loadResult, error) {
	var srv0 time.Duration
	for _, pid := range pids {
		srv0 += procCPU(pid)
	}
	var dbCPU func() time.Duration
	if len(pids) > 0 && b.pg != nil {
		dbCPU = b.pg.dbCPU(ctx)
	}
	var r loadResult
	if b.o.Client == clientWrk {
		var err error
		if r, err = runWrks(ctx, b.tmp, gs, conns, b.o.WrkThreads, d); err != nil {
			return r, err
		}
	} else {
		r = drive(ctx, b.client, conns, d, gs...)
	}
	if len(pids) > 0 {
		for _, pid := range pids {
			r.ServerCPU += procCPU(pid)
		}
		r.ServerCPU -= srv0
	}
	if dbCPU != nil {
		r.DBCPU = dbCPU()
	}
	return r, nil
}

// measureOn warms up, then drives gs against the server processes pids
// and summarizes, sampling their RSS meanwhile.
func (b *bench) measureOn(ctx context.Context, name, scenario, target string, pids []int, conns int, gs []gen) (Result, error) {
	if b.o.Warmup > 0 {
		if _, err := b.drive(ctx, conns, b.o.Warmup, gs, nil); err != nil {
			return Result{}, err
		}
	}
	stop := sampleRSS(pids...)
	lr, err := b.drive(ctx, conns, b.o.Duration, gs, pids)
	rss := stop()
	if err != nil {
		return Result{}, err
	}
	if b.pg != nil {
		// Keep the planner's statistics as fresh as autovacuum would on a
		// live database: a burst of inserts into a table analyzed small
		// otherwise leaves plans (a sequential scan) made for the small one.
		if err := b.pg.analyze(ctx); err != nil {
			return Result{}, fmt.Errorf("analyze: %w", err)
		}
	}
	r := summarize(name, scenario, target, lr)
	r.Client = b.o.Client
	if target == "healthrecord" {
		r.PeakRSSByte = rss
	}
	label := name
	if target != "healthrecord" {
		label = target + " " + name
	}
	b.logf("%-22s %8.0f req/s  p99 %s  errors %d  client CPU %.0f%%", label, r.RPS, fmtMs(r.P99ms), r.Errors, 100*r.ClientCPUShare)
	return r, nil
}

// measure is measureOn against healthrecord (every instance).
func (b *bench) measure(ctx context.Context, name, scenario string, conns int, gs []gen) (Result, error) {
	var pids []int
	for _, s := range b.srvs {
		pids = append(pids, s.cmd.Process.Pid)
	}
	if len(pids) == 0 && b.srv != nil {
		pids = []int{b.srv.cmd.Process.Pid}
	}
	return b.measureOn(ctx, name, scenario, "healthrecord", pids, conns, gs)
}

// The line names of the ceilings each scenario is compared with: the
// first is the line's ratio column, the others are further ratios.
var scenarioCeilings = map[string][]string{
	"list":         {ceilSelect},
	"read":         {ceilRead},
	"doctor-list":  {ceilSelect},
	"signin":       {ceilSignin},
	"signin-storm": {ceilSelect},
	"create":       {ceilInsertNormal, ceilInsertFull},
	"comment":      {ceilInsertNormal, ceilInsertFull},
	"mixed":        {ceilMixed},
}

// ceilingsFor is scenarioCeilings[s] in the names of the store's
// ceilings: on PostgreSQL the insert ceilings commit with
// synchronous_commit on and off rather than SQLite's FULL and NORMAL.
func (b *bench) ceilingsFor(s string) []string {
	cs := scenarioCeilings[s]
	if b.pg == nil {
		return cs
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = pgCeilingName(c)
	}
	return out
}

// createNote describes the create line on the store under test.
func (b *bench) createNote() string {
	if b.pg != nil {
		return "record + outbox event + audit entry in one commit (synchronous_commit=on; one writer at a time across instances, an advisory lock); ceilings: one INSERT per commit"
	}
	return "record + outbox event + audit entry in one durable commit (synchronous=FULL, group commit); ceilings: one INSERT per commit"
}

// runScenarios runs the selected scenarios in their fixed order. Each
// ceiling is measured just before the first scenario compared with it, so
// that a slow drift of the machine (a shared disk, a noisy neighbour)
// weighs on both sides of a ratio alike.
func (b *bench) runScenarios(ctx context.Context, rep *Report) error {
	sel := map[string]bool{}
	for _, s := range b.o.Scenarios {
		sel[s] = true
	}
	measureCeilings := func(names []string) error {
	next:
		for _, name := range names {
			for _, c := range rep.Ceilings {
				if c.Name == name {
					continue next
				}
			}
			r, err := b.measureOn(ctx, name, name, "ceiling", []int{b.ceil.proc.cmd.Process.Pid}, b.o.Conns, []gen{b.ceil.gen(name)})
			if err != nil {
				return err
			}
			rep.Ceilings = append(rep.Ceilings, r)
		}
		return nil
	}
	ds := b.ds
	var listAlone *Result
	for _, s := range allScenarios {
		if !sel[s] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		cs := b.ceilingsFor(s)
		if err := measureCeilings(cs); err != nil {
			return err
		}
		one := func(name string, g []gen) (Result, error) {
			r, err := b.measure(ctx, name, s, b.o.Conns, g)
			return withCeilings(r, rep.Ceilings, cs), err
		}
		var rs []Result
		switch s {
		case "list":
			r, err := one("list", b.each(b.genList))
			if err != nil {
				return err
			}
			r.Note = "a patient's first page, records with their comments; ceiling: the same bytes from one prepared SELECT"
			listAlone = &r
			rs = append(rs, r)
		case "read":
			r, err := one("read", b.each(b.genRead))
			if err != nil {
				return err
			}
			rs = append(rs, r)
		case "doctor-list":
			first, later, err := b.doctorPages(ctx)
			if err != nil {
				return err
			}
			r1, err := one("doctor-list", b.each(b.genGet(first, ds.Doctors[ds.Busy].Token)))
			if err != nil {
				return err
			}
			r1.Note = fmt.Sprintf("first page (50 records with their comments) of a doctor with %d assigned records; ceiling: a patient's 10", ds.Seeding.BusyRecords)
			r2, err := one("doctor-list-cursor", b.each(b.genGet(later, ds.Doctors[ds.Busy].Token)))
			if err != nil {
				return err
			}
			r2.Note = "a later page of the same doctor, by the cursor of its Link header"
			rs = append(rs, r1, r2)
		case "signin":
			r, err := one("signin", b.each(b.genSignin))
			if err != nil {
				return err
			}
			r.Note = "argon2id (m=19 MiB, t=2), on at most half the cores at once in both; the server also idles each slot half the time (a CPU share that protects the API), the ceiling does not"
			rs = append(rs, r)
		case "signin-storm":
			out, err := b.storm(ctx, listAlone, rep.Ceilings, cs)
			if err != nil {
				return err
			}
			rs = append(rs, out...)
		case "create":
			r, err := one("create", b.each(b.genCreate))
			if err != nil {
				return err
			}
			r.Note = b.createNote()
			b.drain(ctx, &r)
			rs = append(rs, r)
		case "comment":
			r, err := one("comment", b.each(b.genComment))
			if err != nil {
				return err
			}
			r.Note = "comment + audit entry in one durable commit; ceilings: one record INSERT per commit"
			rs = append(rs, r)
		case "mixed":
			r, err := one("mixed", b.each(b.genMixed))
			if err != nil {
				return err
			}
			r.Note = "40% list, 40% read, 10% create, 10% comment; ceiling: 40% list, 40% read, 20% " + pgCeilingNameIf(b.pg != nil, ceilInsertFull)
			b.drain(ctx, &r)
			rs = append(rs, r)
		}
		rep.Results = append(rep.Results, rs...)
	}
	rep.Warnings = ceilingWarnings(rep.Results)
	return nil
}

// drain waits for the outbox dispatcher to deliver what a write scenario
// left pending, so that the next scenario does not pay for it unseen, and
// notes the backlog on r: creates measured faster than the dispatcher
// delivers them are not a sustainable rate.
func (b *bench) drain(ctx context.Context, r *Result) {
	count := b.outboxCount()
	if count == nil {
		return
	}
	backlog, took, err := waitOutbox(ctx, count, 5*time.Minute)
	if err != nil {
		b.logf("outbox: %v", err)
		return
	}
	r.OutboxBacklog, r.OutboxDrainSeconds = backlog, took.Seconds()
	if backlog > 0 {
		r.Note += fmt.Sprintf("; outbox: %d events pending at the end, delivered %.1fs later", backlog, took.Seconds())
	}
}

// storm measures list while StormConns clients sign in without pause
// (always with the Go client: wrk cannot run two loads in one), and
// compares it with list alone (measured now unless list already ran).
func (b *bench) storm(ctx context.Context, listAlone *Result, ceilings []Result, cs []string) ([]Result, error) {
	if listAlone == nil {
		r, err := b.measure(ctx, "list (no storm)", "signin-storm", b.o.Conns, b.each(b.genList))
		if err != nil {
			return nil, err
		}
		r = withCeilings(r, ceilings, cs)
		listAlone = &r
	}
	stormClient := newClient(b.o.StormConns)
	defer stormClient.CloseIdleConnections()
	sctx, cancel := context.WithCancel(ctx)
	var storm loadResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Runs from the list's warm-up to the end of its measurement; the
		// list's measured window sees the storm at full strength.
		storm = drive(sctx, stormClient, b.o.StormConns, b.o.Warmup+b.o.Duration+time.Second, b.each(b.genSignin)...)
	}()
	list, err := b.measure(ctx, "list (signin storm)", "signin-storm", b.o.Conns, b.each(b.genList))
	cancel()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	list = withCeilings(list, ceilings, cs)
	if listAlone.RPS > 0 {
		list.Note = fmt.Sprintf("%d concurrent sign-ins meanwhile (Go client); list throughput %.0f%% of list alone (%.0f req/s), p99 %s vs %s",
			b.o.StormConns, 100*list.RPS/listAlone.RPS, listAlone.RPS, fmtMs(list.P99ms), fmtMs(listAlone.P99ms))
	}
	sr := summarize("signin (during storm)", "signin-storm", "healthrecord", storm)
	sr.Client = clientGo
	sr.Note = "the storm's own sign-ins, counted over the whole storm"
	out := []Result{list, sr}
	if listAlone.Name != "list" {
		out = append([]Result{*listAlone}, out...)
	}
	return out, nil
}
