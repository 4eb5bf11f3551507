package httpapi_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/httpapi"
	"healthrecord/app"
)

func trusting(prefixes ...string) envOption {
	return func(h *httpapi.Config, _ *app.Config) {
		for _, p := range prefixes {
			h.TrustedProxies = append(h.TrustedProxies, netip.MustParsePrefix(p))
		}
	}
}

func publicURL(raw string) envOption {
	return func(h *httpapi.Config, _ *app.Config) {
		u, err := url.Parse(raw)
		if err != nil {
			panic(err)
		}
		h.PublicURL = u
	}
}

// failSignIns fails n sign-ins, each with a new username, carrying xff.
func failSignIns(t *testing.T, e *env, n int, xff string) {
	t.Helper()
	for i := range n {
		r := e.send(t, "POST", "/api/token/", "", map[string]string{"username": e.name("nobody"), "password": "wrong-guess"},
			"X-Forwarded-For", xff)
		require.Equal(t, http.StatusUnauthorized, r.Status, "attempt %d: %s", i, r)
	}
}

func TestProxies_ForwardedForIgnoredFromUntrustedPeer(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // no trusted proxy: the test client is the client
	for i := range 100 {
		failSignIns(t, e, 1, fmt.Sprintf("203.0.113.%d", i))
	}
	r := e.send(t, "POST", "/api/token/", "", map[string]string{"username": "someone", "password": "wrong-guess"},
		"X-Forwarded-For", "198.51.100.200")
	assert.Equal(t, http.StatusTooManyRequests, r.Status, "a made-up X-Forwarded-For does not escape the address throttle")
}

func TestProxies_TrustedProxyNamesTheClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, trusting("127.0.0.0/8", "10.0.0.0/8"))
	// The right-most address the proxies did not add is the client; what
	// the client itself wrote to the left is not believed.
	failSignIns(t, e, 100, "1.2.3.4, 198.51.100.7, 10.1.1.1")
	r := e.send(t, "POST", "/api/token/", "", map[string]string{"username": "someone", "password": "wrong-guess"},
		"X-Forwarded-For", "9.9.9.9, 198.51.100.7")
	assert.Equal(t, http.StatusTooManyRequests, r.Status, r.String())
	r = e.send(t, "POST", "/api/token/", "", map[string]string{"username": "someone", "password": "wrong-guess"},
		"X-Forwarded-For", "198.51.100.8")
	assert.Equal(t, http.StatusUnauthorized, r.Status, "another client behind the same proxy is not throttled")
	assert.Contains(t, e.logs.String(), `"remote":"198.51.100.8"`, "logs name the client, not the proxy")
}

// twoRecords makes a patient with two records, so a page of one has a
// next page.
func twoRecords(t *testing.T, e *env) user {
	p := e.mustPatient(t)
	e.mustRecord(t, p, 0)
	e.mustRecord(t, p, 0)
	return p
}

func TestProxies_LinkUsesPublicURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, publicURL("https://records.clinic.example"))
	p := twoRecords(t, e)
	r := e.send(t, "GET", "/api/records/?limit=1", p.Token, nil, "Host", "evil.example", "X-Forwarded-Host", "evil.example")
	require.Equal(t, http.StatusOK, r.Status)
	assert.True(t, strings.HasPrefix(r.Header.Get("Link"), "<https://records.clinic.example/api/records/?"), r.Header.Get("Link"))
}

func TestProxies_LinkUsesForwardedSchemeAndHostFromTrustedProxy(t *testing.T) {
	t.Parallel()
	trusted := newEnv(t, trusting("127.0.0.1/32"))
	p := twoRecords(t, trusted)
	r := trusted.send(t, "GET", "/api/records/?limit=1", p.Token, nil, "X-Forwarded-Proto", "https", "X-Forwarded-Host", "records.clinic.example")
	assert.True(t, strings.HasPrefix(r.Header.Get("Link"), "<https://records.clinic.example/api/records/?"), r.Header.Get("Link"))

	untrusted := newEnv(t)
	p = twoRecords(t, untrusted)
	r = untrusted.send(t, "GET", "/api/records/?limit=1", p.Token, nil, "X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.example")
	host := strings.TrimPrefix(untrusted.srv.URL, "http://")
	assert.True(t, strings.HasPrefix(r.Header.Get("Link"), "<http://"+host+"/api/records/?"), r.Header.Get("Link"))
}

func TestProxies_AuditNamesTheClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, trusting("127.0.0.1/32"))
	p := e.mustPatient(t)
	r := e.send(t, "POST", "/api/records/", p.Token, map[string]any{"title": "t", "content": "c"},
		"X-Forwarded-For", "198.51.100.23")
	require.Equal(t, http.StatusCreated, r.Status)
	var rec record
	r.JSON(t, &rec)
	r = e.send(t, "GET", "/api/records/"+itoa(rec.ID)+"/access-log/", p.Token, nil)
	require.Equal(t, http.StatusOK, r.Status)
	assert.Contains(t, string(r.Body), `"remote_addr":"198.51.100.23"`)
}
