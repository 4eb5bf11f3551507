package sqlite

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"healthrecord/domain"
	"healthrecord/ports"
)

// cachedRecords is the records repository on the DB, with a cache in
// front of its reads; writes go straight through.
//
// The invariant, the one thing that makes a cached answer still true and
// still allowed: an entry is served only when the version the index holds
// for its record, read in the same call, equals the version it was read
// at. A record's version column changes with every change to the record
// or its comments, in the same transaction (migration 00002's triggers,
// whichever process writes), so an entry at the row's version is exactly
// what the row holds now: the same text, the same comments, the same
// patient and doctor. What the app then allows (CanView on a Get) and
// what a list's filter matched (in SQL, on the row) hold for the entry as
// they hold for the row. Two consequences keep it so:
//   - Only reads of committed data fill the cache, so only the DB's
//     repository is wrapped, never one inside a transaction: a read in a
//     write transaction could see a change that is later rolled back, and
//     its version number would then be reused by a different change.
//   - A page is never a mix of two moments: when a record missing from
//     the cache has changed between the page's index read and its fetch,
//     the page is read again in one statement (a record reassigned
//     meanwhile must not be shown to the doctor it left).
//
// A Get need not read the version when the entry is trusted: see
// changeFeed, which keeps trust to the same invariant.
//
// recordcache_test.go tests each part of it.
type cachedRecords struct {
	records // the repository underneath, which every record is read through
	cache   *recordCache
}

var _ ports.Records = cachedRecords{}

// Get serves a trusted entry while nothing was committed since the
// change feed last caught up (no statement at all); otherwise it reads
// the record's version from the index and takes the record from the
// cache when it holds that version.
func (c cachedRecords) Get(ctx context.Context, id int64) (domain.Record, error) {
	if rec, ok := c.cache.trusted(ctx, id, c.in.db); ok {
		return rec, nil
	}
	gen := c.cache.generation() // before the reads: see changeFeed
	v, err := c.version(ctx, id)
	if err != nil {
		return domain.Record{}, fmt.Errorf("sqlite: record %d: %w", id, notFoundIf(err))
	}
	if rec, ok := c.cache.getAt(id, v, gen); ok {
		return rec, nil
	}
	recs, versions, err := c.byID(ctx, id)
	if err == nil {
		for i, rec := range recs {
			c.cache.putAt(rec, versions[i], gen)
		}
	}
	return oneRecord(id, recs, err)
}

// List reads the page's ids and versions from the index, takes the
// records the cache holds at those versions, and reads the others in one
// statement; if one of those changed in between, it reads the page again
// in one statement.
func (c cachedRecords) List(ctx context.Context, f ports.RecordFilter, p domain.Page) ([]domain.Record, error) {
	pg, err := pageOf(f, p)
	if err != nil {
		return nil, err
	}
	recs, ok, err := c.listFromIndex(ctx, pg)
	if !ok && err == nil {
		var versions []int64
		recs, versions, err = c.page(ctx, pg)
		c.keep(recs, versions, err)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: list records: %w", err)
	}
	return recs, nil
}

// listFromIndex is List's first try; ok is false when a record changed
// between its two statements.
func (c cachedRecords) listFromIndex(ctx context.Context, pg recordPage) (recs []domain.Record, ok bool, err error) {
	refs, err := c.pageVersions(ctx, pg)
	if err != nil {
		return nil, false, err
	}
	if c.cache.betweenReads != nil {
		c.cache.betweenReads()
	}
	recs = make([]domain.Record, len(refs))
	var missing []int64
	for i, x := range refs {
		var hit bool
		if recs[i], hit = c.cache.get(x.id, x.version); !hit {
			missing = append(missing, x.id)
		}
	}
	if missing == nil {
		return recs, true, nil
	}
	fetched, versions, err := c.byIDs(ctx, missing)
	c.keep(fetched, versions, err)
	if err != nil {
		return nil, false, err
	}
	at := make(map[int64]int, len(fetched))
	for j, rec := range fetched {
		at[rec.ID] = j
	}
	for i, x := range refs {
		if recs[i].ID != 0 {
			continue
		}
		j, found := at[x.id]
		if !found || versions[j] != x.version {
			return nil, false, nil
		}
		recs[i] = fetched[j]
	}
	return recs, true, nil
}

// keep puts what a read of committed data returned into the cache.
func (c cachedRecords) keep(recs []domain.Record, versions []int64, err error) {
	if err != nil {
		return
	}
	for i, rec := range recs {
		c.cache.put(rec, versions[i])
	}
}

// recordCache keeps records, with their comments, as they were read at a
// version: cachedRecords says when an entry may be served. It is bounded
// by an estimate of the bytes its entries hold; when full it drops
// entries in map order, which Go randomises: good enough for a working
// set that either fits (a clinic) or does not (a scan), and nothing to
// maintain.
type recordCache struct {
	mu       sync.Mutex
	entries  map[int64]cachedRecord
	size     int
	maxBytes int
	// gen counts the change feed's catch-ups; 0 until the first.
	gen   uint64
	feed  changeFeed
	fresh atomic.Pointer[feedMark] // the feed's last catch-up; nil before the first
	// betweenReads, when set by a test, runs between a list's index read
	// and its fetch, where another writer may change a record.
	betweenReads func()
}

type cachedRecord struct {
	version int64
	rec     domain.Record
	size    int
	// trusted: served without reading the version while the change feed
	// is current (see changeFeed).
	trusted bool
}

// defaultCacheBytes bounds the record cache: enough for the records of a
// small clinic, each a few hundred bytes with a couple of comments.
const defaultCacheBytes = 8 << 20

func newRecordCache(maxBytes int) *recordCache {
	return &recordCache{entries: make(map[int64]cachedRecord), maxBytes: maxBytes}
}

// get returns the record id at version, if held. The comments slice is
// the caller's own: nothing a caller does can change an entry.
func (c *recordCache) get(id, version int64) (domain.Record, bool) {
	return c.getAt(id, version, 0)
}

// getAt is get that also trusts the entry when gen, read before version
// was, is still the current generation (see changeFeed).
func (c *recordCache) getAt(id, version int64, gen uint64) (domain.Record, bool) {
	c.mu.Lock()
	e, ok := c.entries[id]
	if ok && e.version == version && !e.trusted && gen != 0 && gen == c.gen {
		e.trusted = true
		c.entries[id] = e
	}
	c.mu.Unlock()
	if !ok || e.version != version {
		return domain.Record{}, false
	}
	return e.copy(), true
}

// copy is the entry's record with a comments slice of the caller's own:
// nothing a caller does can change an entry.
func (e cachedRecord) copy() domain.Record {
	r := e.rec
	r.Comments = append(make([]domain.Comment, 0, len(e.rec.Comments)), e.rec.Comments...)
	return r
}

// put keeps r as read at version, replacing an older copy; a copy older
// than the one held is ignored (two readers may race).
func (c *recordCache) put(r domain.Record, version int64) { c.putAt(r, version, 0) }

// putAt is put that trusts the entry when gen, read before the record
// was, is still the current generation (see changeFeed).
func (c *recordCache) putAt(r domain.Record, version int64, gen uint64) {
	e := cachedRecord{version: version, rec: r, size: recordSize(r)}
	e.rec.Comments = append(make([]domain.Comment, 0, len(r.Comments)), r.Comments...)
	if e.size > c.maxBytes/64 { // one huge record must not empty the cache
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.trusted = gen != 0 && gen == c.gen
	if old, ok := c.entries[r.ID]; ok {
		if old.version > version || (old.version == version && (old.trusted || !e.trusted)) {
			return // the same copy, or an older one: keep the one held
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
