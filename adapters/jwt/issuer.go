// Package jwt signs and verifies healthrecord's tokens: compact JWS with
// HS256 only, keys read from an owner-only key file that `keys rotate` can
// change under a running server.
//
// Verification runs on every request, so it uses jws.Verify with a key
// provider pinned to HS256 and decodes the claims into one fixed struct,
// instead of jwt.Parse's generic claim map: the same checks, fewer
// allocations, and user_id stays an exact integer. An access token is
// presented again and again until it expires, so a successful signature
// check is remembered (verified.go); the claim rules still run every time.
package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"healthrecord/domain"
	"healthrecord/ports"
)

// Limits and intervals.
const (
	// MaxTokenLen bounds the work spent on a presented token; ours are about 400 bytes.
	MaxTokenLen = 4096
	// iatLeeway tolerates clocks a little ahead; exp and nbf get no skew.
	iatLeeway = 5 * time.Second
	// kidReloadEvery bounds reloads caused by tokens naming an unknown kid.
	kidReloadEvery = time.Second
	// statEvery is how often Issue checks whether the key file changed.
	statEvery = 3 * time.Second
)

// alg is the only algorithm signed or accepted, whatever a token's header says.
const alg = jwa.HS256

var (
	errUnknownKid = errors.New("jwt: unknown kid")
	errNoKid      = errors.New("jwt: no kid")
	errBadAlg     = errors.New("jwt: algorithm not allowed")
)

// claims is the token payload, both ways. Pointers tell a missing number
// from zero.
type claims struct {
	TokenType string `json:"token_type"`
	Exp       *int64 `json:"exp"`
	Iat       *int64 `json:"iat"`
	Nbf       *int64 `json:"nbf,omitempty"`
	JTI       string `json:"jti"`
	UserID    *int64 `json:"user_id"`
	Role      string `json:"role"`
	SID       string `json:"sid"`
}

// Issuer implements ports.TokenIssuer over a key file.
type Issuer struct {
	path string
	keys atomic.Pointer[keySet]
	// nextStat is when Issue next stats the key file (unix nanos).
	nextStat atomic.Int64

	// lastKidReload is when an unknown kid last caused a reload (unix nanos).
	lastKidReload atomic.Int64

	mu sync.Mutex // serialises reloads

	verified verifiedCache // signatures already checked, for Verify

	clock func() time.Time // paces reloads; tests replace it
}

var _ ports.TokenIssuer = (*Issuer)(nil)

// LoadOrCreate opens the key file at path, creating it with one fresh
// random key (mode 0600) at first start. A file readable by group or
// others is refused.
func LoadOrCreate(path string, now time.Time) (*Issuer, error) {
	ks, err := loadKeySet(path)
	if errors.Is(err, os.ErrNotExist) {
		nk, kerr := newKey(now)
		if kerr != nil {
			return nil, kerr
		}
		// Another process may have created it meanwhile: then use theirs.
		if cerr := createFile(path, keyFile{Keys: []fileKey{nk}}); cerr != nil && !errors.Is(cerr, os.ErrExist) {
			return nil, cerr
		}
		ks, err = loadKeySet(path)
	}
	if err != nil {
		return nil, err
	}
	i := &Issuer{path: path, clock: time.Now}
	i.keys.Store(ks)
	i.nextStat.Store(i.clock().Add(statEvery).UnixNano())
	return i, nil
}

// Issue signs c with the newest key. JTI, SessionID, a valid role and type,
// IssuedAt and ExpiresAt (after IssuedAt) are required.
func (i *Issuer) Issue(c ports.TokenClaims) (string, error) {
	switch {
	case c.Type != ports.AccessToken && c.Type != ports.RefreshToken:
		return "", fmt.Errorf("jwt: issue: bad token type %q", c.Type)
	case c.JTI == "" || c.SessionID == "":
		return "", errors.New("jwt: issue: jti and session id are required")
	case !c.Role.Valid():
		return "", fmt.Errorf("jwt: issue: bad role %q", c.Role)
	case c.IssuedAt.IsZero() || !c.ExpiresAt.After(c.IssuedAt):
		return "", errors.New("jwt: issue: issued-at and a later expiry are required")
	}
	i.maybeReload()
	ks := i.keys.Load()

	exp, iat, uid := c.ExpiresAt.Unix(), c.IssuedAt.Unix(), c.UserID
	payload, err := json.Marshal(claims{
		TokenType: c.Type, Exp: &exp, Iat: &iat, JTI: c.JTI,
		UserID: &uid, Role: string(c.Role), SID: c.SessionID,
	})
	if err != nil {
		return "", fmt.Errorf("jwt: issue: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, ks.signing.kid); err != nil {
		return "", fmt.Errorf("jwt: issue: %w", err)
	}
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return "", fmt.Errorf("jwt: issue: %w", err)
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, ks.signing.secret, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("jwt: issue: %w", err)
	}
	return string(out), nil
}

// Verify checks token and returns its claims. Every failure is the same
// domain.TokenNotValid, so a client learns nothing about why.
func (i *Issuer) Verify(token, want string, now time.Time) (ports.TokenClaims, error) {
	if len(token) == 0 || len(token) > MaxTokenLen || strings.Count(token, ".") != 2 {
		return ports.TokenClaims{}, domain.TokenNotValid()
	}
	ks := i.keys.Load()
	// A client presents one access token for its whole lifetime: after the
	// first call only check runs, not HMAC and JSON.
	if c, ok := i.verified.get(token, ks); ok {
		return c.check(want, now)
	}
	payload, err := jws.Verify([]byte(token), ks.verifyOpts...)
	if errors.Is(err, errUnknownKid) {
		// Perhaps another process rotated the keys: reload and try once more.
		if ks = i.reloadForKid(ks); ks != nil {
			payload, err = jws.Verify([]byte(token), ks.verifyOpts...)
		}
	}
	if err != nil {
		return ports.TokenClaims{}, domain.TokenNotValid()
	}
	c, err := decodeClaims(payload)
	if err != nil {
		return ports.TokenClaims{}, err
	}
	// Refresh tokens are presented once, so caching them would only take room.
	if c.TokenType == ports.AccessToken && len(token) <= maxCachedTokenLen {
		i.verified.put(token, c, ks, now.Unix())
	}
	return c.check(want, now)
}

// decodeClaims decodes a verified payload.
func decodeClaims(payload []byte) (claims, error) {
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return claims{}, domain.TokenNotValid()
	}
	return c, nil
}

// check applies the type, time and required-claim rules at now. It runs on
// every Verify, cached or not, so a cached token still expires.
func (c claims) check(want string, now time.Time) (ports.TokenClaims, error) {
	nowSec := now.Unix()
	role, roleOK := domain.ParseRole(c.Role)
	switch {
	case c.TokenType == "" || c.TokenType != want,
		c.Exp == nil || c.Iat == nil || c.UserID == nil,
		c.JTI == "" || c.SID == "" || !roleOK,
		*c.Exp <= nowSec, // exp <= now: expired, no skew
		c.Nbf != nil && *c.Nbf > nowSec,
		*c.Iat > now.Add(iatLeeway).Unix():
		return ports.TokenClaims{}, domain.TokenNotValid()
	}
	return ports.TokenClaims{
		Type:      c.TokenType,
		UserID:    *c.UserID,
		Role:      role,
		SessionID: c.SID,
		JTI:       c.JTI,
		IssuedAt:  time.Unix(*c.Iat, 0).UTC(),
		ExpiresAt: time.Unix(*c.Exp, 0).UTC(),
	}, nil
}

// FetchKeys is the jws.KeyProvider: it pins the algorithm and requires a
// kid this key set knows.
func (ks *keySet) FetchKeys(_ context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	h := sig.ProtectedHeaders()
	if h.Algorithm() != alg {
		return errBadAlg
	}
	kid := h.KeyID()
	if kid == "" {
		return errNoKid
	}
	secret, ok := ks.byKid[kid]
	if !ok {
		return errUnknownKid
	}
	sink.Key(alg, secret)
	return nil
}

// reloadForKid reloads the key file after seen failed to know a kid, at
// most once per kidReloadEvery. It returns the key set to retry with, or
// nil when there is nothing new to try.
func (i *Issuer) reloadForKid(seen *keySet) *keySet {
	// Lock-free refusals first: a flood of forged kids must not queue on mu.
	if cur := i.keys.Load(); cur != seen {
		return cur // another request reloaded meanwhile
	}
	now := i.clock()
	if now.UnixNano()-i.lastKidReload.Load() < int64(kidReloadEvery) {
		return nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if cur := i.keys.Load(); cur != seen {
		return cur
	}
	if now.UnixNano()-i.lastKidReload.Load() < int64(kidReloadEvery) {
		return nil
	}
	i.lastKidReload.Store(now.UnixNano())
	if seen.unchanged(i.path) {
		// A forged kid must not replace the key set: that would empty the
		// verification cache once a second for every client.
		return nil
	}
	return i.reloadLocked()
}

// maybeReload reloads the key file when it changed, checking at most every
// statEvery, so new tokens are signed with a key rotated in by the CLI.
func (i *Issuer) maybeReload() {
	now := i.clock()
	if now.UnixNano() < i.nextStat.Load() {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if now.UnixNano() < i.nextStat.Load() {
		return
	}
	i.nextStat.Store(now.Add(statEvery).UnixNano())
	if i.keys.Load().unchanged(i.path) {
		return
	}
	i.reloadLocked() // on failure (even to stat) we keep signing with the keys we have
}

// unchanged reports whether the key file at path is still the one ks was
// read from (a rotation renames a new file into place).
func (ks *keySet) unchanged(path string) bool {
	info, err := os.Stat(path)
	return err == nil && os.SameFile(info, ks.info) && info.ModTime().Equal(ks.info.ModTime()) && info.Size() == ks.info.Size()
}

// reloadLocked replaces the key set from the file; on failure (a file
// mid-edit, wrong mode) the current keys stay in use. Call with mu held.
func (i *Issuer) reloadLocked() *keySet {
	ks, err := loadKeySet(i.path)
	if err != nil {
		return nil
	}
	i.keys.Store(ks)
	return ks
}
