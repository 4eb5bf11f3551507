package docs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// restoreScript is the shell block operations.md marks as the restore.
func restoreScript(t *testing.T) string {
	t.Helper()
	doc := read(t, "operations.md")
	_, after, ok := strings.Cut(doc, "<!-- restore-script")
	require.True(t, ok, "operations.md marks its restore block")
	_, after, ok = strings.Cut(after, "```sh\n")
	require.True(t, ok)
	script, _, ok := strings.Cut(after, "```")
	require.True(t, ok)
	return script
}

// buildBinary builds healthrecord into dir, as the install steps do.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "healthrecord")
	cmd := exec.Command("go", "build", "-o", bin, "healthrecord/cmd/healthrecord")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

var listeningRE = regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)

// serve starts the binary on a free port and returns its URL and a
// function that stops it with SIGTERM, as systemctl stop does.
func serve(t *testing.T, bin, db string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:0", "--db", db)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case <-time.After(time.Minute):
		cancel()
		t.Fatal("serve did not start")
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, cmd.Wait(), "a clean stop")
		cancel()
	}
	t.Cleanup(stop)
	return url, stop
}

func register(t *testing.T, url, name string) {
	t.Helper()
	body := fmt.Sprintf(`{"username":%q,"email":"%s@example.com","password":"Restore-Test-%s-91","role":"PATIENT"}`, name, name, name)
	res, err := http.Post(url+"/api/users/register/", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusCreated, res.StatusCode, string(b))
}

func usernames(t *testing.T, bin, db string) []string {
	t.Helper()
	out, err := exec.Command(bin, "users", "list", "--json", "--db", db).Output()
	require.NoError(t, err)
	var users []struct{ Username string }
	require.NoError(t, json.Unmarshal(out, &users))
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	return names
}

// TestRestore_AsDocumented runs operations.md's restore block, unchanged,
// against a real database after a clean stop (when SQLite has removed the
// -wal and -shm files, which the earlier steps' `mv` failed on) and again
// after a crash (when they are there).
func TestRestore_AsDocumented(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run the documented steps")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	db := filepath.Join(dir, "state", "healthrecord.db")
	require.NoError(t, os.MkdirAll(filepath.Dir(db), 0o700))
	backup := filepath.Join(dir, "backup.db")

	url, stop := serve(t, bin, db)
	register(t, url, "before")
	out, err := exec.Command(bin, "backup", backup, "--db", db).CombinedOutput()
	require.NoError(t, err, "%s", out)
	register(t, url, "after")
	stop()
	require.NoFileExists(t, db+"-wal", "a clean stop leaves no -wal")

	runRestore := func() {
		t.Helper()
		cmd := exec.Command("sh", "-c", restoreScript(t))
		cmd.Env = append(os.Environ(), "DB="+db, "BACKUP="+backup, "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "the documented restore failed:\n%s", out)
		assert.Contains(t, string(out), "Audit trail intact: ")
	}
	runRestore()
	assert.Equal(t, []string{"before"}, usernames(t, bin, db))
	fi, err := os.Stat(db)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// After a crash: the -wal holds writes the backup does not have; the
	// restore moves it aside with the database instead of mixing them.
	url, _ = serve(t, bin, db)
	register(t, url, "crashed")
	require.FileExists(t, db+"-wal")
	time.Sleep(1100 * time.Millisecond) // the aside directory is named by the second
	runRestore()
	assert.Equal(t, []string{"before"}, usernames(t, bin, db))
	asides, err := filepath.Glob(db + ".replaced-*")
	require.NoError(t, err)
	assert.Len(t, asides, 2, "each restore keeps what it replaced")

	url, _ = serve(t, bin, db)
	res, err := http.Get(url + "/readyz")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode, "the restored database serves")
}
