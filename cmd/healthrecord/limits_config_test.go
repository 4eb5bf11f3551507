package main

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/httpapi"
)

func TestConfig_LimitsAndProxies(t *testing.T) {
	var c config
	fs := newFlagSet("serve", mapEnv(nil), &bytes.Buffer{})
	fs.serveFlags(&c)
	require.NoError(t, fs.parse(nil))
	assert.Equal(t, httpapi.Rate{N: 20, Per: time.Hour}, c.RateRegister, "the contract's defaults")
	assert.Equal(t, httpapi.Rate{N: 1200, Per: time.Minute}, c.RateUser)
	assert.Equal(t, httpapi.Rate{N: 300, Per: time.Minute}, c.RateAnon)
	assert.Equal(t, int64(104857600), c.QuotaBytes)
	assert.Empty(t, c.TrustedProxies)
	assert.Nil(t, c.PublicURL)

	c = config{}
	fs = newFlagSet("serve", mapEnv(map[string]string{
		"HEALTHRECORD_RATE_USER": "0", "HEALTHRECORD_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1",
		"HEALTHRECORD_PUBLIC_URL": "https://records.clinic.example", "HEALTHRECORD_QUOTA_BYTES": "0",
	}), &bytes.Buffer{})
	fs.serveFlags(&c)
	require.NoError(t, fs.parse([]string{"--rate-anon", "5/s"}))
	assert.True(t, c.RateUser.Off())
	assert.Equal(t, httpapi.Rate{N: 5, Per: time.Second}, c.RateAnon, "flags win")
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}, c.TrustedProxies)
	assert.Equal(t, "records.clinic.example", c.PublicURL.Host)
	assert.Zero(t, c.QuotaBytes)

	for env, value := range map[string]string{
		"HEALTHRECORD_RATE_REGISTER":   "lots",
		"HEALTHRECORD_RATE_USER":       "-5/min",
		"HEALTHRECORD_RATE_ANON":       "10/fortnight",
		"HEALTHRECORD_QUOTA_BYTES":     "-1",
		"HEALTHRECORD_TRUSTED_PROXIES": "10.0.0.0/33",
		"HEALTHRECORD_PUBLIC_URL":      "records.clinic.example",
	} {
		fs := newFlagSet("serve", mapEnv(map[string]string{env: value}), &bytes.Buffer{})
		fs.serveFlags(&config{})
		err := fs.parse(nil)
		require.Error(t, err, env)
		assert.Contains(t, err.Error(), env, "the error names the variable")
	}
}
