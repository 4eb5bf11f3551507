//go:build linux

package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what is written to the first
// reaches a program reading the second as its terminal.
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here (%v)", err)
	}
	t.Cleanup(func() { ptm.Close() })
	require.NoError(t, unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	require.NoError(t, err)
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}

// TestCreateSuperuser_OnATerminal types the answers on a real terminal:
// username and email are asked for, the password is read without echo and
// asked again after a mismatch.
func TestCreateSuperuser_OnATerminal(t *testing.T) {
	ptm, pts := openPTY(t)
	db := filepath.Join(t.TempDir(), "hr.db")
	go func() { _, _ = io.Copy(io.Discard, ptm) }() // the terminal's echo
	for _, line := range []string{"root", "root@example.com", "Adm1n-Passphrase!", "different", "Adm1n-Passphrase!", "Adm1n-Passphrase!"} {
		_, err := ptm.WriteString(line + "\n")
		require.NoError(t, err)
	}
	var out, prompts bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, []string{"createsuperuser", "--db", db}, mapEnv(nil), pts, &out, &prompts, nil)
	require.NoError(t, err, prompts.String())
	assert.Contains(t, out.String(), `Superuser "root" created`)
	assert.Contains(t, prompts.String(), "Username: ")
	assert.Contains(t, prompts.String(), "Email address: ")
	assert.Contains(t, prompts.String(), "Error: Your passwords didn't match.")
	assert.NotContains(t, prompts.String(), "Adm1n-Passphrase!", "the password is never shown")
}
