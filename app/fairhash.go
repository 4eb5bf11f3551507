package app

import (
	"context"
	"sync"
	"time"

	"healthrecord/domain"
)

// Password hashing is the service's scarcest resource (memory and CPU per
// hash), so it is shared fairly between client addresses: each address
// has its own queue, and a free slot goes to the addresses in turn, so a
// flood from one address delays another's sign-in by about one hash, not
// by the whole flood. Queues are bounded in total and per address; work
// beyond them is refused at once (429), never queued without limit.
const (
	maxHashWaiting        = 256
	maxHashWaitingPerAddr = 64
)

// fairHash hands out hashing slots round-robin between addresses.
type fairHash struct {
	mu      sync.Mutex
	slots   int // hashes allowed at once
	running int
	waiting int
	queues  map[string][]chan struct{} // per address, oldest first
	ring    []string                   // addresses with waiters, in turn order
	next    int                        // index in ring of the next to serve
}

func newFairHash(slots int) *fairHash {
	return &fairHash{slots: max(1, slots), queues: map[string][]chan struct{}{}}
}

// errHashBusy answers work beyond the queues; a slot is usually free again
// within a second.
func errHashBusy() error { return domain.Throttled(time.Second) }

// acquire waits for a hashing slot for addr and returns its release.
// EThrottled at once when the queues are full.
func (f *fairHash) acquire(ctx context.Context, addr string) (func(), error) {
	f.mu.Lock()
	if f.running < f.slots && f.waiting == 0 {
		f.running++
		f.mu.Unlock()
		return f.release, nil
	}
	q := f.queues[addr]
	if f.waiting >= maxHashWaiting || len(q) >= maxHashWaitingPerAddr {
		f.mu.Unlock()
		return nil, errHashBusy()
	}
	ch := make(chan struct{})
	if len(q) == 0 {
		f.ring = append(f.ring, addr)
	}
	f.queues[addr] = append(q, ch)
	f.waiting++
	f.mu.Unlock()

	select {
	case <-ch:
		return f.release, nil
	case <-ctx.Done():
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.remove(addr, ch) {
			return nil, ctx.Err()
		}
		// Granted meanwhile: pass the slot on.
		f.handOff()
		return nil, ctx.Err()
	}
}

// release ends a hash: its slot goes to the next address in turn.
func (f *fairHash) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handOff()
}

// handOff gives the caller's slot to the next waiter, or frees it.
func (f *fairHash) handOff() {
	if len(f.ring) == 0 {
		f.running--
		return
	}
	if f.next >= len(f.ring) {
		f.next = 0
	}
	addr := f.ring[f.next]
	q := f.queues[addr]
	ch := q[0]
	if len(q) == 1 {
		delete(f.queues, addr)
		f.ring = append(f.ring[:f.next], f.ring[f.next+1:]...)
	} else {
		f.queues[addr] = q[1:]
		f.next++
	}
	f.waiting--
	close(ch)
}

// remove takes a waiter that gave up out of its queue; false when it was
// granted a slot already.
func (f *fairHash) remove(addr string, ch chan struct{}) bool {
	q := f.queues[addr]
	for i, c := range q {
		if c != ch {
			continue
		}
		f.waiting--
		if len(q) > 1 {
			f.queues[addr] = append(q[:i:i], q[i+1:]...)
			return true
		}
		delete(f.queues, addr)
		for j, a := range f.ring {
			if a == addr {
				f.ring = append(f.ring[:j], f.ring[j+1:]...)
				if j < f.next {
					f.next--
				}
				break
			}
		}
		return true
	}
	return false
}

// hash hashes password in addr's turn.
func (a *App) hash(ctx context.Context, addr, password string) (string, error) {
	release, err := a.hashing.acquire(ctx, addr)
	if err != nil {
		return "", err
	}
	defer release()
	return a.hasher.Hash(ctx, password)
}

// verifyPassword checks password against hash in addr's turn; a password
// longer than any that can be set is simply wrong, with no hashing spent
// on it.
func (a *App) verifyPassword(ctx context.Context, addr, hash, password string) (bool, error) {
	if len(password) > domain.MaxPasswordLength {
		return false, nil
	}
	release, err := a.hashing.acquire(ctx, addr)
	if err != nil {
		return false, err
	}
	defer release()
	return a.hasher.Verify(ctx, hash, password)
}
