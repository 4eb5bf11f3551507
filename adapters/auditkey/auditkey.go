// Package auditkey keeps the audit chain's key in a file of its own, beside
// the token signing keys, readable by the owner only and never in the
// database: whoever can write the database but not read this file cannot
// re-chain the audit trail. The key is made once and never rotated (a new
// key would mean re-keying the whole chain).
package auditkey

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"healthrecord/domain"
)

// keyLen is the size of a generated key: the hash's size.
const keyLen = 32

// maxFileSize bounds what a load reads.
const maxFileSize = 4096

// LoadOrCreate returns the key kept at path, making the file (mode 0600,
// holding a new random key) when there is none; created reports whether
// this call made it. A file others may read or write is refused.
func LoadOrCreate(path string) (key domain.AuditKey, created bool, err error) {
	key, err = load(path)
	if !errors.Is(err, os.ErrNotExist) {
		return key, false, err
	}
	key = make(domain.AuditKey, keyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("auditkey: generate: %w", err)
	}
	switch err := create(path, key); {
	case errors.Is(err, os.ErrExist):
		// Another process made it first: use its key.
		key, err = load(path)
		return key, false, err
	case err != nil:
		return nil, false, err
	}
	return key, true, nil
}

// load reads and checks path.
func load(path string) (domain.AuditKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auditkey: open %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("auditkey: stat %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("auditkey: %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("auditkey: %s has mode %04o: it must not be readable or writable by group or others (chmod 600 it)", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("auditkey: read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("auditkey: %s is too large", path)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("auditkey: %s does not hold a base64 key: %w", path, err)
	}
	if len(key) < domain.MinAuditKeyLen {
		return nil, fmt.Errorf("auditkey: %s holds %d bytes, at least %d needed", path, len(key), domain.MinAuditKeyLen)
	}
	return key, nil
}

// create installs a file holding key at path unless one is there already
// (an error matching os.ErrExist): the complete file appears at once, and
// two processes starting together never each keep a key of their own.
func create(path string, key domain.AuditKey) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("auditkey: create directory: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("auditkey: create: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("auditkey: write: %w", err)
	}
	// CreateTemp made it 0600; a hard link installs it without clobbering
	// a file that appeared meanwhile.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return err
		}
		return fmt.Errorf("auditkey: install %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // failure only weakens crash safety
		d.Close()
	}
	return nil
}
