package app

import (
	"sync"
	"time"
)

// revocations is the in-memory set of revoked sign-ins, kept in step with
// the database: the app adds what it revokes itself, and SyncRevocations
// polls for what other processes revoked.
type revocations struct {
	mu  sync.RWMutex
	ids map[string]time.Time
	seq int64 // the highest revocation number loaded from the store
}

func newRevocations() *revocations { return &revocations{ids: map[string]time.Time{}} }

func (r *revocations) add(id string, at time.Time) {
	r.mu.Lock()
	r.ids[id] = at
	r.mu.Unlock()
}

// addSeq adds a revocation read from the store, numbered seq; one this
// process made itself keeps its time.
func (r *revocations) addSeq(id string, at time.Time, seq int64) {
	r.mu.Lock()
	if _, ok := r.ids[id]; !ok {
		r.ids[id] = at
	}
	r.seq = max(r.seq, seq)
	r.mu.Unlock()
}

func (r *revocations) has(id string) bool {
	r.mu.RLock()
	_, ok := r.ids[id]
	r.mu.RUnlock()
	return ok
}

// lastSeq is where the next sync starts.
func (r *revocations) lastSeq() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.seq
}

// prune forgets revocations older than before.
func (r *revocations) prune(before time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, at := range r.ids {
		if at.Before(before) {
			delete(r.ids, id)
		}
	}
}
