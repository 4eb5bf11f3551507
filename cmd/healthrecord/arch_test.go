package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDependencyRule keeps the hexagon honest: domain imports only the
// standard library, ports only domain, app only domain and ports, and no
// adapter imports another (package code; tests may wire several); the
// in-memory store needs nothing but the ports.
func TestDependencyRule(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command("go", "list", "-json", "healthrecord/...").Output()
	require.NoError(t, err)
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		seen++
		for _, imp := range p.Imports {
			own := strings.HasPrefix(imp, "healthrecord/")
			third := !own && strings.Contains(strings.Split(imp, "/")[0], ".")
			switch {
			case p.ImportPath == "healthrecord/domain":
				assert.False(t, own || third, "domain imports %s", imp)
			case p.ImportPath == "healthrecord/ports":
				assert.False(t, third || (own && imp != "healthrecord/domain"), "ports imports %s", imp)
			case p.ImportPath == "healthrecord/app":
				assert.False(t, third || (own && imp != "healthrecord/domain" && imp != "healthrecord/ports"), "app imports %s", imp)
			case p.ImportPath == "healthrecord/adapters/memstore":
				// The in-memory store models the ports alone: no library,
				// no schema, no other adapter.
				assert.False(t, third || (own && imp != "healthrecord/domain" && imp != "healthrecord/ports" &&
					!strings.HasPrefix(imp, "healthrecord/internal/")), "memstore imports %s", imp)
			case strings.HasPrefix(p.ImportPath, "healthrecord/adapters/"):
				assert.False(t, strings.HasPrefix(imp, "healthrecord/adapters/") || strings.HasPrefix(imp, "healthrecord/cmd/"),
					"%s imports %s", p.ImportPath, imp)
			}
		}
	}
	assert.GreaterOrEqual(t, seen, 9, "all packages listed")
}
