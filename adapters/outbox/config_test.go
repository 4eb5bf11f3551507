package outbox

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfig_setDefaults(t *testing.T) {
	var c Config
	c.setDefaults()
	require.NoError(t, c.Validate())
	assert.NotEmpty(t, c.Owner)
	assert.Equal(t, 100, c.BatchSize)
	assert.Equal(t, time.Minute, c.Lease)
	assert.Equal(t, 2*time.Second, c.PollInterval)
	assert.Equal(t, 30*time.Second, c.AttemptTimeout)
	assert.Equal(t, 2*time.Second, c.BaseBackoff)
	assert.Equal(t, 15*time.Minute, c.MaxBackoff)
	assert.Equal(t, 8, c.MaxAttempts)
	r := c.Rand()
	assert.True(t, r >= 0 && r < 1)

	var other Config
	other.setDefaults()
	assert.NotEqual(t, c.Owner, other.Owner, "two dispatchers in one process get different owners")
}

func TestConfig_Validate(t *testing.T) {
	tests := map[string]func(c *Config){
		"batch size":             func(c *Config) { c.BatchSize = -1 },
		"lease not over attempt": func(c *Config) { c.Lease = c.AttemptTimeout },
		"poll interval":          func(c *Config) { c.PollInterval = -time.Second },
		"max below base":         func(c *Config) { c.MaxBackoff = c.BaseBackoff / 2 },
		"max attempts":           func(c *Config) { c.MaxAttempts = -3 },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			var c Config
			c.setDefaults()
			mutate(&c)
			assert.Error(t, c.Validate())
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string
	}{
		"short":          {"smtp: 451 try later", "smtp: 451 try later"},
		"lines joined":   {"email: 550 no\r\n550 such user", "email: 550 no 550 such user"},
		"cut with marks": {strings.Repeat("é", 300), strings.Repeat("é", 248) + "…"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got := truncate(tt.in, maxErrorLen)
			assert.Equal(t, tt.want, got)
			assert.LessOrEqual(t, len(got), maxErrorLen)
			assert.True(t, utf8.ValidString(got))
		})
	}
}
