// Package password hashes passwords with argon2id (RFC 9106) in PHC string
// form: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>, raw standard base64.
//
// Memory: one argon2 call holds Memory KiB (19 MiB with DefaultParams)
// while it runs, and at most maxConcurrent calls run at once, so however
// many sign-ins arrive, hashing keeps at most maxConcurrent × Memory KiB
// live (38 MiB with the defaults and 2 slots); the Go heap may briefly hold
// about as much again in garbage awaiting collection, which the package
// test bounds at (2 × maxConcurrent + 2) × Memory KiB. A stored hash
// naming larger parameters than the bounds below is refused, so an edited
// row cannot make one check cost more than MaxMemory.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"healthrecord/ports"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
	KeyLen  uint32 // bytes of hash
	SaltLen uint32 // bytes of salt
}

// DefaultParams are OWASP's recommended argon2id settings (m=19 MiB, t=2, p=1).
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}

// Bounds on parameters, for hashing and for stored hashes alike.
const (
	MaxMemory      = 256 * 1024 // KiB: 256 MiB
	MaxTime        = 10
	MaxThreads     = 16
	MaxPasswordLen = 4096 // bytes, as domain's password validation
	minKeyLen      = 16
	maxKeyLen      = 128
	minSaltLen     = 8
	maxSaltLen     = 64
	maxEncodedLen  = 512
)

// DefaultMaxConcurrent is the number of argon2 calls run at once when New
// is given none: one per core of the 2-core target machine.
const DefaultMaxConcurrent = 2

// ErrPasswordTooLong refuses input whose length only costs work.
var ErrPasswordTooLong = errors.New("password: longer than 4096 bytes")

// Validate reports parameters outside the supported bounds.
func (p Params) Validate() error {
	switch {
	case p.Threads < 1 || p.Threads > MaxThreads:
		return fmt.Errorf("password: threads %d out of [1, %d]", p.Threads, MaxThreads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > MaxMemory:
		return fmt.Errorf("password: memory %d KiB out of [8×threads, %d]", p.Memory, MaxMemory)
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("password: time %d out of [1, %d]", p.Time, MaxTime)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("password: key length %d out of [%d, %d]", p.KeyLen, minKeyLen, maxKeyLen)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("password: salt length %d out of [%d, %d]", p.SaltLen, minSaltLen, maxSaltLen)
	}
	return nil
}

// Argon2id implements ports.PasswordHasher with a bound on concurrent hashes.
type Argon2id struct {
	params Params
	sem    chan struct{}
	// kdf is argon2.IDKey; tests wrap it to watch concurrency.
	kdf func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte
	// cooldown is how long a slot stays idle after a hash, as a multiple
	// of the hash's own time (0: none); see WithCPUShare.
	cooldown float64
	// sleep and now are time.Sleep and time.Now; tests replace them.
	sleep func(time.Duration)
	now   func() time.Time
	// onWait, when set, is called when a call has to wait for a slot (tests).
	onWait func()
}

var _ ports.PasswordHasher = (*Argon2id)(nil)

// New returns a hasher hashing with p (checked by Hash; see Params.Validate)
// and running at most maxConcurrent argon2 calls at once (≤0: DefaultMaxConcurrent).
func New(p Params, maxConcurrent int) *Argon2id {
	if maxConcurrent <= 0 {
		maxConcurrent = DefaultMaxConcurrent
	}
	return &Argon2id{params: p, sem: make(chan struct{}, maxConcurrent), kdf: argon2.IDKey, sleep: time.Sleep, now: time.Now}
}

// WithCPUShare caps each slot at share (0 < share ≤ 1) of a core: after a
// hash that took d, the slot stays idle for d·(1/share − 1) before the next
// hash may use it. A burst of sign-ins then waits longer instead of taking
// the CPU the rest of the API needs. It returns a for chaining.
func (a *Argon2id) WithCPUShare(share float64) *Argon2id {
	if share > 0 && share < 1 {
		a.cooldown = 1/share - 1
	}
	return a
}

// Hash returns password's PHC-form argon2id hash with a fresh random salt.
func (a *Argon2id) Hash(ctx context.Context, password string) (string, error) {
	if len(password) > MaxPasswordLen {
		return "", ErrPasswordTooLong
	}
	p := a.params
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key, err := a.derive(ctx, []byte(password), salt, p)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches hash, using the parameters the
// hash names. A malformed or out-of-bounds hash is an error.
func (a *Argon2id) Verify(ctx context.Context, hash, password string) (bool, error) {
	if len(password) > MaxPasswordLen {
		return false, ErrPasswordTooLong
	}
	p, salt, want, err := decode(hash)
	if err != nil {
		return false, err
	}
	got, err := a.derive(ctx, []byte(password), salt, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// derive runs argon2 once a slot is free; each run holds p.Memory KiB.
func (a *Argon2id) derive(ctx context.Context, password, salt []byte, p Params) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case a.sem <- struct{}{}:
	default:
		if a.onWait != nil {
			a.onWait()
		}
		select {
		case a.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	start := a.now()
	key := a.kdf(password, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	if a.cooldown > 0 {
		// The caller has its answer; only the slot waits, so the caller's
		// latency is unchanged and the next hash starts later.
		idle := time.Duration(float64(a.now().Sub(start)) * a.cooldown)
		go func() { a.sleep(idle); <-a.sem }()
	} else {
		<-a.sem
	}
	return key, nil
}

// b64 is PHC's encoding: standard alphabet, no padding, canonical bits.
var b64 = base64.RawStdEncoding.Strict()

// decode parses a PHC argon2id string and checks its parameters.
func decode(hash string) (Params, []byte, []byte, error) {
	bad := func(why string) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("password: malformed argon2id hash: %s", why)
	}
	if len(hash) > maxEncodedLen {
		return bad("too long")
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("wrong number of fields")
	}
	if parts[1] != "argon2id" {
		return bad("not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("unsupported version")
	}
	var p Params
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return bad("parameters")
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		if !ok {
			return bad("parameters")
		}
		bits := 32
		if name == "p" {
			bits = 8
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil || (len(v) > 1 && v[0] == '0') {
			return bad("parameter " + name)
		}
		switch name {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			p.Threads = uint8(n)
		}
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return bad("salt")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return bad("hash")
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.Validate(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("password: argon2id hash refused: %w", err)
	}
	return p, salt, key, nil
}
