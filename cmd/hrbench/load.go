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
}

// drive runs conns workers, each sending g's requests one after another
// on its own connection, for d. Latency is measured from sending to the
// end of the body.
func drive(ctx context.Context, c *http.Client, conns int, d time.Duration, g gen) loadResult {
	type worker struct {
		lat   []time.Duration
		codes map[string]int
		errs  int
	}
	ws := make([]worker, conns)
	expect := int(d.Seconds()*20000)/conns + 64 // preallocated for up to 20k req/s in total
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range ws {
		ws[i] = worker{lat: make([]time.Duration, 0, expect), codes: map[string]int{}}
		wg.Add(1)
		go func(w *worker, seed uint64) {
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
		}(&ws[i], uint64(i)+1)
	}
	wg.Wait()
	r := loadResult{Conns: conns, Elapsed: time.Since(start), Codes: map[string]int{}}
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
	base   string
	srv    *serverProc // nil with --url
	ds     *dataset
	ceil   *ceiling
}

// measure warms up, then drives g against healthrecord and summarizes,
// sampling the server's RSS meanwhile.
func (b *bench) measure(ctx context.Context, name, scenario string, conns int, g gen) Result {
	if b.o.Warmup > 0 {
		drive(ctx, b.client, conns, b.o.Warmup, g)
	}
	pid := 0
	if b.srv != nil {
		pid = b.srv.cmd.Process.Pid
	}
	stop := sampleRSS(pid)
	r := summarize(name, scenario, "healthrecord", drive(ctx, b.client, conns, b.o.Duration, g))
	r.PeakRSSByte = stop()
	b.logf("%-22s %8.0f req/s  p99 %s  errors %d", name, r.RPS, fmtMs(r.P99ms), r.Errors)
	return r
}

// measureCeiling is measure against the ceiling server.
func (b *bench) measureCeiling(ctx context.Context, name string, g gen) Result {
	if b.o.Warmup > 0 {
		drive(ctx, b.client, b.o.Conns, b.o.Warmup, g)
	}
	r := summarize(name, name, "ceiling", drive(ctx, b.client, b.o.Conns, b.o.Duration, g))
	b.logf("%-22s %8.0f req/s  p99 %s  errors %d", "ceiling "+name, r.RPS, fmtMs(r.P99ms), r.Errors)
	return r
}

// The ceilings each scenario is compared with.
const (
	ceilSelect = "select"
	ceilInsert = "insert"
	ceilMixed  = "mixed 80/20"
	ceilSignin = "signin"
)

// runScenarios runs the selected scenarios in their fixed order. Each
// ceiling is measured just before the first scenario compared with it, so
// that a slow drift of the machine (a shared disk, a noisy neighbour)
// weighs on both sides of a ratio alike.
func (b *bench) runScenarios(ctx context.Context, rep *Report) error {
	sel := map[string]bool{}
	for _, s := range b.o.Scenarios {
		sel[s] = true
	}
	ceiling := func(name string) string {
		for _, c := range rep.Ceilings {
			if c.Name == name {
				return name
			}
		}
		rep.Ceilings = append(rep.Ceilings, b.measureCeiling(ctx, name, b.ceil.gen(name)))
		return name
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
		var rs []Result
		switch s {
		case "list":
			c := ceiling(ceilSelect)
			r := withCeiling(b.measure(ctx, "list", s, b.o.Conns, b.genList()), rep.Ceilings, c)
			listAlone = &r
			rs = append(rs, r)
		case "read":
			c := ceiling(ceilSelect)
			rs = append(rs, withCeiling(b.measure(ctx, "read", s, b.o.Conns, b.genRead()), rep.Ceilings, c))
		case "doctor-list":
			first, later, err := b.doctorPages(ctx)
			if err != nil {
				return err
			}
			c := ceiling(ceilSelect)
			r1 := withCeiling(b.measure(ctx, "doctor-list", s, b.o.Conns, b.genGet(first, ds.Doctors[ds.Busy].Token)), rep.Ceilings, c)
			r1.Note = fmt.Sprintf("first page (50 records with their comments) of a doctor with %d assigned records; ceiling: 10 rows", ds.Seeding.BusyRecords)
			r2 := withCeiling(b.measure(ctx, "doctor-list-cursor", s, b.o.Conns, b.genGet(later, ds.Doctors[ds.Busy].Token)), rep.Ceilings, c)
			r2.Note = "a later page of the same doctor, by the cursor of its Link header"
			rs = append(rs, r1, r2)
		case "signin":
			c := ceiling(ceilSignin)
			r := withCeiling(b.measure(ctx, "signin", s, b.o.Conns, b.genSignin()), rep.Ceilings, c)
			r.Note = "argon2id (m=19 MiB, t=2), on at most half the cores at once in both; the server also idles each slot half the time (a CPU share that protects the API), the ceiling does not"
			rs = append(rs, r)
		case "signin-storm":
			rs = append(rs, b.storm(ctx, listAlone, rep.Ceilings, ceiling(ceilSelect))...)
		case "create":
			c := ceiling(ceilInsert)
			r := withCeiling(b.measure(ctx, "create", s, b.o.Conns, b.genCreate()), rep.Ceilings, c)
			r.Note = "record + outbox event + audit entry in one durable commit; ceiling: one INSERT"
			b.drain(ctx, &r)
			rs = append(rs, r)
		case "comment":
			c := ceiling(ceilInsert)
			r := withCeiling(b.measure(ctx, "comment", s, b.o.Conns, b.genComment()), rep.Ceilings, c)
			r.Note = "comment + audit entry in one durable commit; ceiling: one INSERT (a durable write, not a SELECT)"
			rs = append(rs, r)
		case "mixed":
			c := ceiling(ceilMixed)
			r := withCeiling(b.measure(ctx, "mixed", s, b.o.Conns, b.genMixed()), rep.Ceilings, c)
			r.Note = "40% list, 40% read, 10% create, 10% comment; ceiling: 80% SELECT, 20% INSERT"
			b.drain(ctx, &r)
			rs = append(rs, r)
		}
		rep.Results = append(rep.Results, rs...)
	}
	return nil
}

// drain waits for the outbox dispatcher to deliver what a write scenario
// left pending, so that the next scenario does not pay for it unseen, and
// notes the backlog on r: creates measured faster than the dispatcher
// delivers them are not a sustainable rate.
func (b *bench) drain(ctx context.Context, r *Result) {
	if b.srv == nil {
		return
	}
	backlog, took, err := waitOutbox(ctx, b.srv.db, 5*time.Minute)
	if err != nil {
		b.logf("outbox: %v", err)
		return
	}
	r.OutboxBacklog, r.OutboxDrainSeconds = backlog, took.Seconds()
	if backlog > 0 {
		r.Note += fmt.Sprintf("; outbox: %d events pending at the end, delivered %.1fs later", backlog, took.Seconds())
	}
}

// storm measures list while StormConns clients sign in without pause, and
// compares it with list alone (measured now unless list already ran).
func (b *bench) storm(ctx context.Context, listAlone *Result, ceilings []Result, ceil string) []Result {
	if listAlone == nil {
		r := withCeiling(b.measure(ctx, "list (no storm)", "signin-storm", b.o.Conns, b.genList()), ceilings, ceil)
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
		storm = drive(sctx, stormClient, b.o.StormConns, b.o.Warmup+b.o.Duration+time.Second, b.genSignin())
	}()
	list := withCeiling(b.measure(ctx, "list (signin storm)", "signin-storm", b.o.Conns, b.genList()), ceilings, ceil)
	cancel()
	wg.Wait()
	if listAlone.RPS > 0 {
		list.Note = fmt.Sprintf("%d concurrent sign-ins meanwhile; list throughput %.0f%% of list alone (%.0f req/s), p99 %s vs %s",
			b.o.StormConns, 100*list.RPS/listAlone.RPS, listAlone.RPS, fmtMs(list.P99ms), fmtMs(listAlone.P99ms))
	}
	sr := summarize("signin (during storm)", "signin-storm", "healthrecord", storm)
	sr.Note = "the storm's own sign-ins, counted over the whole storm"
	out := []Result{list, sr}
	if listAlone.Name != "list" {
		out = append([]Result{*listAlone}, out...)
	}
	return out
}
