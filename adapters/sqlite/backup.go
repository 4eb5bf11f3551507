package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Backup writes a consistent copy of the live database to dest, which must
// not exist. VACUUM INTO reads one snapshot while writers go on; the copy
// is checked with integrity_check and synced before it appears at dest, so
// dest is either absent or a good backup.
func (db *DB) Backup(ctx context.Context, dest string) (err error) {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("sqlite: backup: %s exists", dest)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := dest + ".tmp-" + hex.EncodeToString(rnd[:])
	// VACUUM INTO accepts an empty file: creating it first gives it mode 0600.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	defer func() {
		_ = os.Remove(tmp) // after the link below, only the extra name goes
		_ = os.Remove(tmp + "-journal")
	}()
	if err := db.vacuumInto(ctx, tmp); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	if err := checkIntegrity(ctx, tmp); err != nil {
		return err
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	// A hard link never replaces an existing file, unlike rename.
	if err := os.Link(tmp, dest); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	if err := syncFile(filepath.Dir(dest)); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	return nil
}

// vacuumInto copies the database to path on a connection of its own: the
// read pool is query-only, which VACUUM INTO is refused on, and the write
// pool must stay free for writers while the copy runs.
func (db *DB) vacuumInto(ctx context.Context, path string) error {
	c, err := openPool(ctx, db.dsn, 1)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.ExecContext(ctx, `VACUUM INTO ?`, path)
	return err
}

// checkIntegrity opens the copy on its own and expects integrity_check "ok".
func checkIntegrity(ctx context.Context, path string) error {
	c, err := sql.Open("sqlite", "file:"+escapePath(path)+"?_pragma=query_only(1)")
	if err != nil {
		return fmt.Errorf("sqlite: backup check: %w", err)
	}
	defer c.Close()
	var res string
	if err := c.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return fmt.Errorf("sqlite: backup check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("sqlite: backup check: integrity_check says %q", res)
	}
	return nil
}

// syncFile flushes a file or directory to stable storage.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
