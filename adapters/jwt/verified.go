package jwt

import (
	"strings"
	"sync"
)

// Bounds of the verification cache.
const (
	// maxVerified bounds the entries, and so the memory: one entry holds
	// the token (at most maxCachedTokenLen bytes), its decoded claims
	// (their strings no longer than the payload, 3/4 of the token) and
	// about 250 bytes of map slot and small allocations: under 2 KiB, so a
	// full cache stays under 16 MiB (the README's performance section has
	// what our own tokens take).
	maxVerified = 8192
	// maxCachedTokenLen: longer tokens (ours are far shorter) are verified
	// on every call, so the bound above does not grow with MaxTokenLen.
	maxCachedTokenLen = 1024
)

// verifiedCache remembers access tokens whose signature was checked and
// whose payload decoded, with the claims. Only that work is remembered:
// Verify still applies the type, time and claim rules on every call.
type verifiedCache struct {
	// mu is read-locked for a hit: with a plain Mutex, hits on both cores
	// took turns (BenchmarkVerify/warm-parallel ran no faster than warm).
	mu sync.RWMutex
	m  map[string]verifiedEntry
}

type verifiedEntry struct {
	c claims
	// ks is the key set that checked the signature. A reload stores a new
	// set, so comparing it with the current one invalidates every entry at
	// once when keys change. Holding the pointer keeps the old set alive, so its
	// address cannot be reused by a later set.
	ks *keySet
}

// get returns the claims of token if ks itself verified it. An entry from
// a replaced key set is left in place: a new verification overwrites it, or
// shrinkLocked drops it.
func (v *verifiedCache) get(token string, ks *keySet) (claims, bool) {
	v.mu.RLock()
	e, ok := v.m[token]
	v.mu.RUnlock()
	if !ok || e.ks != ks {
		return claims{}, false
	}
	return e.c, true
}

// put remembers that ks verified token; now (unix seconds) says which
// entries have expired when room is needed.
func (v *verifiedCache) put(token string, c claims, ks *keySet, now int64) {
	// The caller's token may share memory with a larger buffer (a request
	// header): keep only its own bytes.
	token = strings.Clone(token)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[string]verifiedEntry)
	}
	if _, ok := v.m[token]; !ok && len(v.m) >= maxVerified {
		v.shrinkLocked(ks, now)
	}
	v.m[token] = verifiedEntry{c: c, ks: ks}
}

// shrinkLocked makes room in a full cache. Entries that expired or whose
// key set was replaced go first, then arbitrary ones (map iteration starts
// at a random place) until a quarter is free: the O(n) pass then runs at
// most once per maxVerified/4 insertions, and no client's token is favoured.
func (v *verifiedCache) shrinkLocked(ks *keySet, now int64) {
	for tok, e := range v.m {
		if e.ks != ks || e.c.Exp == nil || *e.c.Exp <= now {
			delete(v.m, tok)
		}
	}
	for tok := range v.m {
		if len(v.m) <= maxVerified-maxVerified/4 {
			break
		}
		delete(v.m, tok)
	}
}
