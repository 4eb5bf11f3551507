package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two `serve` processes on one PostgreSQL database count the sign-in
// throttle and the per-user rate together: `serve` wires the database's
// counters, not each process's memory.
func TestPostgres_ServeInstancesShareThrottles(t *testing.T) {
	env := pgEnv(t)
	env["HEALTHRECORD_RATE_USER"] = "6/min"
	in := [2]*server{startServe(t, env), startServe(t, env)}
	_, token := in[0].mustUser("spread", "PATIENT")

	for i := range 6 {
		code, _ := in[i%2].call("GET", "/api/records/", token, nil, nil)
		require.Equal(t, http.StatusOK, code, "request %d on instance %d", i, i%2)
	}
	for i, s := range in {
		code, h := s.call("GET", "/api/records/", token, nil, nil)
		assert.Equal(t, http.StatusTooManyRequests, code, "instance %d", i)
		assert.NotEmpty(t, h.Get("Retry-After"), "instance %d", i)
	}

	requireGuessesCountedTogether(t, in[:], "spread")
}

// requireGuessesCountedTogether makes ten wrong sign-ins as username spread
// over the instances, then checks that the eleventh is refused (429 with
// Retry-After) on every one of them.
func requireGuessesCountedTogether(t *testing.T, in []*server, username string) {
	t.Helper()
	wrong := map[string]string{"username": username, "password": "wrong-guess"}
	for i := range 10 {
		code, _ := in[i%len(in)].call("POST", "/api/token/", "", wrong, nil)
		require.Equal(t, http.StatusUnauthorized, code, "attempt %d on instance %d", i, i%len(in))
	}
	for i, s := range in {
		code, h := s.call("POST", "/api/token/", "", wrong, nil)
		assert.Equal(t, http.StatusTooManyRequests, code, "the eleventh on instance %d", i)
		assert.NotEmpty(t, h.Get("Retry-After"), "instance %d", i)
	}
}
