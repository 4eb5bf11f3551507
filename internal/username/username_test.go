package username

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestKey(t *testing.T) {
	for _, name := range []string{"alice", "Alice", "ALICE", "ａｌｉｃｅ", "Ａｌｉｃｅ"} {
		assert.Equal(t, "alice", Key(name), name)
	}
	assert.Equal(t, Key("straße"), Key("STRASSE"))
	assert.NotEqual(t, Key("alice"), Key("alice2"))
}
