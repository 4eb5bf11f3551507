package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary act as the ceiling server when the tool
// re-executes itself (os.Executable is the test binary here).
func TestMain(m *testing.M) {
	if os.Getenv(ceilingChildEnv) != "" {
		if err := ceilingChild(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "ceiling:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// The healthrecord binary, built once for every test that needs it.
var (
	buildOnce sync.Once
	builtDir  string
	builtBin  string
	buildErr  error
)

// serverBin builds ./cmd/healthrecord once per test binary. The bound is
// generous: on a loaded machine a cold build takes minutes, and a build
// that is merely slow must not fail the test.
func serverBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if builtDir, buildErr = os.MkdirTemp("", "hrbench-test-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		builtBin, buildErr = buildServer(ctx, builtDir)
	})
	require.NoError(t, buildErr, "building healthrecord")
	return builtBin
}

func durs(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, v := range ms {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", durs(7), 99, 7 * time.Millisecond},
		{"median of four is the second", durs(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", durs(hundred...), 99, 99 * time.Millisecond},
		{"p95 of 100 is the 95th", durs(hundred...), 95, 95 * time.Millisecond},
		{"p100 is the max", durs(1, 5, 9), 100, 9 * time.Millisecond},
		{"p99 of 10 is the max", durs(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, percentile(tt.sorted, tt.p))
		})
	}
}

func TestSummarize_SortsAndCountsOnlyOK(t *testing.T) {
	r := summarize("list", "list", "healthrecord", loadResult{
		Conns: 2, Elapsed: 2 * time.Second, Lat: durs(4, 1, 3, 2), Errors: 3, Codes: map[string]int{"500": 3},
	})
	assert.Equal(t, 4, r.OK)
	assert.Equal(t, 3, r.Errors)
	assert.InDelta(t, 2.0, r.RPS, 1e-9, "2xx answers per second only")
	assert.InDelta(t, 2.0, r.P50ms, 1e-9)
	assert.InDelta(t, 4.0, r.P99ms, 1e-9)
	assert.InDelta(t, 4.0, r.MaxMs, 1e-9)

	withC := withCeilings(r, []Result{{Name: ceilSelect, RPS: 8}, {Name: ceilInsertFull, RPS: 1}}, []string{ceilSelect})
	assert.InDelta(t, 8.0, withC.CeilingRPS, 1e-9)
	assert.InDelta(t, 0.25, withC.Ratio, 1e-9)
	assert.Empty(t, withC.MoreCeilings)
	two := withCeilings(r, []Result{{Name: ceilInsertNormal, RPS: 4}, {Name: ceilInsertFull, RPS: 1}}, []string{ceilInsertNormal, ceilInsertFull})
	assert.Equal(t, ceilInsertNormal, two.Ceiling)
	assert.InDelta(t, 0.5, two.Ratio, 1e-9)
	require.Len(t, two.MoreCeilings, 1)
	assert.Equal(t, CeilingRatio{Ceiling: ceilInsertFull, CeilingRPS: 1, Ratio: 2}, two.MoreCeilings[0])
	none := withCeilings(r, nil, []string{ceilSelect})
	assert.Zero(t, none.Ratio, "no ceiling, no ratio")
}

func TestAssign_BusyDoctorGetsAboutAThousand(t *testing.T) {
	tests := []struct {
		name                  string
		total, doctors        int
		wantBusy, wantOthersM int // busy count, and the most any other doctor gets
	}{
		{"default data set", 10000, 50, 1000, 184},
		{"scale run", 1000000, 50, 1000, 20388},
		{"small: even shares", 10, 2, 5, 5},
		{"one doctor takes all", 7, 1, 7, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counts := make([]int, tt.doctors)
			for i := range tt.total {
				d := assign(i, tt.total, tt.doctors)
				require.True(t, d >= 0 && d < tt.doctors)
				counts[d]++
			}
			assert.Equal(t, tt.wantBusy, counts[0])
			most := 0
			for _, c := range counts[1:] {
				most = max(most, c)
			}
			assert.Equal(t, tt.wantOthersM, most)
		})
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o options)
	}{
		{name: "defaults", check: func(t *testing.T, o options) {
			assert.Equal(t, 10*time.Second, o.Duration)
			assert.Equal(t, 32, o.Conns)
			assert.Equal(t, []int{1000, 50, 10, 2}, []int{o.Patients, o.Doctors, o.RecordsPerPatient, o.Comments})
			assert.Equal(t, allScenarios, o.Scenarios)
		}},
		{name: "scale run defaults to list and doctor-list", args: []string{"--records", "1000000"}, check: func(t *testing.T, o options) {
			assert.Equal(t, []string{"list", "doctor-list"}, o.Scenarios)
			assert.False(t, o.patientsSet)
		}},
		{name: "scenario list", args: []string{"--scenarios", "create, list"}, check: func(t *testing.T, o options) {
			assert.Equal(t, []string{"create", "list"}, o.Scenarios)
		}},
		{name: "unknown scenario", args: []string{"--scenarios", "lst"}, wantErr: `unknown scenario "lst"`},
		{name: "bulk needs its own server", args: []string{"--records", "10", "--url", "http://x"}, wantErr: "drop --url"},
		{name: "zero conns", args: []string{"--conns", "0"}, wantErr: "at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, &bytes.Buffer{})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, o)
		})
	}
}

func TestWriteTableAndJSON(t *testing.T) {
	rep := &Report{
		Machine: machineInfo(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		Config:  options{Conns: 32, DurationText: "10s", Duration: 10 * time.Second},
		Target:  "test", FsyncPerSec: 1234,
		Seeding: Seeding{Path: "api", Patients: 10, Doctors: 2, Records: 20, Comments: 40, BusyRecords: 10, Seconds: 1.5},
		Server:  ServerInfo{PeakRSSBytes: 64 << 20, StartupSeconds: 0.05, RestartSeconds: 0.04},
		Results: []Result{
			{Name: "list", Scenario: "list", RPS: 5000, P50ms: 1, P95ms: 2, P99ms: 3.5, Ceiling: ceilSelect, CeilingRPS: 10000, Ratio: 0.5},
			{Name: "create", Scenario: "create", RPS: 900, Errors: 2, ErrorCodes: map[string]int{"500": 2}},
		},
		Ceilings: []Result{{Name: ceilSelect, RPS: 10000}},
	}
	var out bytes.Buffer
	writeTable(&out, rep)
	text := out.String()
	for _, want := range []string{"list", "5000", "3.50ms", "10000", "0.50", "fsync rate", "1234/s", "64 MiB", "errors in create (): map[500:2]"} {
		assert.Contains(t, text, want)
	}

	path := filepath.Join(t.TempDir(), "r.json")
	require.NoError(t, writeJSON(path, rep))
	var back map[string]any
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, "10s", back["config"].(map[string]any)["duration"])
	results := back["results"].([]any)
	assert.InDelta(t, 0.5, results[0].(map[string]any)["ratio"], 1e-9)
	assert.Contains(t, back["machine"].(map[string]any), "cpus")
}

// TestRun_AgainstRealServer builds healthrecord and runs the whole tool
// briefly on a tiny data set, with the ceiling as a child process, and a
// tiny bulk-seeded scale run (which also holds the bulk path to the real
// schema).
func TestRun_AgainstRealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	bin := serverBin(t)
	// The limit only stops a hung run: seeding hashes passwords, which is
	// slow on purpose and slower still on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"--server-bin", bin, "--patients", "5", "--doctors", "2", "--records-per-patient", "2", "--comments", "1",
		"--duration", "300ms", "--warmup", "100ms", "--conns", "4", "--scenarios", "list,create", "--records", "300", "--json", jsonPath},
		&stdout, &stderr)
	require.NoError(t, err, stderr.String())

	var rep Report
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rep))
	assert.Equal(t, 10, rep.Seeding.Records)
	assert.Equal(t, 10, rep.Seeding.Comments)
	require.Len(t, rep.Results, 2)
	for _, r := range rep.Results {
		assert.Zero(t, r.Errors, "%s: %v", r.Name, r.ErrorCodes)
		assert.Positive(t, r.OK, r.Name)
		assert.Positive(t, r.CeilingRPS, r.Name)
	}
	assert.Equal(t, "list", rep.Results[0].Name)
	assert.Equal(t, "create", rep.Results[1].Name)
	assert.Positive(t, rep.Server.PeakRSSBytes)
	assert.Positive(t, rep.FsyncPerSec)
	assert.True(t, strings.Contains(stdout.String(), "ceiling req/s"), stdout.String())

	require.NotNil(t, rep.Scale)
	sc := rep.Scale
	assert.Equal(t, 300, sc.Seeding.Records)
	assert.Equal(t, 300, sc.Seeding.Comments)
	assert.Equal(t, 150, sc.Seeding.BusyRecords, "300 records, 2 doctors: even shares")
	assert.Positive(t, sc.BytesPerRecord)
	assert.Positive(t, sc.Tables["records"])
	assert.Positive(t, sc.StartupSeconds)
	require.Len(t, sc.Results, 3)
	for _, r := range sc.Results {
		assert.Zero(t, r.Errors, "scale %s: %v", r.Name, r.ErrorCodes)
		assert.Positive(t, r.OK, r.Name)
	}
}

// TestRun_WrkClient runs the tool with --client wrk on a tiny data set:
// every scenario wrk drives answers without errors, each line has its
// ceilings (two for create) and the clients' CPU shares, and the JSON
// report carries them.
func TestRun_WrkClient(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	requireWrk(t)
	bin := serverBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"--server-bin", bin, "--client", "wrk", "--wrk-threads", "1", "--patients", "4", "--doctors", "2",
		"--records-per-patient", "2", "--comments", "1", "--duration", "1s", "--warmup", "0s", "--conns", "2",
		"--scenarios", "list,read,create", "--json", jsonPath}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())

	var rep Report
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rep))
	assert.Equal(t, ceilingSourceAPI, rep.CeilingSource)
	require.Len(t, rep.Results, 3)
	for i, want := range []string{"list", "read", "create"} {
		r := rep.Results[i]
		assert.Equal(t, want, r.Name)
		assert.Equal(t, clientWrk, r.Client)
		assert.Zero(t, r.Errors, "%s: %v", r.Name, r.ErrorCodes)
		assert.Positive(t, r.OK, r.Name)
		assert.Positive(t, r.CeilingRPS, r.Name)
		assert.Positive(t, r.ClientCPUShare, r.Name)
		assert.Positive(t, r.ServerCPUShare, r.Name)
	}
	assert.Equal(t, ceilSelect, rep.Results[0].Ceiling)
	assert.Equal(t, ceilRead, rep.Results[1].Ceiling)
	assert.Equal(t, ceilInsertNormal, rep.Results[2].Ceiling)
	require.Len(t, rep.Results[2].MoreCeilings, 1)
	assert.Equal(t, ceilInsertFull, rep.Results[2].MoreCeilings[0].Ceiling)
	names := map[string]bool{}
	for _, c := range rep.Ceilings {
		names[c.Name] = true
		assert.Zero(t, c.Errors, "ceiling %s: %v", c.Name, c.ErrorCodes)
		assert.Positive(t, c.OK, c.Name)
	}
	assert.Equal(t, map[string]bool{ceilSelect: true, ceilRead: true, ceilInsertNormal: true, ceilInsertFull: true}, names)
	assert.Equal(t, len(ceilingWarnings(rep.Results)), len(rep.Warnings), "the report carries the warnings")
	assert.Contains(t, stdout.String(), "client CPU")
}
