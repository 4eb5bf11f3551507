package httpapi

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenAPI_MatchesRoutes walks the router: every route must be in the
// document and every documented operation must be routed.
func TestOpenAPI_MatchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI  string                                `json:"openapi"`
		Security []map[string][]string                 `json:"security"`
		Paths    map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(openAPIDoc, &doc))
	assert.Equal(t, "3.1.0", doc.OpenAPI)
	assert.Equal(t, []map[string][]string{{"bearerAuth": {}}}, doc.Security)

	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
			var op struct {
				Responses map[string]json.RawMessage `json:"responses"`
				Security  *[]any                     `json:"security"`
			}
			require.NoError(t, json.Unmarshal(raw, &op), path)
			assert.NotEmpty(t, op.Responses, "%s %s has no responses", method, path)
			public := op.Security != nil && len(*op.Security) == 0
			if !public {
				assert.Contains(t, op.Responses, "401", "%s %s needs a token, so documents 401", method, path)
			}
		}
	}

	s := newServer(nil, Config{}, nil)
	routed := map[string]bool{}
	require.NoError(t, chi.Walk(s.mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if strings.HasSuffix(route, "/*") {
			return nil // the files of a page (scripts, styles), not operations
		}
		routed[method+" "+route] = true
		return nil
	}))
	assert.Equal(t, sortedKeys(routed), sortedKeys(documented))
	assert.Len(t, routed, 39)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
