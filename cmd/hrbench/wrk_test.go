package main

import (
	"context"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireWrk skips a test that runs wrk when it is not installed, except
// in CI (CI=true), where .ci/run installs it and its absence is a failure.
func requireWrk(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("wrk"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("wrk is not installed, and CI must run this test (.ci/run installs it): %v", err)
		}
		t.Skipf("wrk is not installed (apt-get install wrk), so --client wrk cannot be tested here: %v", err)
	}
}

func TestLuaQuote(t *testing.T) {
	tests := map[string]string{
		"":                        `""`,
		"/api/records/":           `"/api/records/"`,
		`{"title":"a\"b"}`:        `"{\"title\":\"a\\\"b\"}"`,
		"line\nbreak\x00\x7f":     `"line\010break\000\127"`,
		"ünï":                     "\"ünï\"",
		`back\slash`:              `"back\\slash"`,
		"Bearer abc.def-ghi_jkl=": `"Bearer abc.def-ghi_jkl="`,
	}
	for in, want := range tests {
		assert.Equal(t, want, luaQuote(in), "%q", in)
	}
}

func TestWrkTable_FromGenerator(t *testing.T) {
	g := weighted([]int{50, 50}, []gen{
		func(rng *mrand.Rand) *http.Request {
			return request("GET", "http://127.0.0.1:9/api/records/?limit=5", "tok", nil)
		},
		func(rng *mrand.Rand) *http.Request {
			return request("POST", "http://127.0.0.1:9/api/records/", "tok2", []byte(`{"title":"x"}`))
		},
	})
	base, reqs, err := wrkTable(g, 100)
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:9", base)
	require.Len(t, reqs, 100)
	seen := map[wrkReq]bool{}
	for _, r := range reqs {
		seen[r] = true
	}
	assert.Equal(t, map[wrkReq]bool{
		{Method: "GET", Path: "/api/records/?limit=5", Auth: "Bearer tok"}:                  true,
		{Method: "POST", Path: "/api/records/", Auth: "Bearer tok2", Body: `{"title":"x"}`}: true,
	}, seen)

	two := func(rng *mrand.Rand) *http.Request {
		return request("GET", "http://127.0.0.1:"+[]string{"1", "2"}[rng.IntN(2)]+"/", "", nil)
	}
	_, _, err = wrkTable(two, 50)
	assert.ErrorContains(t, err, "two servers")

	script := wrkScript(reqs[:2])
	assert.Contains(t, script, `{"POST","/api/records/","Bearer tok2","{\"title\":\"x\"}"},`)
	assert.Contains(t, script, "function done(summary, latency, requests)")
}

func TestParseWrk(t *testing.T) {
	out := `Running 3s test @ http://127.0.0.1:1234/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.61ms    1.20ms  20.01ms   87.02%
  60000 requests in 3.00s, 300.00MB read
Requests/sec:  20000.00
HRBENCH duration_us 3000000
HRBENCH requests 60010
HRBENCH socket_errors 0 1 0 2
HRBENCH p50_us 1500
HRBENCH p95_us 3000
HRBENCH p99_us 5000
HRBENCH max_us 20010
HRBENCH status 200 59000
HRBENCH status 404 5
HRBENCH status 200 1000
`
	s, err := parseWrk(out)
	require.NoError(t, err)
	assert.Equal(t, 3*time.Second, s.Duration)
	assert.Equal(t, 60010, s.Requests)
	assert.Equal(t, 3, s.SocketErrors)
	assert.Equal(t, 5*time.Millisecond, s.P99)
	assert.Equal(t, map[int]int{200: 60000, 404: 5}, s.Status, "threads' counts add up")

	r := summarize("list", "list", "healthrecord", s.loadResult(32))
	assert.Equal(t, 60000, r.OK)
	assert.InDelta(t, 20000, r.RPS, 1e-6, "2xx answers per second")
	assert.Equal(t, 8, r.Errors, "other statuses and socket errors")
	assert.Equal(t, map[string]int{"404": 5, "transport": 3}, r.ErrorCodes)
	assert.InDelta(t, 1.5, r.P50ms, 1e-9)
	assert.InDelta(t, 20.01, r.MaxMs, 1e-9)

	_, err = parseWrk("Running 3s test\nRequests/sec: 1\n")
	assert.ErrorContains(t, err, "done() hook")
	_, err = parseWrk("HRBENCH requests many\n")
	assert.ErrorContains(t, err, "requests many")
	_, err = parseWrk("HRBENCH surprise 1\n")
	assert.ErrorContains(t, err, "unexpected line")
}

func TestWrkDuration(t *testing.T) {
	assert.Equal(t, "1s", wrkDuration(300*time.Millisecond))
	assert.Equal(t, "3s", wrkDuration(3*time.Second))
	assert.Equal(t, "4s", wrkDuration(3100*time.Millisecond))
}

// TestRunWrk_AgainstHTTPServer runs real wrk with a generated script
// against a real server: every request of the table arrives as drawn
// (method, path, token, body), and the summary counts statuses.
func TestRunWrk_AgainstHTTPServer(t *testing.T) {
	requireWrk(t)
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+r.Header.Get("Content-Type")+" "+string(body)]++
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	g := weighted([]int{45, 45, 10}, []gen{
		func(*mrand.Rand) *http.Request { return request("GET", srv.URL+"/api/records/", "t1", nil) },
		func(*mrand.Rand) *http.Request {
			return request("POST", srv.URL+"/api/records/", "t2", []byte(`{"title":"a \"quoted\" title\n"}`))
		},
		func(*mrand.Rand) *http.Request { return request("GET", srv.URL+"/missing/", "", nil) },
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lr, err := runWrk(ctx, t.TempDir(), g, 2, 1, time.Second)
	require.NoError(t, err)
	r := summarize("x", "x", "test", lr)

	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"GET /api/records/ Bearer t1  ",
		`POST /api/records/ Bearer t2 application/json {"title":"a \"quoted\" title\n"}`,
		"GET /missing/   ",
	}
	total := 0
	for _, k := range want {
		assert.Positive(t, got[k], "request %q never arrived; got %v", k, keysOf(got))
		total += got[k]
	}
	assert.Len(t, got, 3, "only the table's requests: %v", keysOf(got))
	assert.Positive(t, r.OK)
	// Requests still in flight when wrk stops reach the server uncounted
	// by wrk: at most one per connection.
	assert.InDelta(t, got[want[0]]+got[want[1]], r.OK, 2, "2xx answers as the server counted them")
	assert.InDelta(t, got[want[2]], r.ErrorCodes["404"], 2)
	assert.Equal(t, r.Errors, r.ErrorCodes["404"], "no other errors")
	assert.Positive(t, r.P99ms)
	assert.Positive(t, r.ClientCPUShare, "wrk's CPU time is measured")
}

func keysOf(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
