package auditkey_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/auditkey"
	"healthrecord/domain"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "hr.db.keys.audit")
	k1, created, err := auditkey.LoadOrCreate(path)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Len(t, k1, 32)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	k2, created, err := auditkey.LoadOrCreate(path)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, k1, k2)

	require.NoError(t, os.Chmod(path, 0o640))
	_, _, err = auditkey.LoadOrCreate(path)
	assert.ErrorContains(t, err, "chmod 600")

	require.NoError(t, os.Chmod(path, 0o600))
	require.NoError(t, os.WriteFile(path, []byte("c2hvcnQ=\n"), 0o600))
	_, _, err = auditkey.LoadOrCreate(path)
	assert.ErrorContains(t, err, "at least")
}

// TestLoadOrCreate_RacingProcesses: of many starting at once, exactly one
// makes the key and all use it.
func TestLoadOrCreate_RacingProcesses(t *testing.T) {
	for range 20 {
		path := filepath.Join(t.TempDir(), "k")
		const n = 8
		keys := make([]domain.AuditKey, n)
		made := make([]bool, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				k, c, err := auditkey.LoadOrCreate(path)
				assert.NoError(t, err)
				keys[i], made[i] = k, c
			})
		}
		wg.Wait()
		count := 0
		for i := range n {
			assert.Equal(t, keys[0], keys[i])
			if made[i] {
				count++
			}
		}
		assert.Equal(t, 1, count)
	}
}
