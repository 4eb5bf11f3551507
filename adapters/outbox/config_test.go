package outbox

import (
	"testing"
	"time"

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
	assert.Equal(t, time.Second, c.PollInterval)
	assert.Equal(t, 30*time.Second, c.AttemptTimeout)
	assert.Equal(t, 4, c.EmailConcurrency)

	var other Config
	other.setDefaults()
	assert.NotEqual(t, c.Owner, other.Owner, "two dispatchers in one process get different owners")
}

func TestConfig_Validate(t *testing.T) {
	tests := map[string]func(c *Config){
		"batch size":             func(c *Config) { c.BatchSize = -1 },
		"lease not over attempt": func(c *Config) { c.Lease = c.AttemptTimeout },
		"poll interval":          func(c *Config) { c.PollInterval = -time.Second },
		"email concurrency":      func(c *Config) { c.EmailConcurrency = -3 },
		"shutdown grace":         func(c *Config) { c.ShutdownGrace = -time.Second },
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
