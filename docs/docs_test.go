// Package docs holds the documentation; its tests keep the documentation
// true: the routes docs/api.md names are the OpenAPI document's, the README
// needs nothing outside the repository, and the documented restore works.
package docs

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// htmlComment is left out of the checks: text there is not shown.
var htmlComment = regexp.MustCompile(`(?s)<!--.*?-->`)

// operationRE finds "METHOD /path" wherever api.md names an endpoint.
var operationRE = regexp.MustCompile(`\b(GET|POST|PUT|PATCH|DELETE) (/[A-Za-z0-9_{}./-]*)`)

func TestAPIDoc_NamesExactlyTheOpenAPIOperations(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal([]byte(read(t, "../adapters/httpapi/openapi.json")), &doc))
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}

	text := htmlComment.ReplaceAllString(read(t, "api.md"), "")
	named := map[string]bool{}
	for _, m := range operationRE.FindAllStringSubmatch(text, -1) {
		named[m[1]+" "+m[2]] = true
	}
	var unknown, missing []string
	for op := range named {
		if !documented[op] {
			unknown = append(unknown, op)
		}
	}
	for op := range documented {
		if !named[op] {
			missing = append(missing, op)
		}
	}
	sort.Strings(unknown)
	sort.Strings(missing)
	assert.Empty(t, unknown, "docs/api.md names operations the OpenAPI document does not have")
	assert.Empty(t, missing, "OpenAPI operations docs/api.md does not mention")
}

func TestREADME_StandsAlone(t *testing.T) {
	readme := read(t, "../README.md")
	assert.False(t, strings.Contains(readme, "../shared"), "the README points outside the repository")
	assert.False(t, regexp.MustCompile(`\]\(\.\./`).MatchString(readme), "a link outside the repository")
	first := strings.Join(strings.SplitN(readme, "\n", 12)[:11], "\n")
	assert.True(t, strings.Contains(first, "pure Go") && strings.Contains(first, "minute"),
		"the first lines say the first build compiles SQLite in pure Go and takes a minute or two:\n%s", first)
	for _, f := range []string{"docs/api.md", "docs/operations.md"} {
		assert.True(t, strings.Contains(readme, "("+f+")"), "the README links %s", f)
	}
}
