// Package deploy holds the systemd units; its test has systemd check them.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var units = []string{"healthrecord.service", "healthrecord-backup.service", "healthrecord-backup.timer"}

// TestUnits_Hardened holds the server unit to what docs/operations.md
// promises, whether or not systemd is here to check the syntax.
func TestUnits_Hardened(t *testing.T) {
	b, err := os.ReadFile("healthrecord.service")
	require.NoError(t, err)
	unit := string(b)
	for _, want := range []string{
		"DynamicUser=yes", "StateDirectory=healthrecord", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"PrivateTmp=yes", "Restart=on-failure", "EnvironmentFile=", "ExecStart=/usr/local/bin/healthrecord serve",
	} {
		assert.Contains(t, unit, want)
	}
	timer, err := os.ReadFile("healthrecord-backup.timer")
	require.NoError(t, err)
	assert.Contains(t, string(timer), "OnCalendar=")
}

// TestUnits_SystemdVerify runs `systemd-analyze verify` on the units, with
// ExecStart pointing at an executable that exists here (verify checks it).
func TestUnits_SystemdVerify(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed here, so the units' syntax cannot be checked (install systemd to run this test)")
	}
	self, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	var paths []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		require.NoError(t, err)
		text := strings.ReplaceAll(string(b), "/usr/local/bin/healthrecord", self)
		p := filepath.Join(dir, u)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		paths = append(paths, p)
	}
	cmd := exec.Command(tool, append([]string{"verify"}, paths...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	// verify exits 0 on unknown keys and other mistakes it ignores: any
	// line about our units is a mistake.
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, dir) {
			t.Errorf("systemd-analyze: %s", line)
		}
	}
}
