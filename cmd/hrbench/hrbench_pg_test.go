package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/internal/pgtest"
)

// TestRun_PostgreSQL runs the tool with --db on the test PostgreSQL (in CI
// an unreachable one fails the test; elsewhere it skips), on a tiny data
// set, with one serve process and with three (the Go client spreading its
// connections over them, and one wrk per instance): list and create
// answer without errors, each line has its PostgreSQL ceiling, the report
// names the store and the instances, and the run's database is dropped.
func TestRun_PostgreSQL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	admin := pgtest.New(t).URL // hrbench makes its own database on that server
	bin := serverBin(t)
	tests := []struct {
		name      string
		instances int
		client    string
	}{
		{"one process", 1, clientGo},
		{"three instances, Go client", 3, clientGo},
		{"three instances, one wrk each", 3, clientWrk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.client == clientWrk {
				requireWrk(t)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			jsonPath := filepath.Join(t.TempDir(), "bench.json")
			var stdout, stderr bytes.Buffer
			err := run(ctx, []string{"--server-bin", bin, "--db", admin, "--instances", strconv.Itoa(tt.instances),
				"--client", tt.client, "--wrk-threads", "1", "--patients", "4", "--doctors", "2", "--records-per-patient", "2",
				"--comments", "1", "--duration", "500ms", "--warmup", "100ms", "--conns", "3", "--scenarios", "list,create",
				"--json", jsonPath}, &stdout, &stderr)
			require.NoError(t, err, stderr.String())

			var rep Report
			b, err := os.ReadFile(jsonPath)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &rep))
			assert.Equal(t, storePostgres, rep.Store)
			assert.Equal(t, tt.instances, rep.Instances)
			assert.Equal(t, ceilingSourceAPI, rep.CeilingSource)
			require.Len(t, rep.Results, 2)
			for i, want := range []string{"list", "create"} {
				r := rep.Results[i]
				assert.Equal(t, want, r.Name)
				assert.Equal(t, tt.client, r.Client)
				assert.Zero(t, r.Errors, "%s: %v", r.Name, r.ErrorCodes)
				assert.Positive(t, r.OK, r.Name)
				assert.Positive(t, r.RPS, r.Name)
				assert.Positive(t, r.CeilingRPS, r.Name)
			}
			assert.Equal(t, ceilSelect, rep.Results[0].Ceiling)
			assert.Equal(t, ceilInsertPGOff, rep.Results[1].Ceiling)
			require.Len(t, rep.Results[1].MoreCeilings, 1)
			assert.Equal(t, ceilInsertPGOn, rep.Results[1].MoreCeilings[0].Ceiling)
			for _, c := range rep.Ceilings {
				assert.Zero(t, c.Errors, "ceiling %s: %v", c.Name, c.ErrorCodes)
				assert.Positive(t, c.OK, c.Name)
			}
			out := stdout.String()
			assert.Contains(t, out, "store postgres")
			if tt.instances == 1 {
				assert.Contains(t, out, "one serve process")
			} else {
				assert.Contains(t, out, "3 serve processes on the one database")
			}
			assert.Contains(t, out, "prepared pgx statement")

			require.NotEmpty(t, rep.Database)
			c, err := pgx.Connect(ctx, admin)
			require.NoError(t, err)
			defer c.Close(context.Background())
			var n int
			require.NoError(t, c.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, rep.Database).Scan(&n))
			assert.Zero(t, n, "the run's database %s is dropped", rep.Database)
		})
	}
}

// TestParseOptions_Postgres: --db and --instances are checked up front.
func TestParseOptions_Postgres(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"a file is not --db", []string{"--db", "/tmp/x.db"}, "must be a postgres:// URL"},
		{"instances need postgres", []string{"--instances", "3"}, "--instances needs --db"},
		{"no --url with --db", []string{"--db", "postgres://h/db", "--url", "http://x"}, "drop --url"},
		{"no scale run on postgres", []string{"--db", "postgres://h/db", "--records", "10"}, "drop --db"},
		{"a connection per instance", []string{"--db", "postgres://h/db", "--instances", "3", "--conns", "2"}, "--conns must be at least --instances"},
		{"zero instances", []string{"--instances", "0"}, "at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseOptions(tt.args, &bytes.Buffer{})
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
	o, err := parseOptions([]string{"--db", "postgresql://u@h/db", "--instances", "3"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, 3, o.Instances)
	b, err := json.Marshal(o)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "u@h", "the URL (which may hold a password) stays out of the JSON report")
}

// TestMergeWrk: concurrent wrk runs add up their counts and CPU, and each
// quantile is the largest.
func TestMergeWrk(t *testing.T) {
	ms := time.Millisecond
	got := mergeWrk([]loadResult{
		{Conns: 2, Elapsed: 5 * time.Second, Errors: 1, Codes: map[string]int{"500": 1}, ClientCPU: time.Second, ClientWall: 5 * time.Second,
			Quantiles: &quantiles{OK: 100, P50: 1 * ms, P95: 5 * ms, P99: 9 * ms, Max: 20 * ms}},
		{Conns: 1, Elapsed: 5100 * ms, Codes: map[string]int{}, ClientCPU: 2 * time.Second, ClientWall: 5200 * ms,
			Quantiles: &quantiles{OK: 50, P50: 2 * ms, P95: 4 * ms, P99: 12 * ms, Max: 15 * ms}},
	})
	assert.Equal(t, 3, got.Conns)
	assert.Equal(t, 1, got.Errors)
	assert.Equal(t, map[string]int{"500": 1}, got.Codes)
	assert.Equal(t, 5100*ms, got.Elapsed)
	assert.Equal(t, 3*time.Second, got.ClientCPU)
	assert.Equal(t, 5200*ms, got.ClientWall)
	assert.Equal(t, quantiles{OK: 150, P50: 2 * ms, P95: 5 * ms, P99: 12 * ms, Max: 20 * ms}, *got.Quantiles)
}

// TestDrive_SpreadsWorkersOverInstances: with one generator per
// instance, the Go client's workers go to every instance.
func TestDrive_SpreadsWorkersOverInstances(t *testing.T) {
	var hits [3]atomic.Int64
	gs := make([]gen, len(hits))
	for i := range hits {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits[i].Add(1) }))
		t.Cleanup(srv.Close)
		gs[i] = func(*rand.Rand) *http.Request { return request("GET", srv.URL+"/", "", nil) }
	}
	b := &bench{o: options{Client: clientGo}, client: newClient(8)}
	r, err := b.drive(context.Background(), 6, 200*time.Millisecond, gs, nil)
	require.NoError(t, err)
	assert.Zero(t, r.Errors)
	for i := range hits {
		assert.Positive(t, hits[i].Load(), "instance %d got requests", i)
	}
}
