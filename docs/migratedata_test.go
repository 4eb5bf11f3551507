package docs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/internal/pgtest"
)

// TestMigrateData_AsDocumented runs operations.md's migrate-data block,
// its paths moved under a temporary directory, from a real SQLite
// database to a real PostgreSQL one, and finds the data there.
func TestMigrateData_AsDocumented(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run the documented steps")
	}
	pg := pgtest.New(t).Schema(t)
	doc := read(t, "operations.md")
	_, after, ok := strings.Cut(doc, "<!-- migrate-data-script")
	require.True(t, ok, "operations.md marks its migrate-data block")
	_, after, ok = strings.Cut(after, "```sh\n")
	require.True(t, ok)
	script, _, ok := strings.Cut(after, "```")
	require.True(t, ok)

	dir := t.TempDir()
	bin := buildBinary(t, dir)
	state := filepath.Join(dir, "var", "lib", "healthrecord")
	require.NoError(t, os.MkdirAll(state, 0o700))
	db := filepath.Join(state, "healthrecord.db")
	url, stop := serve(t, bin, db)
	register(t, url, "moved")
	stop()

	cmd := exec.Command("sh", "-eu", "-c", strings.ReplaceAll(script, "/var/lib/healthrecord", state))
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "HEALTHRECORD_DB="+pg)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "Audit trail intact on PostgreSQL")

	list := exec.Command(bin, "users", "list", "--json", "--db", pg, "--key-file", db+".keys")
	names, err := list.Output()
	require.NoError(t, err)
	assert.Contains(t, string(names), `"moved"`)
}
