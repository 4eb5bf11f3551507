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
	assert.Len(t, routed, 40)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPI_ClientReady holds the document to what client generators
// and readers need: a unique operationId and a described tag on every
// operation, required request bodies, and an example of every body.
func TestOpenAPI_ClientReady(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(openAPIDoc, &doc))
	info := doc["info"].(map[string]any)
	for _, words := range []string{"/api/token/refresh/", "/api/token/blacklist/", "Authorization: Bearer"} {
		assert.Contains(t, info["description"], words, "info.description explains the sign-in flow")
	}
	tags := map[string]bool{}
	for _, tg := range doc["tags"].([]any) {
		tag := tg.(map[string]any)
		assert.NotEmpty(t, tag["description"], tag["name"])
		tags[tag["name"].(string)] = true
	}
	components := doc["components"].(map[string]any)
	resolve := func(v map[string]any) map[string]any {
		if ref, ok := v["$ref"].(string); ok {
			parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
			return components[parts[0]].(map[string]any)[parts[1]].(map[string]any)
		}
		return v
	}
	hasExample := func(media map[string]any) bool {
		if media["example"] != nil || media["examples"] != nil {
			return true
		}
		schema := resolve(media["schema"].(map[string]any))
		return schema["example"] != nil
	}

	schemas := components["schemas"].(map[string]any)
	for _, name := range []string{"Record", "RecordInput", "RecordPatch"} {
		doctor := schemas[name].(map[string]any)["properties"].(map[string]any)["doctor"].(map[string]any)
		assert.Equal(t, []any{"integer", "null"}, doctor["type"], "%s.doctor may be null", name)
	}

	ids := map[string]string{}
	for path, item := range doc["paths"].(map[string]any) {
		for method, raw := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			op := raw.(map[string]any)
			where := method + " " + path
			id, _ := op["operationId"].(string)
			require.NotEmpty(t, id, where)
			assert.Empty(t, ids[id], "operationId %s of %s is also %s's", id, where, ids[id])
			ids[id] = where
			for _, tg := range op["tags"].([]any) {
				assert.True(t, tags[tg.(string)], "%s: tag %s is declared", where, tg)
			}
			if rb, ok := op["requestBody"].(map[string]any); ok {
				assert.Equal(t, true, rb["required"], "%s: body required", where)
				for mt, media := range rb["content"].(map[string]any) {
					assert.True(t, hasExample(media.(map[string]any)), "%s: request %s has an example", where, mt)
				}
			}
			for status, r := range op["responses"].(map[string]any) {
				resp := resolve(r.(map[string]any))
				content, _ := resp["content"].(map[string]any)
				for mt, media := range content {
					assert.True(t, hasExample(media.(map[string]any)), "%s %s: %s has an example", where, status, mt)
				}
			}
		}
	}
}
