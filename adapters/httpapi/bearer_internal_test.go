package httpapi

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// parseBearer's shortcut must read every header as strings.Fields did.
func TestParseBearer_AsFields(t *testing.T) {
	fields := func(h string) (string, bool) {
		parts := strings.Fields(h)
		if len(parts) == 0 || parts[0] != "Bearer" {
			return "", false
		}
		if len(parts) != 2 {
			return "", true
		}
		return parts[1], true
	}
	for _, h := range []string{
		"", "Bearer", "Bearer ", "Bearer  ", "Bearer a.b.c", "Bearer  a.b.c", "Bearer a.b.c ", " Bearer a.b.c",
		"Bearer a b", "bearer a.b.c", "Basic abc", "Bearer\ta.b.c", "Bearer a\tb", "Bearer a\u00a0b", "Bearer a\u2003",
		"Bearer é", "Bearer \x7f", "Bearer a\x00b", "BearerX a", "Token a.b.c",
	} {
		wantTok, wantOK := fields(h)
		tok, ok := parseBearer(h)
		assert.Equal(t, wantOK, ok, "%q", h)
		assert.Equal(t, wantTok, tok, "%q", h)
	}
}
