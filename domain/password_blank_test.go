package domain

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPasswordProblems_InvisibleIsBlank(t *testing.T) {
	for _, pw := range []string{
		"          ", "\t\t\t\t\n\n\n\n", "\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0",
		"\u200b\u200c\u200d\u2060\ufeff\u200b\u200c\u200d", "\u3164\u3164\u3164\u3164\u3164\u3164\u3164\u3164",
		"\u2800\u2800\u2800\u2800\u2800\u2800\u2800\u2800", "\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301",
	} {
		assert.Equal(t, []string{MsgBlank}, PasswordProblems(pw, "alice", "alice@example.com"), "%q", pw)
	}
	// Spaces inside a visible password are fine.
	assert.Empty(t, PasswordProblems("  correct horse battery  ", "alice", "alice@example.com"))
}
