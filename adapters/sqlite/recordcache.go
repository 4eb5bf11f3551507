package sqlite

import (
	"sync"

	"healthrecord/domain"
)

// recordCache keeps records, with their comments, as they were read at a
// version. A record's version column changes with every change to the
// record or its comments, in the same transaction (migration 00002's
// triggers), so an entry whose version equals the row's version is exactly
// what the row holds now: a reader asks the index for (id, version) and
// takes the rest from here, skipping the join, the copy of every text and
// the sort.
//
// Only reads through the read pool fill it: they see committed data only.
// A read inside a write transaction could see a change that is later
// rolled back, and its version number would then be reused by a
// different change.
//
// It is bounded by an estimate of the bytes its entries hold; when full it
// drops entries in map order, which Go randomises: good enough for a
// working set that either fits (a clinic) or does not (a scan), and
// nothing to maintain.
type recordCache struct {
	mu       sync.Mutex
	entries  map[int64]cachedRecord
	size     int
	maxBytes int
}

type cachedRecord struct {
	version int64
	rec     domain.Record
	size    int
}

// defaultCacheBytes bounds the record cache: about 16,000 records of a
// few hundred bytes each with two comments, the whole of a small clinic.
const defaultCacheBytes = 8 << 20

func newRecordCache(maxBytes int) *recordCache {
	return &recordCache{entries: make(map[int64]cachedRecord), maxBytes: maxBytes}
}

// get returns the record id at version, if held. The comments slice is
// the caller's own: nothing a caller does can change an entry.
func (c *recordCache) get(id, version int64) (domain.Record, bool) {
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if !ok || e.version != version {
		return domain.Record{}, false
	}
	r := e.rec
	r.Comments = append(make([]domain.Comment, 0, len(e.rec.Comments)), e.rec.Comments...)
	return r, true
}

// put keeps r as read at version, replacing an older copy; a copy older
// than the one held is ignored (two readers may race).
func (c *recordCache) put(r domain.Record, version int64) {
	e := cachedRecord{version: version, rec: r, size: recordSize(r)}
	e.rec.Comments = append(make([]domain.Comment, 0, len(r.Comments)), r.Comments...)
	if e.size > c.maxBytes/64 { // one huge record must not empty the cache
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[r.ID]; ok {
		if old.version > version {
			return
		}
		c.size -= old.size
		delete(c.entries, r.ID)
	}
	for id, victim := range c.entries {
		if c.size+e.size <= c.maxBytes {
			break
		}
		c.size -= victim.size
		delete(c.entries, id)
	}
	c.entries[r.ID] = e
	c.size += e.size
}

// recordSize estimates the memory an entry holds: its texts and a fixed
// overhead for the structs and the map slot.
func recordSize(r domain.Record) int {
	n := 160 + len(r.Title) + len(r.Content)
	for _, c := range r.Comments {
		n += 80 + len(c.Text)
	}
	return n
}
