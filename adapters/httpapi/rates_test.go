package httpapi_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/httpapi"
	"healthrecord/app"
	"healthrecord/domain"
)

func rates(register, user, anon httpapi.Rate) envOption {
	return func(h *httpapi.Config, _ *app.Config) {
		h.RateRegister, h.RateUser, h.RateAnon = register, user, anon
	}
}

// assertThrottled checks DRF's answer to a request over a rate.
func assertThrottled(t *testing.T, r resp) {
	t.Helper()
	require.Equal(t, http.StatusTooManyRequests, r.Status, r.String())
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	require.NoError(t, err)
	assert.Positive(t, secs)
	assertDetail(t, r, http.StatusTooManyRequests, "Request was throttled. Expected available in "+r.Header.Get("Retry-After")+" seconds.")
}

func TestRates_RegisterPerAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rates(httpapi.Rate{N: 3, Per: time.Hour}, httpapi.Rate{}, httpapi.Rate{}))
	for range 3 {
		e.mustUser(t, "reg", domain.RolePatient)
	}
	r := e.send(t, "POST", "/api/users/register/", "", map[string]string{
		"username": e.name("reg"), "email": "r@example.com", "password": testPassword, "role": "PATIENT"})
	assertThrottled(t, r)
	secs, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	assert.Greater(t, secs, 1000, "an hour's rate of 3 frees a slot in about 20 minutes")
}

func TestRates_PerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rates(httpapi.Rate{}, httpapi.Rate{N: 5, Per: time.Minute}, httpapi.Rate{}))
	p, q := e.mustPatient(t), e.mustPatient(t)
	for range 5 {
		require.Equal(t, http.StatusOK, e.send(t, "GET", "/api/records/", p.Token, nil).Status)
	}
	assertThrottled(t, e.send(t, "GET", "/api/records/", p.Token, nil))
	assert.Equal(t, http.StatusOK, e.send(t, "GET", "/api/records/", q.Token, nil).Status, "another user is not affected")
}

func TestRates_Anonymous(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rates(httpapi.Rate{}, httpapi.Rate{}, httpapi.Rate{N: 4, Per: time.Minute}))
	for range 4 {
		require.Equal(t, http.StatusOK, e.send(t, "GET", "/api/openapi.json", "", nil).Status)
	}
	assertThrottled(t, e.send(t, "GET", "/api/openapi.json", "", nil))
	assert.Equal(t, http.StatusOK, e.send(t, "GET", "/healthz", "", nil).Status, "probes are not throttled")
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]httpapi.Rate{
		"20/h": {N: 20, Per: time.Hour}, "1200/min": {N: 1200, Per: time.Minute}, "300/m": {N: 300, Per: time.Minute},
		"5/s": {N: 5, Per: time.Second}, "10/sec": {N: 10, Per: time.Second}, "100/day": {N: 100, Per: 24 * time.Hour},
		"0": {}, "7/hour": {N: 7, Per: time.Hour},
	} {
		got, err := httpapi.ParseRate(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "x", "-1/h", "10/fortnight", "0/h", "1.5/h", "/h", "10"} {
		_, err := httpapi.ParseRate(bad)
		assert.Error(t, err, bad)
	}
}
