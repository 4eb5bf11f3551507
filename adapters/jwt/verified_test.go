package jwt

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// cached reports whether token is in i's cache for the current keys, so
// that its next Verify skips the signature check.
func cached(i *Issuer, token string) bool {
	i.verified.mu.Lock()
	defer i.verified.mu.Unlock()
	e, ok := i.verified.m[token]
	return ok && e.ks == i.keys.Load()
}

func cacheLen(i *Issuer) int {
	i.verified.mu.Lock()
	defer i.verified.mu.Unlock()
	return len(i.verified.m)
}

func TestVerifyCache_RulesApplyOnEveryCall(t *testing.T) {
	path := keyPath(t)
	i, _ := mustIssuer(t, path)
	k := fileKeys(t, path)[0]
	secret := secretOf(t, k)
	good := payload(t0) // valid from t0 to t0+5m

	// Each token is warmed at a time it is valid, then presented when
	// exactly one rule refuses it.
	for name, tc := range map[string]struct {
		token   string
		warmAt  time.Time
		refusal time.Time
		want    string
	}{
		"expires exactly now": {mustIssue(t, i, claimsAt(ports.AccessToken, t0)), t0.Add(time.Minute), t0.Add(5 * time.Minute), ports.AccessToken},
		"expired":             {mustIssue(t, i, claimsAt(ports.AccessToken, t0)), t0.Add(time.Minute), t0.Add(time.Hour), ports.AccessToken},
		"wrong type":          {mustIssue(t, i, claimsAt(ports.AccessToken, t0)), t0.Add(time.Minute), t0.Add(time.Minute), ports.RefreshToken},
		"nbf in the future": {
			sign(t, jwa.HS256, secret, k.KID, with(good, "nbf", t0.Add(2*time.Minute).Unix())),
			t0.Add(3 * time.Minute), t0.Add(2*time.Minute - time.Second), ports.AccessToken,
		},
		"iat beyond the leeway": {
			sign(t, jwa.HS256, secret, k.KID, with(with(good, "iat", t0.Add(2*time.Minute).Unix()), "exp", t0.Add(7*time.Minute).Unix())),
			t0.Add(3 * time.Minute), t0.Add(2*time.Minute - iatLeeway - time.Second), ports.AccessToken,
		},
	} {
		t.Run(name, func(t *testing.T) {
			first, err := i.Verify(tc.token, ports.AccessToken, tc.warmAt)
			require.NoError(t, err)
			require.True(t, cached(i, tc.token))

			for range 2 {
				_, err = i.Verify(tc.token, tc.want, tc.refusal)
				assert.Equal(t, domain.TokenNotValid(), err)
			}
			require.True(t, cached(i, tc.token), "the refusals came from the cached path")

			again, err := i.Verify(tc.token, ports.AccessToken, tc.warmAt)
			require.NoError(t, err)
			assert.Equal(t, first, again, "a cache hit returns the claims a full verification does")
		})
	}
}

func TestVerifyCache_KeyDropRefusesCachedToken(t *testing.T) {
	const keep = time.Minute
	path := keyPath(t)
	srv, clock := mustIssuer(t, path)
	now := t0.Add(time.Minute)
	verify := func(tok string) error {
		_, err := srv.Verify(tok, ports.AccessToken, now)
		return err
	}
	old := mustIssue(t, srv, claimsAt(ports.AccessToken, t0))
	require.NoError(t, verify(old))
	require.True(t, cached(srv, old))

	// Another process rotates; srv learns the new key from a token signed
	// with it, and caches that token under the new key set.
	_, err := Rotate(path, t0, keep)
	require.NoError(t, err)
	mid, _ := mustIssuer(t, path)
	midTok := mustIssue(t, mid, claimsAt(ports.AccessToken, t0))
	require.NoError(t, verify(midTok))
	require.True(t, cached(srv, midTok))
	require.NoError(t, verify(old), "old's key is still in the file")

	// A second rotation retires the key that signed old.
	_, err = Rotate(path, t0.Add(2*keep), keep)
	require.NoError(t, err)
	for _, fk := range fileKeys(t, path) {
		require.NotEqual(t, kidOf(t, old), fk.KID)
	}
	require.NoError(t, verify(old), "until srv reloads, it keeps the keys it has")

	clock.Add(kidReloadEvery)
	last, _ := mustIssuer(t, path)
	ks := srv.keys.Load()
	require.NoError(t, verify(mustIssue(t, last, claimsAt(ports.AccessToken, t0))))
	require.NotSame(t, ks, srv.keys.Load(), "srv reloaded")

	assert.Equal(t, domain.TokenNotValid(), verify(old), "a token verified under a dropped key is refused")
	assert.False(t, cached(srv, old))
	// A token whose key survived is verified again under the new set.
	require.NoError(t, verify(midTok))
	assert.True(t, cached(srv, midTok))
}

func TestVerifyCache_ForgedKidKeepsCache(t *testing.T) {
	srv, clock := mustIssuer(t, keyPath(t))
	tok := mustIssue(t, srv, claimsAt(ports.AccessToken, t0))
	_, err := srv.Verify(tok, ports.AccessToken, t0.Add(time.Minute))
	require.NoError(t, err)

	other := make([]byte, 64)
	_, err = rand.Read(other)
	require.NoError(t, err)
	ks := srv.keys.Load()
	clock.Add(kidReloadEvery) // the forged kid may cause a reload attempt
	_, err = srv.Verify(sign(t, jwa.HS256, other, "forged", payload(t0)), ports.AccessToken, t0.Add(time.Minute))
	assert.Equal(t, domain.TokenNotValid(), err)

	// The key file did not change, so the key set and the cache stand.
	assert.Same(t, ks, srv.keys.Load())
	assert.True(t, cached(srv, tok))
}

// tamper changes the character at position at. A base64url character's
// top bit is data even at the end of a segment, so flipping it always
// changes the decoded bytes; a dot becomes a letter.
func tamper(tok string, at int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := []byte(tok)
	if n := strings.IndexByte(alphabet, b[at]); n >= 0 {
		b[at] = alphabet[n^32]
	} else {
		b[at] = 'A'
	}
	return string(b)
}

func TestVerifyCache_TamperedTokenRefused(t *testing.T) {
	i, _ := mustIssuer(t, keyPath(t))
	now := t0.Add(time.Minute)
	tok := mustIssue(t, i, claimsAt(ports.AccessToken, t0))
	_, err := i.Verify(tok, ports.AccessToken, now)
	require.NoError(t, err)
	require.True(t, cached(i, tok))

	for at := range len(tok) {
		forged := tamper(tok, at)
		require.NotEqual(t, tok, forged)
		for range 2 {
			_, err := i.Verify(forged, ports.AccessToken, now)
			require.Equal(t, domain.TokenNotValid(), err, "byte %d changed", at)
		}
		require.False(t, cached(i, forged))
	}
	assert.Equal(t, 1, cacheLen(i))
	_, err = i.Verify(tok, ports.AccessToken, now)
	require.NoError(t, err)
}

func TestVerifyCache_Bounded(t *testing.T) {
	i, _ := mustIssuer(t, keyPath(t))
	n := 0
	// verifyNew issues a distinct access token at iat and verifies it a minute later.
	verifyNew := func(iat time.Time) string {
		n++
		c := claimsAt(ports.AccessToken, iat)
		c.JTI = fmt.Sprintf("jti-%d", n)
		tok := mustIssue(t, i, c)
		_, err := i.Verify(tok, ports.AccessToken, iat.Add(time.Minute))
		require.NoError(t, err)
		require.LessOrEqual(t, cacheLen(i), maxVerified)
		require.True(t, cached(i, tok), "the newest token is cached")
		return tok
	}

	// A full cache of tokens that expire at t0+5m.
	for range maxVerified {
		verifyNew(t0)
	}
	require.Equal(t, maxVerified, cacheLen(i))

	// Once they have expired they are the ones dropped: all newer stay.
	later := t0.Add(10 * time.Minute)
	var fresh []string
	for range maxVerified / 2 {
		fresh = append(fresh, verifyNew(later))
	}
	require.Equal(t, maxVerified/2, cacheLen(i))
	for _, tok := range fresh {
		require.True(t, cached(i, tok))
	}

	// With none expired, arbitrary entries make room: the bound holds on
	// every insert (checked in verifyNew), and an evicted token still
	// verifies the full way.
	for range maxVerified/2 + 1 {
		verifyNew(later)
	}
	evicted := 0
	for _, tok := range fresh {
		if !cached(i, tok) {
			evicted++
		}
		_, err := i.Verify(tok, ports.AccessToken, later.Add(time.Minute))
		require.NoError(t, err)
	}
	assert.Positive(t, evicted)
}
