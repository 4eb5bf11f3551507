package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"healthrecord/adapters/memstore"
	"healthrecord/domain"
	"healthrecord/ports"
)

// fakeDB is the in-memory store (adapters/memstore, held to the same
// contract as SQLite) with the faults a test injects and a log of the
// writes that committed, and whether each was made inside a transaction.
type fakeDB struct {
	*memstore.Store

	// Fail, when set, may answer an operation ("Users.Create", "WithinTx",
	// …) with an error instead of the store.
	Fail func(op string) error
	// CommitErr, when set, makes WithinTx roll back after fn succeeded and
	// return it, as a failed commit would.
	CommitErr error
	// txs counts transactions begun.
	txs int

	mu        sync.Mutex
	pending   []memstore.Op // inside the open transaction
	committed []memstore.Op
}

func newFakeDB() *fakeDB {
	d := &fakeDB{}
	d.Store = memstore.New(memstore.Options{Hook: d.hook})
	return d
}

// hook answers the store's operations with the faults set and logs them.
func (d *fakeDB) hook(op memstore.Op) error {
	if op.Name == "Commit" {
		d.mu.Lock()
		defer d.mu.Unlock()
		done := d.pending
		d.pending = nil
		if d.CommitErr != nil {
			return d.CommitErr
		}
		d.committed = append(d.committed, done...)
		return nil
	}
	if d.Fail != nil {
		if err := d.Fail(op.Name); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case op.Name == "WithinTx":
		d.txs++
		d.pending = nil // what the last transaction did was rolled back
	case op.InTx:
		d.pending = append(d.pending, op)
	default:
		d.committed = append(d.committed, op)
	}
	return nil
}

// inTx reports whether the i-th committed call of op was made inside a
// transaction.
func (d *fakeDB) inTx(t *testing.T, op string, i int) bool {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.committed {
		if o.Name != op {
			continue
		}
		if i == 0 {
			return o.InTx
		}
		i--
	}
	require.Fail(t, "no such call", "%s #%d did not commit", op, i)
	return false
}

// rows are the committed tables, to read.
func (d *fakeDB) rows() *memstore.Tables {
	var out *memstore.Tables
	d.Raw(func(t *memstore.Tables) { out = t })
	return out
}

// failOn returns a Fail function answering err for the operations named.
func failOn(err error, ops ...string) func(string) error {
	return func(op string) error {
		if slices.Contains(ops, op) {
			return err
		}
		return nil
	}
}

// failTimes returns a Fail function answering err for the first n calls
// of the operations named, and nil after.
func failTimes(n int, err error, ops ...string) func(string) error {
	var mu sync.Mutex
	return func(op string) error {
		mu.Lock()
		defer mu.Unlock()
		if n > 0 && slices.Contains(ops, op) {
			n--
			return err
		}
		return nil
	}
}

// fakeTokens is a ports.TokenIssuer whose tokens are opaque names for
// claims it keeps in memory.
type fakeTokens struct {
	mu     sync.Mutex
	issued map[string]ports.TokenClaims
	// IssueErr, when set, may fail Issue for the claims given.
	IssueErr func(c ports.TokenClaims) error
}

var _ ports.TokenIssuer = (*fakeTokens)(nil)

func (f *fakeTokens) Issue(c ports.TokenClaims) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.IssueErr != nil {
		if err := f.IssueErr(c); err != nil {
			return "", err
		}
	}
	if c.JTI == "" || c.IssuedAt.IsZero() || c.ExpiresAt.IsZero() {
		return "", errors.New("fake: claims incomplete")
	}
	tok := fmt.Sprintf("%s-token-%d", c.Type, len(f.issued)+1)
	f.issued[tok] = c
	return tok, nil
}

func (f *fakeTokens) Verify(token, want string, now time.Time) (ports.TokenClaims, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.issued[token]
	if !ok || c.Type != want || !now.Before(c.ExpiresAt) {
		return ports.TokenClaims{}, domain.TokenNotValid()
	}
	return c, nil
}

// claims returns what token carries, for assertions.
func (f *fakeTokens) claims(t *testing.T, token string) ports.TokenClaims {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.issued[token]
	require.True(t, ok, "token %q was not issued", token)
	return c
}

// fakeHasher is a ports.PasswordHasher that "hashes" by prefixing, and
// records every call so tests can see a hash was checked.
type fakeHasher struct {
	mu       sync.Mutex
	hashed   []string
	verified []string // the hashes Verify was given
	// HashErr and VerifyErr, when set, fail the call.
	HashErr   error
	VerifyErr error
}

var _ ports.PasswordHasher = (*fakeHasher)(nil)

const fakeHashPrefix = "fakehash$"

func (h *fakeHasher) Hash(_ context.Context, password string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.HashErr != nil {
		return "", h.HashErr
	}
	h.hashed = append(h.hashed, password)
	return fakeHashPrefix + password, nil
}

func (h *fakeHasher) Verify(_ context.Context, hash, password string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.verified = append(h.verified, hash)
	if h.VerifyErr != nil {
		return false, h.VerifyErr
	}
	if !strings.HasPrefix(hash, fakeHashPrefix) {
		return false, errors.New("fake: malformed hash")
	}
	return hash == fakeHashPrefix+password, nil
}

func (h *fakeHasher) verifiedHashes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.verified)
}

// fakeClock is a ports.Clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

var _ ports.Clock = (*fakeClock)(nil)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeMailer is a ports.Mailer with a function field.
type fakeMailer struct {
	send func(ctx context.Context, m domain.Email) error
}

var _ ports.Mailer = (*fakeMailer)(nil)

func (m *fakeMailer) Send(ctx context.Context, e domain.Email) error { return m.send(ctx, e) }

// counterRandom returns distinct bytes on every call, deterministically.
func counterRandom() func(int) []byte {
	var mu sync.Mutex
	var n uint64
	return func(size int) []byte {
		mu.Lock()
		defer mu.Unlock()
		n++
		b := make([]byte, size)
		for i := 0; i < 8 && i < size; i++ {
			b[size-1-i] = byte(n >> (8 * i))
		}
		return b
	}
}
