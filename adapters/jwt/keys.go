package jwt

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/lestrrat-go/jwx/v2/jws"
)

// secretLen is the size of a generated HS256 secret: twice the hash size,
// as RFC 2104 suggests for keys that are hashed anyway.
const secretLen = 64

// minSecretLen refuses operator-supplied secrets shorter than the hash.
const minSecretLen = 32

// maxKeyFileSize bounds what a load reads; a key file holds a few keys.
const maxKeyFileSize = 1 << 20

// fileKey is one key as the key file stores it.
type fileKey struct {
	KID       string    `json:"kid"`
	Secret    string    `json:"secret"` // standard base64
	CreatedAt time.Time `json:"created_at"`
}

type keyFile struct {
	Keys []fileKey `json:"keys"`
}

// key is a decoded key.
type key struct {
	kid       string
	secret    []byte
	createdAt time.Time
}

// keySet is an immutable snapshot of the key file: it is replaced, never
// changed, so Verify reads it without a lock.
type keySet struct {
	byKid   map[string][]byte
	signing key // the newest key
	info    os.FileInfo
	// verifyOpts are built once per snapshot: compact form only, keys from
	// this set through FetchKeys.
	verifyOpts []jws.VerifyOption
}

// newKey makes a key with a fresh random secret: keys never come from code.
func newKey(now time.Time) (fileKey, error) {
	secret := make([]byte, secretLen)
	if _, err := rand.Read(secret); err != nil {
		return fileKey{}, fmt.Errorf("jwt: generate secret: %w", err)
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return fileKey{}, fmt.Errorf("jwt: generate kid: %w", err)
	}
	return fileKey{
		KID:       hex.EncodeToString(id),
		Secret:    base64.StdEncoding.EncodeToString(secret),
		CreatedAt: now.UTC(),
	}, nil
}

// readKeyFile reads and checks path. A file others may read is refused:
// anyone holding a secret can mint tokens for any user.
func readKeyFile(path string) (keyFile, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return keyFile{}, nil, fmt.Errorf("jwt: open key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return keyFile{}, nil, fmt.Errorf("jwt: stat key file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return keyFile{}, nil, fmt.Errorf("jwt: key file %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return keyFile{}, nil, fmt.Errorf("jwt: key file %s has mode %04o: it must not be readable or writable by group or others (chmod 600 it)", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return keyFile{}, nil, fmt.Errorf("jwt: read key file: %w", err)
	}
	if len(data) > maxKeyFileSize {
		return keyFile{}, nil, fmt.Errorf("jwt: key file %s is too large", path)
	}
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return keyFile{}, nil, fmt.Errorf("jwt: parse key file %s: %w", path, err)
	}
	return kf, info, nil
}

// decode validates the file's keys and returns them oldest first.
func (kf keyFile) decode() ([]key, error) {
	if len(kf.Keys) == 0 {
		return nil, errors.New("jwt: key file holds no keys")
	}
	seen := map[string]bool{}
	keys := make([]key, 0, len(kf.Keys))
	for i, fk := range kf.Keys {
		if fk.KID == "" || seen[fk.KID] {
			return nil, fmt.Errorf("jwt: key #%d: empty or duplicate kid", i+1)
		}
		seen[fk.KID] = true
		secret, err := base64.StdEncoding.DecodeString(fk.Secret)
		if err != nil {
			return nil, fmt.Errorf("jwt: key %s: secret is not base64: %w", fk.KID, err)
		}
		if len(secret) < minSecretLen {
			return nil, fmt.Errorf("jwt: key %s: secret has %d bytes, at least %d needed", fk.KID, len(secret), minSecretLen)
		}
		if fk.CreatedAt.IsZero() {
			return nil, fmt.Errorf("jwt: key %s: created_at missing", fk.KID)
		}
		keys = append(keys, key{kid: fk.KID, secret: secret, createdAt: fk.CreatedAt.UTC()})
	}
	// Stable: of keys created in the same second, the later in the file is newer.
	sort.SliceStable(keys, func(a, b int) bool { return keys[a].createdAt.Before(keys[b].createdAt) })
	return keys, nil
}

// loadKeySet reads path into an immutable snapshot.
func loadKeySet(path string) (*keySet, error) {
	kf, info, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	keys, err := kf.decode()
	if err != nil {
		return nil, err
	}
	ks := &keySet{byKid: make(map[string][]byte, len(keys)), signing: keys[len(keys)-1], info: info}
	for _, k := range keys {
		ks.byKid[k.kid] = k.secret
	}
	ks.verifyOpts = []jws.VerifyOption{jws.WithCompact(), jws.WithKeyProvider(ks)}
	return ks, nil
}

// writeTemp writes kf to a new 0600 file next to path and returns its name,
// so the caller can move it into place atomically: a reader never sees a
// half-written key file.
func writeTemp(path string, kf keyFile) (string, error) {
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return "", fmt.Errorf("jwt: encode key file: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("jwt: create key file: %w", err)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", fmt.Errorf("jwt: write key file: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", fmt.Errorf("jwt: write key file: %w", err)
	}
	return name, nil
}

// replaceFile writes kf to path atomically (temp file, then rename).
func replaceFile(path string, kf keyFile) error {
	tmp, err := writeTemp(path, kf)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("jwt: replace key file: %w", err)
	}
	syncDir(path)
	return nil
}

// createFile writes kf to path unless a file is there already (reported as
// an error matching os.ErrExist): two processes starting at once must not
// each install a key the other does not know.
func createFile(path string, kf keyFile) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("jwt: create key directory: %w", err)
	}
	tmp, err := writeTemp(path, kf)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// A hard link installs the complete file without clobbering one that
	// appeared meanwhile.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return err
		}
		// The filesystem may not support links: fall back to an exclusive check then rename.
		if _, statErr := os.Lstat(path); statErr == nil {
			return os.ErrExist
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("jwt: install key file: %w", err)
		}
	}
	syncDir(path)
	return nil
}

// syncDir makes a rename durable; failure only weakens crash safety.
func syncDir(path string) {
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Rotate adds a new signing key to the key file at path (creating the file
// when absent) and retires every key whose successor was created more than
// keep ago: keep is the longest token lifetime, so tokens signed by the
// previous key stay valid until they expire. It returns the new key's kid.
// Rotations must not run concurrently (the CLI runs one at a time); a
// running server notices the change by itself.
func Rotate(path string, now time.Time, keep time.Duration) (newKid string, err error) {
	now = now.UTC()
	nk, err := newKey(now)
	if err != nil {
		return "", err
	}
	kf, _, err := readKeyFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := createFile(path, keyFile{Keys: []fileKey{nk}}); err != nil {
			return "", err
		}
		return nk.KID, nil
	} else if err != nil {
		return "", err
	}
	if _, err := kf.decode(); err != nil {
		return "", err
	}
	all := append(kf.Keys, nk)
	sort.SliceStable(all, func(a, b int) bool { return all[a].CreatedAt.Before(all[b].CreatedAt) })
	kept := make([]fileKey, 0, len(all))
	for i, k := range all {
		if i+1 < len(all) && now.Sub(all[i+1].CreatedAt) > keep {
			continue // its successor has signed for longer than any token lives
		}
		kept = append(kept, k)
	}
	if err := replaceFile(path, keyFile{Keys: kept}); err != nil {
		return "", err
	}
	return nk.KID, nil
}
