package sqlite

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

func TestOpen_MakesFilesOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loose.db")
	// A database left behind with its -wal and -shm, readable by others.
	db, err := Open(t.Context(), path)
	require.NoError(t, err)
	require.NoError(t, db.Migrate(t.Context()))
	require.NoError(t, db.Close())
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			require.NoError(t, os.WriteFile(p, nil, 0o600))
		}
		require.NoError(t, os.Chmod(p, 0o644))
	}

	var logs bytes.Buffer
	db, err = Open(t.Context(), path, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), p)
		assert.Contains(t, logs.String(), filepath.Base(p)+`","was":"0644"`, "a log line names %s", p)
	}
}

func TestMigrate_BackfillsUsernameKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db := mustOpenRaw(t, path)
	ctx := context.Background()
	require.NoError(t, db.Migrate(ctx))
	// Accounts from before the key: two of them collide once folded.
	for _, name := range []string{"alice", "Alice", "bob"} {
		_, err := db.write.ExecContext(ctx, `INSERT INTO users (username, email, role, password_hash, created_at)
			VALUES (?, 'x@example.com', 'PATIENT', 'h', 0)`, name)
		require.NoError(t, err)
	}
	require.NoError(t, db.Migrate(ctx))
	for _, name := range []string{"alice", "Alice", "BOB"} {
		_, err := db.Users().ByUsername(ctx, name)
		require.NoError(t, err, name)
	}
	dup := domain.User{Username: "ＢＯＢ", Email: "b@example.com", Role: domain.RolePatient, Active: true, PasswordHash: "h"}
	assert.Equal(t, domain.EInvalid, domain.ErrorCode(db.Users().Create(ctx, &dup)))
}
