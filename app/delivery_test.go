package app

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestOneLine(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string
	}{
		"short":          {"smtp: 451 try later", "smtp: 451 try later"},
		"lines joined":   {"550 no\r\n550 such user", "550 no 550 such user"},
		"cut with marks": {strings.Repeat("é", 300), strings.Repeat("é", 248) + "…"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got := oneLine(tt.in, maxErrorLen)
			assert.Equal(t, tt.want, got)
			assert.LessOrEqual(t, len(got), maxErrorLen)
			assert.True(t, utf8.ValidString(got))
		})
	}
}
