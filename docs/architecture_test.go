package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// backticked is every `code span` of a Markdown text.
var backticked = regexp.MustCompile("`([^`\n]+)`")

// qualifiedRE is a Go name qualified by its package and, for a method, its
// type: domain.CanChange, app.App.UpdateRecord.
var qualifiedRE = regexp.MustCompile(`^(domain|ports|app)((?:\.[A-Z]\w*)+)$`)

// TestArchitecture_NamesWhatExists keeps ARCHITECTURE.md true to the tree:
// every path it names exists, and every Go name it names is declared
// (qualified ones in their package, plain ones anywhere).
func TestArchitecture_NamesWhatExists(t *testing.T) {
	text := read(t, "../ARCHITECTURE.md")
	goSrc := goSources(t, "..")
	var b strings.Builder
	for _, src := range goSrc {
		b.WriteString(src)
	}
	all := b.String()
	paths, names := 0, 0
	for _, m := range backticked.FindAllStringSubmatch(text, -1) {
		span := m[1]
		switch {
		case strings.ContainsAny(span, " {"), strings.HasPrefix(span, "/"), strings.Contains(span, "://"):
			// a route, a URL or a phrase
		case strings.Contains(span, "/") || filepath.Ext(span) == ".md":
			paths++
			_, err := os.Stat(filepath.Join("..", strings.TrimSuffix(span, "/*")))
			assert.NoError(t, err, "ARCHITECTURE.md names %s", span)
		case qualifiedRE.MatchString(span):
			names++
			parts := strings.Split(span, ".")
			assert.True(t, declRE(parts[len(parts)-1]).MatchString(goSrc[filepath.Join("..", parts[0])]),
				"ARCHITECTURE.md names %s, which %s does not declare", span, parts[0])
		case isDir(filepath.Join("..", span)):
			paths++ // a package named by its directory: domain, ports
		case plainRE.MatchString(span):
			names++
			assert.True(t, declRE(span).MatchString(all), "ARCHITECTURE.md names %s, which nothing declares", span)
		}
	}
	assert.Greater(t, paths, 20, "paths checked")
	assert.Greater(t, names, 10, "names checked")
}

// plainRE is an unqualified Go name the document uses: a function such as
// writeJSON, or a test such as TestDependencyRule (header names like Link
// are left alone).
var plainRE = regexp.MustCompile(`^([a-z]\w*|Test\w+)$`)

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// declRE finds the declaration of name: a function, a method or a type.
func declRE(name string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^(func (\([^)]*\) )?` + name + `[\[(]|type ` + name + ` )`)
}

// goSources maps each package directory under root to its Go text, tests
// included (the document names test functions too).
func goSources(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out[filepath.Dir(path)] += string(b) + "\n"
		}
		return nil
	})
	require.NoError(t, err)
	return out
}
