package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"

	"healthrecord/domain"
)

// changeFeed lets a Get serve a cached record without any statement. It
// keeps the record cache's invariant (an entry is served only as what
// the row holds now) by two facts about the database file:
//   - Nothing was committed, by any process, while the WAL index's header
//     reads the same (walHeader).
//   - Every change to a record or its comments, and every deletion, adds
//     a row to record_changes in its own transaction (migration 00008),
//     numbered in commit order (SQLite has one writer at a time).
//
// A catch-up reads the header, then the rows after the last one applied,
// and distrusts the entries they name; it then publishes the header it
// read first (a feedMark). While the header still reads so, every change
// committed so far has been applied, and a trusted entry is what its row
// holds. An entry becomes trusted only through a read (its version, or
// the record) that began after a catch-up and ended before the next: the
// generation, read before that read and compared when trusting, says so.
// A read that straddles a catch-up leaves its entry untrusted, so a slow
// reader can never put back, as trusted, what a catch-up distrusted.
// Whenever anything is in doubt (the header is being written, a catch-up
// is under way, the log lost rows this process had not applied, no -shm
// file to watch), Get reads the version as it always did.
type changeFeed struct {
	once sync.Once
	wal  *walHeader // nil: not watched, every Get reads its version
	pool *sql.DB    // one connection, held open while wal is read
	conn *sql.Conn
	log  *sql.Stmt // the rows from a sequence number on

	mu      sync.Mutex // one catch-up at a time; guards what follows
	started bool
	seen    int64 // the last row of record_changes applied
}

// feedMark is where the feed caught up to: the header read before the
// catch-up read the log, and the generation that catch-up made.
type feedMark struct {
	hdr walStamp
	gen uint64
}

// open starts watching db's file. It holds a connection of its own open
// for as long as it watches, so that SQLite keeps the -shm file in place
// (see walHeader), and reads the log through it. Failing that, it logs
// why and leaves the feed off.
func (f *changeFeed) open(ctx context.Context, db *DB) {
	ctx = context.WithoutCancel(ctx)
	err := func() error {
		var err error
		if f.pool, err = sql.Open("sqlite", db.dsn+"&_pragma=query_only(1)"); err != nil {
			return err
		}
		f.pool.SetMaxOpenConns(1)
		if f.conn, err = f.pool.Conn(ctx); err != nil {
			return err
		}
		f.log, err = f.conn.PrepareContext(ctx, `SELECT seq, record_id FROM record_changes WHERE seq >= ? ORDER BY seq`)
		if err != nil {
			return err
		}
		// A read opens the WAL index on the held connection.
		if _, err := f.lastSeq(ctx); err != nil {
			return err
		}
		f.wal, err = watchWALHeader(dbPathOf(db.dsn))
		return err
	}()
	if err != nil {
		db.log.Warn("sqlite: record cache reads a version for every record read", "err", err)
		f.closeConns()
	}
}

// dbPathOf is the file a DSN made by Open names.
func dbPathOf(dsn string) string {
	p, _, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	return strings.NewReplacer("%3f", "?", "%23", "#", "%25", "%").Replace(p)
}

func (f *changeFeed) lastSeq(ctx context.Context) (int64, error) {
	var n int64
	err := f.conn.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM record_changes`).Scan(&n)
	return n, err
}

// closeConns closes the feed's connection; the -shm file only after it.
func (f *changeFeed) closeConns() error {
	var errs []error
	if f.log != nil {
		errs = append(errs, f.log.Close())
	}
	if f.conn != nil {
		errs = append(errs, f.conn.Close())
	}
	if f.pool != nil {
		errs = append(errs, f.pool.Close())
	}
	f.log, f.conn, f.pool = nil, nil, nil
	return errors.Join(errs...)
}

// close stops the feed: it closes its connection (the header stays
// mapped, see walHeader).
func (c *recordCache) close() error {
	f := &c.feed
	f.once.Do(func() {}) // a feed opened after this would never be closed
	f.wal = nil
	return f.closeConns()
}

// generation is the number of catch-ups so far.
func (c *recordCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// trusted returns the record id from the cache, without a statement,
// when the feed is current and the entry trusted.
func (c *recordCache) trusted(ctx context.Context, id int64, db *DB) (domain.Record, bool) {
	f := &c.feed
	f.once.Do(func() { f.open(ctx, db) })
	if f.wal == nil {
		return domain.Record{}, false
	}
	for range 2 { // at most one catch-up per Get
		h, ok := f.wal.load()
		if !ok {
			return domain.Record{}, false
		}
		if m := c.fresh.Load(); m != nil && m.hdr == h {
			c.mu.Lock()
			e, found := c.entries[id]
			c.mu.Unlock()
			if !found || !e.trusted {
				return domain.Record{}, false
			}
			return e.copy(), true
		}
		if !c.catchUp(ctx) {
			return domain.Record{}, false
		}
	}
	return domain.Record{}, false
}

// catchUp applies the log's rows since the last catch-up; false when it
// failed (the caller then reads the version). A Get that finds another
// catch-up under way waits for it rather than read its version: every
// commit (an audit flush, many times a second under load) sends the
// reads after it here together, and one short read of the log serves
// them all, where each reading its version would cost a statement on a
// connection whose page cache the commit emptied.
func (c *recordCache) catchUp(ctx context.Context) bool {
	f := &c.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.wal.load() // before the log is read
	if !ok {
		return false
	}
	if m := c.fresh.Load(); m != nil && m.hdr == h {
		return true // caught up meanwhile
	}
	ctx = context.WithoutCancel(ctx)
	var ids []int64
	all := !f.started // the first catch-up: nothing was trusted yet
	seen := f.seen
	if all {
		n, err := f.lastSeq(ctx)
		if err != nil {
			return false
		}
		seen = n
	} else {
		rows, err := f.log.QueryContext(ctx, max(seen, 1))
		if err != nil {
			return false
		}
		first := true
		for rows.Next() {
			var seq, id int64
			if err := rows.Scan(&seq, &id); err != nil {
				_ = rows.Close()
				return false
			}
			// The row last applied is still there (or, with none applied
			// yet, the first ever): otherwise rows this process had not
			// applied were pruned.
			if first && seq != max(seen, 1) {
				all = true
			}
			first = false
			if seq > seen {
				ids = append(ids, id)
				seen = seq
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return false
		}
		if first && f.seen > 0 {
			all = true
		}
	}
	c.mu.Lock()
	c.gen++
	gen := c.gen
	if all {
		for id, e := range c.entries {
			if e.trusted {
				e.trusted = false
				c.entries[id] = e
			}
		}
	} else {
		for _, id := range ids {
			if e, ok := c.entries[id]; ok && e.trusted {
				e.trusted = false
				c.entries[id] = e
			}
		}
	}
	c.mu.Unlock()
	f.started, f.seen = true, seen
	c.fresh.Store(&feedMark{hdr: h, gen: gen})
	return true
}
