package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/internal/pgtest"
)

// TestCeiling_SameBytesAsHealthrecord seeds a real healthrecord through
// its API (with text that needs escaping, an unassigned record and
// records without comments), copies the rows into the ceiling as hrbench
// does, and asks both servers the same questions: the answers must be the
// same bytes, or the ceiling would bound a different answer. On SQLite
// and on PostgreSQL, each with its own ceiling.
func TestCeiling_SameBytesAsHealthrecord(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	bin := serverBin(t)
	t.Run(storeSQLite, func(t *testing.T) {
		tmp := t.TempDir()
		sameBytes(t, bin, filepath.Join(tmp, "hr.db"), "", func(ctx context.Context, key []byte) (*ceilingServer, error) {
			cdb := filepath.Join(tmp, "ceiling.db")
			if err := seedCeilingFrom(ctx, cdb, filepath.Join(tmp, "hr.db")); err != nil {
				return nil, err
			}
			return openCeiling(ctx, cdb, key)
		})
	})
	t.Run(storePostgres, func(t *testing.T) {
		url := pgtest.New(t).URL
		sameBytes(t, bin, url, filepath.Join(t.TempDir(), "keys"), func(ctx context.Context, key []byte) (*ceilingServer, error) {
			if err := seedCeilingPG(ctx, url); err != nil {
				return nil, err
			}
			return openCeilingPG(ctx, url, key)
		})
	})
}

// sameBytes is TestCeiling_SameBytesAsHealthrecord on the database db;
// open makes the ceiling on a copy of its rows.
func sameBytes(t *testing.T, bin, db, keyFile string, open func(ctx context.Context, key []byte) (*ceilingServer, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, err := startServer(ctx, bin, db, keyFile, filepath.Join(t.TempDir(), "serve.log"))
	require.NoError(t, err)
	defer func() { assert.NoError(t, srv.stop()) }()

	b := &bench{o: options{SeedWorkers: 4}, logf: t.Logf, client: newClient(8), base: srv.url}
	ds, err := seedAPI(ctx, b, sizes{Patients: 2, Doctors: 1, RecordsPerPatient: 3, Comments: 2})
	require.NoError(t, err)
	p, d := ds.Patients[0], ds.Doctors[0]
	odd := "quotes \" back\\slash <tag> & amp\ttab\nnewline \u2028 ünïcödé \x01"
	var made struct {
		ID int64 `json:"id"`
	}
	_, err = b.call(ctx, "POST", "/api/records/", p.Token, map[string]any{"title": "odd <title> & \"more\"", "content": odd, "doctor": d.ID}, &made)
	require.NoError(t, err)
	_, err = b.call(ctx, "POST", "/api/comments/", d.Token, map[string]any{"record": made.ID, "comment": odd}, nil)
	require.NoError(t, err)
	var unassigned struct {
		ID int64 `json:"id"`
	}
	_, err = b.call(ctx, "POST", "/api/records/", p.Token, map[string]any{"title": "no doctor", "content": "plain"}, &unassigned)
	require.NoError(t, err)

	key := make([]byte, 64)
	_, _ = rand.Read(key)
	cs, err := open(ctx, key)
	require.NoError(t, err)
	defer cs.Close()
	ceil := httptest.NewServer(cs.handler())
	defer ceil.Close()
	ctok := signHS256(key, p.ID, time.Now(), time.Hour)

	get := func(base, path, token string) (int, string) {
		t.Helper()
		resp, err := b.client.Do(request("GET", base+path, token, nil).WithContext(ctx))
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	paths := []string{"/api/records/", "/api/records/" + strconv.FormatInt(made.ID, 10) + "/",
		"/api/records/" + strconv.FormatInt(unassigned.ID, 10) + "/", "/api/records/" + strconv.FormatInt(ds.RecOf[0][0], 10) + "/"}
	for _, path := range paths {
		hs, hb := get(srv.url, path, p.Token)
		cst, cb := get(ceil.URL, path, ctok)
		require.Equal(t, http.StatusOK, hs, hb)
		assert.Equal(t, hs, cst, path)
		assert.Equal(t, hb, cb, "%s: the ceiling's body differs from healthrecord's", path)
	}
	_, list := get(srv.url, "/api/records/", p.Token)
	assert.Contains(t, list, `"doctor":null`, "the data set holds an unassigned record")
	assert.Contains(t, list, `\u003ctag\u003e`, "the data set holds text that needs escaping")

	// Another patient's record is not found on either.
	other := "/api/records/" + strconv.FormatInt(ds.RecOf[1][0], 10) + "/"
	hs, _ := get(srv.url, other, p.Token)
	cst, _ := get(ceil.URL, other, ctok)
	assert.Equal(t, http.StatusNotFound, hs)
	assert.Equal(t, http.StatusNotFound, cst)

	// A create answers the same object shape (ids and times differ).
	body := map[string]any{"title": "t", "content": "c", "doctor": d.ID}
	var hrObj, ceilObj map[string]any
	_, err = b.call(ctx, "POST", "/api/records/", p.Token, body, &hrObj)
	require.NoError(t, err)
	for _, prefix := range []string{"", pathNormalPrefix} {
		raw, _ := json.Marshal(body)
		resp, err := b.client.Do(request("POST", ceil.URL+prefix+pathRecords, ctok, raw).WithContext(ctx))
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&ceilObj))
		resp.Body.Close()
		assert.Equal(t, keys(hrObj), keys(ceilObj))
		assert.Equal(t, hrObj["comments"], ceilObj["comments"])
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestAppendJSONString_AsEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `"\`, "<>&", "\b\f\n\r\t\x00\x1f\x7f", "\u2028\u2029", "ünï 日本", "bad \xff\xfe utf8", "\xe2\x82"} {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(appendJSONString(nil, s)), "%q", s)
	}
}

func TestHS256_Verify(t *testing.T) {
	key := []byte(strings.Repeat("k", 64))
	v := newHS256(key)
	now := time.Unix(1_800_000_000, 0)
	good := signHS256(key, 42, now, time.Hour)
	var scratch [1024]byte

	id, ok := v.verify(good, now.Unix(), &scratch)
	assert.True(t, ok)
	assert.Equal(t, int64(42), id)

	seg := strings.Split(good, ".")
	refreshClaims := base64.RawURLEncoding.EncodeToString([]byte(`{"exp":1800003600,"token_type":"refresh","user_id":42}`))
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	bad := map[string]string{
		"other key":        signHS256([]byte(strings.Repeat("x", 64)), 42, now, time.Hour),
		"expired":          good,
		"payload swapped":  seg[0] + "." + refreshClaims + "." + seg[2],
		"alg none":         noneHeader + "." + seg[1] + ".",
		"signature cut":    good[:len(good)-2],
		"no dots":          strings.ReplaceAll(good, ".", ""),
		"empty":            "",
		"huge":             strings.Repeat("a", 5000),
		"refresh (signed)": signRefreshForTest(key, now),
	}
	for name, tok := range bad {
		at := now.Unix()
		if name == "expired" {
			at = now.Add(2 * time.Hour).Unix()
		}
		_, ok := v.verify(tok, at, &scratch)
		assert.False(t, ok, name)
	}

	allocs := testing.AllocsPerRun(100, func() { _, _ = v.verify(good, now.Unix(), &scratch) })
	assert.Zero(t, allocs, "a verification allocates nothing")
}

// signRefreshForTest is a correctly signed token of the wrong type.
func signRefreshForTest(key []byte, now time.Time) string {
	tok := signHS256(key, 42, now, time.Hour)
	seg := strings.Split(tok, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(seg[1])
	claims = []byte(strings.Replace(string(claims), `"access"`, `"refresh"`, 1))
	input := seg[0] + "." + base64.RawURLEncoding.EncodeToString(claims)
	m := hmac.New(sha256.New, key)
	_, _ = m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestCeilingWarnings(t *testing.T) {
	rs := []Result{
		{Name: "list", RPS: 120, Ceiling: ceilSelect, CeilingRPS: 100, Ratio: 1.2},
		{Name: "read", RPS: 90, Ceiling: ceilRead, CeilingRPS: 100, Ratio: 0.9},
		{Name: "create", RPS: 50, Ceiling: ceilInsertNormal, CeilingRPS: 100, Ratio: 0.5,
			MoreCeilings: []CeilingRatio{{Ceiling: ceilInsertFull, CeilingRPS: 25, Ratio: 2}}},
		{Name: "signin-storm", RPS: 10},
	}
	w := ceilingWarnings(rs)
	require.Len(t, w, 2, "%q", w)
	assert.Contains(t, w[0], `list (120 req/s) beats the "select" ceiling`)
	assert.Contains(t, w[1], `create (50 req/s) beats the "insert FULL" ceiling`)
	assert.Empty(t, ceilingWarnings(rs[1:2]), "below its ceiling: no warning")

	rep := &Report{Warnings: w, Results: rs}
	var out strings.Builder
	writeTable(&out, rep)
	assert.Contains(t, out.String(), "WARNING: list (120 req/s) beats")
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"warnings":["list (120 req/s) beats`)
}

func TestParseProcStatCPU(t *testing.T) {
	// Fields 14 and 15 (utime, stime) are 250 and 50 ticks; the name holds
	// a space and a parenthesis.
	stat := "1234 (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 100 1000000 200 18446744073709551615"
	assert.Equal(t, 3*time.Second, parseProcStatCPU(stat))
	assert.Zero(t, parseProcStatCPU("garbage"))
	assert.InDelta(t, 0.25, cpuShare(time.Second, 2*time.Second, 2), 1e-9)
	assert.Zero(t, cpuShare(time.Second, 0, 2))
}

// BenchmarkCeiling is the ceiling's list and read handlers in process
// (no network) on generated rows: what one request costs the ceiling.
func BenchmarkCeiling(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "c.db")
	if err := seedCeilingGenerated(ctx, path, 100, 10, 2); err != nil {
		b.Fatal(err)
	}
	key := []byte(strings.Repeat("k", 64))
	s, err := openCeiling(ctx, path, key)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := s.handler()
	tok := signHS256(key, 7, time.Now(), time.Hour)
	for _, bc := range []struct{ name, path string }{{"list", pathRecords}, {"read", pathRecords + "65/"}} {
		b.Run(bc.name, func(b *testing.B) {
			req := request("GET", "http://ceiling"+bc.path, tok, nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code, w.Body.String())
				}
			}
		})
	}
}
