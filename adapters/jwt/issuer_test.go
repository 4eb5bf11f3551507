package jwt

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	jwxjwt "github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock drives the reload pacing of an Issuer in tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func keyPath(t *testing.T) string { return filepath.Join(t.TempDir(), "keys", "jwt.json") }

// mustIssuer opens path with a fake pacing clock.
func mustIssuer(t *testing.T, path string) (*Issuer, *fakeClock) {
	t.Helper()
	i, err := LoadOrCreate(path, t0)
	require.NoError(t, err)
	c := &fakeClock{now: t0}
	i.clock = c.Now
	i.nextStat.Store(c.Now().Add(statEvery).UnixNano())
	return i, c
}

func claimsAt(typ string, iat time.Time) ports.TokenClaims {
	return ports.TokenClaims{
		Type: typ, UserID: 42, Role: domain.RoleDoctor, SessionID: "sess-1", JTI: "jti-1",
		IssuedAt: iat, ExpiresAt: iat.Add(5 * time.Minute),
	}
}

func mustIssue(t *testing.T, i *Issuer, c ports.TokenClaims) string {
	t.Helper()
	tok, err := i.Issue(c)
	require.NoError(t, err)
	return tok
}

// fileKeys reads the key file the way an attacker who stole it would.
func fileKeys(t *testing.T, path string) []fileKey {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var kf keyFile
	require.NoError(t, json.Unmarshal(data, &kf))
	return kf.Keys
}

func secretOf(t *testing.T, k fileKey) []byte {
	t.Helper()
	s, err := base64.StdEncoding.DecodeString(k.Secret)
	require.NoError(t, err)
	return s
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	m, err := jws.Parse([]byte(tok))
	require.NoError(t, err)
	return m.Signatures()[0].ProtectedHeaders().KeyID()
}

// payload is a valid claim set as a map, so a case can drop or change one.
func payload(iat time.Time) map[string]any {
	return map[string]any{
		"token_type": "access", "exp": iat.Add(5 * time.Minute).Unix(), "iat": iat.Unix(),
		"jti": "jti-1", "user_id": 42, "role": "DOCTOR", "sid": "sess-1",
	}
}

// sign makes a real JWS with jwx, with any algorithm, key and kid.
func sign(t *testing.T, alg jwa.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	body, err := json.Marshal(claims)
	require.NoError(t, err)
	h := jws.NewHeaders()
	if kid != "" {
		require.NoError(t, h.Set(jws.KeyIDKey, kid))
	}
	out, err := jws.Sign(body, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	require.NoError(t, err)
	return string(out)
}

// handMade builds a compact token from a raw header, the claims and a
// signature computed by mac (nil: empty signature, as alg none has).
func handMade(t *testing.T, header string, claims map[string]any, mac func(signingInput string) []byte) string {
	t.Helper()
	body, err := json.Marshal(claims)
	require.NoError(t, err)
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(body)
	var sig []byte
	if mac != nil {
		sig = mac(in)
	}
	return in + "." + enc.EncodeToString(sig)
}

// hs256 signs input with secret the way jwx does, for algorithm-confusion cases.
func hs256(t *testing.T, secret []byte) func(string) []byte {
	return func(in string) []byte {
		s, err := jws.NewSigner(jwa.HS256)
		require.NoError(t, err)
		out, err := s.Sign([]byte(in), secret)
		require.NoError(t, err)
		return out
	}
}

func without(m map[string]any, k string) map[string]any {
	out := map[string]any{}
	for kk, v := range m {
		if kk != k {
			out[kk] = v
		}
	}
	return out
}

func with(m map[string]any, k string, v any) map[string]any {
	out := without(m, k)
	out[k] = v
	return out
}

func TestIssuer_RoundTrip(t *testing.T) {
	i, _ := mustIssuer(t, keyPath(t))
	for _, typ := range []string{ports.AccessToken, ports.RefreshToken} {
		t.Run(typ, func(t *testing.T) {
			c := claimsAt(typ, t0.Add(500*time.Millisecond))
			tok := mustIssue(t, i, c)

			got, err := i.Verify(tok, typ, t0.Add(time.Minute))
			require.NoError(t, err)
			assert.Equal(t, ports.TokenClaims{
				Type: typ, UserID: 42, Role: domain.RoleDoctor, SessionID: "sess-1", JTI: "jti-1",
				IssuedAt: t0, ExpiresAt: t0.Add(5 * time.Minute),
			}, got)

			m, err := jws.Parse([]byte(tok))
			require.NoError(t, err)
			h := m.Signatures()[0].ProtectedHeaders()
			assert.Equal(t, jwa.HS256, h.Algorithm())
			assert.NotEmpty(t, h.KeyID())

			// The claims are what the contract names, user_id a JSON number.
			var raw map[string]any
			require.NoError(t, json.Unmarshal(m.Payload(), &raw))
			assert.Equal(t, typ, raw["token_type"])
			assert.Equal(t, float64(42), raw["user_id"])
			for _, k := range []string{"exp", "iat", "jti", "role", "sid"} {
				assert.Contains(t, raw, k)
			}
		})
	}
}

func TestIssuer_IssueRefusesIncompleteClaims(t *testing.T) {
	i, _ := mustIssuer(t, keyPath(t))
	good := claimsAt(ports.AccessToken, t0)
	for name, change := range map[string]func(c *ports.TokenClaims){
		"bad type":     func(c *ports.TokenClaims) { c.Type = "id" },
		"no jti":       func(c *ports.TokenClaims) { c.JTI = "" },
		"no session":   func(c *ports.TokenClaims) { c.SessionID = "" },
		"bad role":     func(c *ports.TokenClaims) { c.Role = "ROOT" },
		"no issued at": func(c *ports.TokenClaims) { c.IssuedAt = time.Time{} },
		"exp not after iat": func(c *ports.TokenClaims) {
			c.ExpiresAt = c.IssuedAt
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			change(&c)
			_, err := i.Issue(c)
			require.Error(t, err)
		})
	}
}

func TestIssuer_VerifyRefuses(t *testing.T) {
	path := keyPath(t)
	i, _ := mustIssuer(t, path)
	k := fileKeys(t, path)[0]
	secret := secretOf(t, k)
	now := t0.Add(time.Minute)
	good := payload(t0)

	other := make([]byte, 64)
	_, err := rand.Read(other)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	// The baseline forged with the real key must verify, so each refusal
	// below is caused by the one thing it changes.
	base := sign(t, jwa.HS256, secret, k.KID, good)
	_, err = i.Verify(base, ports.AccessToken, now)
	require.NoError(t, err)
	require.True(t, cached(i, base), "the cache is warm")

	// HS384 built through jwx's jwt API, as another issuer would.
	hs384 := func() string {
		tok, err := jwxjwt.NewBuilder().Claim("token_type", "access").Claim("jti", "jti-1").
			Claim("user_id", 42).Claim("role", "DOCTOR").Claim("sid", "sess-1").
			IssuedAt(t0).Expiration(t0.Add(5 * time.Minute)).Build()
		require.NoError(t, err)
		h := jws.NewHeaders()
		require.NoError(t, h.Set(jws.KeyIDKey, k.KID))
		out, err := jwxjwt.Sign(tok, jwxjwt.WithKey(jwa.HS384, secret, jws.WithProtectedHeaders(h)))
		require.NoError(t, err)
		return string(out)
	}()

	tamperedPayload := func() string {
		parts := strings.Split(base, ".")
		forged := with(good, "user_id", 1)
		body, _ := json.Marshal(forged)
		parts[1] = base64.RawURLEncoding.EncodeToString(body)
		return strings.Join(parts, ".")
	}()
	tamperedSig := func() string {
		parts := strings.Split(base, ".")
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sig[0] ^= 1
		parts[2] = base64.RawURLEncoding.EncodeToString(sig)
		return strings.Join(parts, ".")
	}()
	refresh := mustIssue(t, i, claimsAt(ports.RefreshToken, t0))

	cases := []struct {
		name  string
		token string
	}{
		{"HS384", hs384},
		{"HS512", sign(t, jwa.HS512, secret, k.KID, good)},
		{"RS256", sign(t, jwa.RS256, rsaKey, k.KID, good)},
		{"alg none, empty signature", handMade(t, `{"alg":"none","kid":"`+k.KID+`","typ":"JWT"}`, good, nil)},
		{"alg none header over an HS256 signature", handMade(t, `{"alg":"none","kid":"`+k.KID+`"}`, good, hs256(t, secret))},
		{"HS512 header over an HS256 signature", handMade(t, `{"alg":"HS512","kid":"`+k.KID+`"}`, good, hs256(t, secret))},
		{"no alg header over an HS256 signature", handMade(t, `{"kid":"`+k.KID+`"}`, good, hs256(t, secret))},
		{"another secret", sign(t, jwa.HS256, other, k.KID, good)},
		{"tampered payload", tamperedPayload},
		{"tampered signature", tamperedSig},
		{"signature removed", strings.Join(strings.Split(base, ".")[:2], ".") + "."},
		{"expired", sign(t, jwa.HS256, secret, k.KID, with(good, "exp", now.Add(-time.Second).Unix()))},
		{"expires exactly now", sign(t, jwa.HS256, secret, k.KID, with(good, "exp", now.Unix()))},
		{"not yet valid (nbf)", sign(t, jwa.HS256, secret, k.KID, with(good, "nbf", now.Add(time.Second).Unix()))},
		{"issued in the future", sign(t, jwa.HS256, secret, k.KID, with(good, "iat", now.Add(time.Minute).Unix()))},
		{"refresh token used as access", refresh},
		{"unknown token type", sign(t, jwa.HS256, secret, k.KID, with(good, "token_type", "id"))},
		{"missing token_type", sign(t, jwa.HS256, secret, k.KID, without(good, "token_type"))},
		{"missing exp", sign(t, jwa.HS256, secret, k.KID, without(good, "exp"))},
		{"missing iat", sign(t, jwa.HS256, secret, k.KID, without(good, "iat"))},
		{"missing jti", sign(t, jwa.HS256, secret, k.KID, without(good, "jti"))},
		{"missing user_id", sign(t, jwa.HS256, secret, k.KID, without(good, "user_id"))},
		{"missing sid", sign(t, jwa.HS256, secret, k.KID, without(good, "sid"))},
		{"missing role", sign(t, jwa.HS256, secret, k.KID, without(good, "role"))},
		{"empty jti", sign(t, jwa.HS256, secret, k.KID, with(good, "jti", ""))},
		{"user_id as string", sign(t, jwa.HS256, secret, k.KID, with(good, "user_id", "42"))},
		{"fractional user_id", sign(t, jwa.HS256, secret, k.KID, with(good, "user_id", 4.5))},
		{"unknown role", sign(t, jwa.HS256, secret, k.KID, with(good, "role", "ROOT"))},
		{"unknown kid", sign(t, jwa.HS256, secret, "not-a-kid", good)},
		{"no kid", sign(t, jwa.HS256, secret, "", good)},
		{"payload not JSON", handMade(t, `{"alg":"HS256","kid":"`+k.KID+`"}`, nil, hs256(t, secret))},
		{"over 4 KiB", sign(t, jwa.HS256, secret, k.KID, with(good, "jti", strings.Repeat("j", MaxTokenLen)))},
		{"empty", ""},
		{"garbage", "not a token"},
		{"two parts", "eyJhbGciOiJIUzI1NiJ9.e30"},
		{"four parts", base + ".x"},
		{"bad base64", "!!!.@@@.###"},
		{"JSON serialization", `{"payload":"e30","signatures":[{"protected":"eyJhbGciOiJIUzI1NiJ9","signature":"x"}]}`},
	}
	// Good signatures over claims that break a rule are cached, so their
	// second Verify takes the cached path: it must refuse them too.
	cachedRefusals := map[string]bool{
		"expired": true, "expires exactly now": true, "not yet valid (nbf)": true,
		"issued in the future": true, "missing exp": true, "missing iat": true,
		"missing jti": true, "missing user_id": true, "missing sid": true,
		"missing role": true, "empty jti": true, "unknown role": true,
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 {
				_, err := i.Verify(tc.token, ports.AccessToken, now)
				require.Error(t, err)
				assert.Equal(t, domain.TokenNotValid(), err, "every refusal is the same opaque error")
			}
			assert.Equal(t, cachedRefusals[tc.name], cached(i, tc.token), "only a good signature is cached")
		})
	}
}

func TestIssuer_VerifyAcceptsEdges(t *testing.T) {
	path := keyPath(t)
	i, _ := mustIssuer(t, path)
	k := fileKeys(t, path)[0]
	secret := secretOf(t, k)
	now := t0.Add(time.Minute)
	good := payload(t0)
	for name, claims := range map[string]map[string]any{
		"nbf exactly now":        with(good, "nbf", now.Unix()),
		"iat slightly ahead":     with(good, "iat", now.Add(3*time.Second).Unix()),
		"expires one second on":  with(good, "exp", now.Add(time.Second).Unix()),
		"unrelated extra claims": with(good, "aud", "x"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := i.Verify(sign(t, jwa.HS256, secret, k.KID, claims), ports.AccessToken, now)
			require.NoError(t, err)
		})
	}
}

func TestKeyFile(t *testing.T) {
	t.Run("created owner-only with one random key", func(t *testing.T) {
		path := keyPath(t)
		_, err := LoadOrCreate(path, t0)
		require.NoError(t, err)
		info, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
		keys := fileKeys(t, path)
		require.Len(t, keys, 1)
		assert.Len(t, secretOf(t, keys[0]), 64)
		assert.True(t, keys[0].CreatedAt.Equal(t0))

		// Another first start gets another secret: nothing is a constant.
		path2 := keyPath(t)
		_, err = LoadOrCreate(path2, t0)
		require.NoError(t, err)
		assert.NotEqual(t, keys[0].Secret, fileKeys(t, path2)[0].Secret)
		assert.NotEqual(t, keys[0].KID, fileKeys(t, path2)[0].KID)
	})

	t.Run("reopened, not regenerated", func(t *testing.T) {
		path := keyPath(t)
		a, _ := mustIssuer(t, path)
		tok := mustIssue(t, a, claimsAt(ports.AccessToken, t0))
		b, _ := mustIssuer(t, path)
		_, err := b.Verify(tok, ports.AccessToken, t0.Add(time.Minute))
		require.NoError(t, err)
	})

	t.Run("refused when group or world readable", func(t *testing.T) {
		path := keyPath(t)
		_, err := LoadOrCreate(path, t0)
		require.NoError(t, err)
		for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
			require.NoError(t, os.Chmod(path, mode))
			_, err = LoadOrCreate(path, t0)
			require.ErrorContains(t, err, "chmod 600")
			_, err = Rotate(path, t0, time.Hour)
			require.ErrorContains(t, err, "chmod 600")
		}
	})

	t.Run("refused when invalid", func(t *testing.T) {
		for name, body := range map[string]string{
			"not JSON":       "{",
			"no keys":        `{"keys":[]}`,
			"short secret":   `{"keys":[{"kid":"a","secret":"` + base64.StdEncoding.EncodeToString([]byte("short")) + `","created_at":"2025-01-01T00:00:00Z"}]}`,
			"secret not b64": `{"keys":[{"kid":"a","secret":"***","created_at":"2025-01-01T00:00:00Z"}]}`,
			"duplicate kid":  `{"keys":[{"kid":"a","secret":"` + base64.StdEncoding.EncodeToString(make([]byte, 64)) + `","created_at":"2025-01-01T00:00:00Z"},{"kid":"a","secret":"` + base64.StdEncoding.EncodeToString(make([]byte, 64)) + `","created_at":"2025-01-02T00:00:00Z"}]}`,
			"no created_at":  `{"keys":[{"kid":"a","secret":"` + base64.StdEncoding.EncodeToString(make([]byte, 64)) + `"}]}`,
		} {
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "jwt.json")
				require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
				_, err := LoadOrCreate(path, t0)
				require.Error(t, err)
			})
		}
	})

	t.Run("operator supplied file is used", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "jwt.json")
		secret := make([]byte, 32)
		_, err := rand.Read(secret)
		require.NoError(t, err)
		body := `{"keys":[{"kid":"op-1","secret":"` + base64.StdEncoding.EncodeToString(secret) + `","created_at":"2025-01-01T00:00:00Z"}]}`
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		i, _ := mustIssuer(t, path)
		tok := mustIssue(t, i, claimsAt(ports.AccessToken, t0))
		assert.Equal(t, "op-1", kidOf(t, tok))
	})
}

func TestRotate(t *testing.T) {
	const keep = 24 * time.Hour
	path := keyPath(t)
	srv, clock := mustIssuer(t, path)
	kid1 := fileKeys(t, path)[0].KID
	tok1 := mustIssue(t, srv, claimsAt(ports.AccessToken, t0))
	require.Equal(t, kid1, kidOf(t, tok1))

	kid2, err := Rotate(path, t0.Add(time.Hour), keep)
	require.NoError(t, err)
	require.NotEqual(t, kid1, kid2)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the replaced file stays owner-only")
	keys := fileKeys(t, path)
	require.Len(t, keys, 2)
	assert.Equal(t, []string{kid1, kid2}, []string{keys[0].KID, keys[1].KID})

	// Until it re-stats the file, the running server keeps its signing key.
	assert.Equal(t, kid1, kidOf(t, mustIssue(t, srv, claimsAt(ports.AccessToken, t0))))
	clock.Add(statEvery)
	tok2 := mustIssue(t, srv, claimsAt(ports.AccessToken, t0))
	assert.Equal(t, kid2, kidOf(t, tok2), "new tokens use the new key")

	// The old key still verifies, on the running server and on a fresh one.
	fresh, _ := mustIssuer(t, path)
	for _, i := range []*Issuer{srv, fresh} {
		for _, tok := range []string{tok1, tok2} {
			_, err := i.Verify(tok, ports.AccessToken, t0.Add(time.Minute))
			require.NoError(t, err)
		}
	}

	// A rotation within keep of the last one keeps every key.
	kid3, err := Rotate(path, t0.Add(2*time.Hour), keep)
	require.NoError(t, err)
	require.Len(t, fileKeys(t, path), 3)

	// Once kid2 has signed for longer than keep, kid1 is retired.
	kid4, err := Rotate(path, t0.Add(time.Hour+keep+time.Second), keep)
	require.NoError(t, err)
	keys = fileKeys(t, path)
	got := []string{}
	for _, k := range keys {
		got = append(got, k.KID)
	}
	assert.Equal(t, []string{kid2, kid3, kid4}, got)

	after, _ := mustIssuer(t, path)
	_, err = after.Verify(tok1, ports.AccessToken, t0.Add(time.Minute))
	assert.Equal(t, domain.TokenNotValid(), err, "a retired key's token is refused")
	_, err = after.Verify(tok2, ports.AccessToken, t0.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, kid4, kidOf(t, mustIssue(t, after, claimsAt(ports.AccessToken, t0))))
}

func TestRotate_CreatesMissingFile(t *testing.T) {
	path := keyPath(t)
	kid, err := Rotate(path, t0, time.Hour)
	require.NoError(t, err)
	keys := fileKeys(t, path)
	require.Len(t, keys, 1)
	assert.Equal(t, kid, keys[0].KID)
}

func TestIssuer_SeesRotationByAnotherProcess(t *testing.T) {
	path := keyPath(t)
	srv, clock := mustIssuer(t, path)

	newKid, err := Rotate(path, t0.Add(time.Hour), 24*time.Hour)
	require.NoError(t, err)
	cli, _ := mustIssuer(t, path) // stands for a server that started after the rotation
	tok := mustIssue(t, cli, claimsAt(ports.AccessToken, t0))
	require.Equal(t, newKid, kidOf(t, tok))

	// srv has never seen newKid: the unknown kid makes it reload.
	_, err = srv.Verify(tok, ports.AccessToken, t0.Add(time.Minute))
	require.NoError(t, err)

	// Reloads for unknown kids are paced: within a second a second
	// rotation is not picked up, after it it is.
	_, err = Rotate(path, t0.Add(2*time.Hour), 24*time.Hour)
	require.NoError(t, err)
	cli2, _ := mustIssuer(t, path)
	tok2 := mustIssue(t, cli2, claimsAt(ports.AccessToken, t0))
	_, err = srv.Verify(tok2, ports.AccessToken, t0.Add(time.Minute))
	assert.Equal(t, domain.TokenNotValid(), err)
	clock.Add(kidReloadEvery)
	_, err = srv.Verify(tok2, ports.AccessToken, t0.Add(time.Minute))
	require.NoError(t, err)
}

func TestIssuer_ReloadFailureKeepsKeys(t *testing.T) {
	path := keyPath(t)
	srv, clock := mustIssuer(t, path)
	tok := mustIssue(t, srv, claimsAt(ports.AccessToken, t0))
	require.NoError(t, os.WriteFile(path, []byte("{broken"), 0o600))
	clock.Add(statEvery)
	_, err := srv.Issue(claimsAt(ports.AccessToken, t0))
	require.NoError(t, err)
	_, err = srv.Verify(tok, ports.AccessToken, t0.Add(time.Minute))
	require.NoError(t, err)
}

// TestIssuer_Concurrent runs verifies, issues and rotations at once (for -race).
func TestIssuer_Concurrent(t *testing.T) {
	path := keyPath(t)
	srv, clock := mustIssuer(t, path)
	tok := mustIssue(t, srv, claimsAt(ports.AccessToken, t0))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 200; n++ {
				if _, err := srv.Verify(tok, ports.AccessToken, t0.Add(time.Minute)); err != nil {
					t.Error(err)
					return
				}
				if _, err := srv.Issue(claimsAt(ports.AccessToken, t0)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for n := 0; n < 5; n++ {
		_, err := Rotate(path, t0.Add(time.Duration(n+1)*time.Minute), 24*time.Hour)
		require.NoError(t, err)
		clock.Add(statEvery)
	}
	wg.Wait()
}

// BenchmarkVerify measures a token's first use (cold: signature, JSON,
// rules, then the cache insert) and its repeats (warm: lookup and rules).
func BenchmarkVerify(b *testing.B) {
	i, err := LoadOrCreate(filepath.Join(b.TempDir(), "jwt.json"), t0)
	require.NoError(b, err)
	tok, err := i.Issue(claimsAt(ports.AccessToken, t0))
	require.NoError(b, err)
	now := t0.Add(time.Minute)
	verify := func() error {
		_, err := i.Verify(tok, ports.AccessToken, now)
		return err
	}
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			i.verified.mu.Lock()
			clear(i.verified.m)
			i.verified.mu.Unlock()
			if err := verify(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := verify(); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Every core verifying at once: shows whether the cache's lock contends.
	b.Run("warm-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := verify(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkIssue(b *testing.B) {
	i, err := LoadOrCreate(filepath.Join(b.TempDir(), "jwt.json"), t0)
	require.NoError(b, err)
	c := claimsAt(ports.AccessToken, t0)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := i.Issue(c); err != nil {
			b.Fatal(err)
		}
	}
}
