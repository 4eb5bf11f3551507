package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

// These tests hold the change feed to the record cache's invariant: a
// record served without reading its version is what the row holds now,
// whoever changed it.

// trustedNow reports whether a Get of id would be answered from memory
// without a statement.
func trustedNow(t *testing.T, db *DB, id int64) bool {
	t.Helper()
	_, ok := db.records.trusted(t.Context(), id, db)
	return ok
}

// A record read twice with nothing committed in between is served from
// memory the second time, and a change made behind the adapter's back,
// even one that leaves the version alone, is not served once the log
// names the record.
func TestChangeFeed_ServesWithoutAStatementUntilTheLogNamesTheRecord(t *testing.T) {
	db, path := mustOpenDBAt(t)
	p, d := mustPatient(t, db, "p"), mustUser(t, db, "d", domain.RoleDoctor)
	r := mustAssigned(t, db, p.ID, d.ID)
	require.Equal(t, "t", title(t, db, r.ID))
	require.Equal(t, "t", title(t, db, r.ID))
	require.True(t, trustedNow(t, db, r.ID), "read again with nothing committed: trusted")

	raw := rawSQL(t, path)
	_, err := raw.Exec(`UPDATE users SET email = 'other@example.com' WHERE id = ?`, p.ID)
	require.NoError(t, err)
	assert.True(t, trustedNow(t, db, r.ID), "a commit that names no record leaves the entry trusted")

	_, err = raw.Exec(`UPDATE records SET title = 'elsewhere' WHERE id = ?`, r.ID)
	require.NoError(t, err)
	assert.False(t, trustedNow(t, db, r.ID), "the log names the record")
	assert.Equal(t, "elsewhere", title(t, db, r.ID))

	_, err = raw.Exec(`DELETE FROM records WHERE id = ?`, r.ID)
	require.NoError(t, err)
	_, err = db.Records().Get(t.Context(), r.ID)
	assert.Equal(t, domain.ENotFound, domain.ErrorCode(err), "a deleted record is gone at once")
}

// Another process's change is seen by the very next read: the header of
// the WAL index is shared memory, and the log is in the file.
func TestChangeFeed_SeesAnotherProcess(t *testing.T) {
	if path := os.Getenv("HR_CHANGEFEED_CHILD"); path != "" {
		id, _ := strconv.ParseInt(os.Getenv("HR_CHANGEFEED_RECORD"), 10, 64)
		raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
		require.NoError(t, err)
		_, err = raw.Exec(`INSERT INTO comments (record_id, doctor_id, comment, created_at) SELECT id, doctor_id, 'from the child', (SELECT max(created_at) + 1 FROM comments) FROM records WHERE id = ?`, id)
		require.NoError(t, err)
		require.NoError(t, raw.Close())
		return
	}
	db, path := mustOpenDBAt(t)
	p, d := mustPatient(t, db, "p"), mustUser(t, db, "d", domain.RoleDoctor)
	r := mustAssigned(t, db, p.ID, d.ID)
	for range 2 {
		_, err := db.Records().Get(t.Context(), r.ID)
		require.NoError(t, err)
	}
	require.True(t, trustedNow(t, db, r.ID))

	cmd := exec.Command(os.Args[0], "-test.run=^TestChangeFeed_SeesAnotherProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HR_CHANGEFEED_CHILD="+path, "HR_CHANGEFEED_RECORD="+strconv.FormatInt(r.ID, 10))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))

	got, err := db.Records().Get(t.Context(), r.ID)
	require.NoError(t, err)
	require.Len(t, got.Comments, 2)
	assert.Equal(t, "from the child", got.Comments[1].Text)
}

// A reader that fell behind the log's pruning distrusts everything: the
// change that named its record is no longer in the log.
func TestChangeFeed_PrunedLogDistrustsAll(t *testing.T) {
	db, path := mustOpenDBAt(t)
	p, d := mustPatient(t, db, "p"), mustUser(t, db, "d", domain.RoleDoctor)
	r, other := mustAssigned(t, db, p.ID, d.ID), mustAssigned(t, db, p.ID, d.ID)
	require.Equal(t, "t", title(t, db, r.ID))
	require.Equal(t, "t", title(t, db, r.ID))
	require.True(t, trustedNow(t, db, r.ID))

	raw := rawSQL(t, path)
	tx, err := raw.Begin()
	require.NoError(t, err)
	_, err = tx.Exec(`UPDATE records SET title = 'changed long ago' WHERE id = ?`, r.ID)
	require.NoError(t, err)
	for range 10001 {
		_, err = tx.Exec(`UPDATE records SET version = version + 1 WHERE id = ?`, other.ID)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit())
	var oldest int64
	require.NoError(t, raw.QueryRow(`SELECT min(seq) FROM record_changes`).Scan(&oldest))
	require.Greater(t, oldest, db.records.feed.seen+1, "the rows after the last one applied are gone")

	assert.Equal(t, "changed long ago", title(t, db, r.ID))
}

// A read that began before a catch-up and ends after it never makes its
// entry trusted: it may hold what the catch-up distrusted.
func TestChangeFeed_ReadAcrossACatchUpIsNotTrusted(t *testing.T) {
	c := newRecordCache(defaultCacheBytes)
	rec := domain.Record{ID: 1, Title: "old"}
	c.gen = 1
	gen := c.generation() // a read begins
	c.gen++               // a catch-up distrusts record 1
	c.putAt(rec, 3, gen)  // the read ends
	assert.False(t, c.entries[1].trusted)
	c.putAt(rec, 3, c.generation())
	assert.True(t, c.entries[1].trusted, "read again within one generation")
	_, ok := c.getAt(1, 3, gen)
	require.True(t, ok)
	assert.True(t, c.entries[1].trusted, "an old generation never takes trust away, nor gives it")
}

// BenchmarkRecordsGet reads one record with its comments: trusted (no
// statement while nothing was committed), after every commit (each read
// catches the feed up first), and by its version (the path before the
// feed, and the fallback).
func BenchmarkRecordsGet(b *testing.B) {
	db, path := func() (*DB, string) {
		path := b.TempDir() + "/bench.db"
		db, err := Open(b.Context(), path)
		require.NoError(b, err)
		b.Cleanup(func() { _ = db.Close() })
		require.NoError(b, db.Migrate(b.Context()))
		return db, path
	}()
	p, d := mustUser(b, db, "p", domain.RolePatient), mustUser(b, db, "d", domain.RoleDoctor)
	r := domain.Record{PatientID: p.ID, DoctorID: d.ID, Title: "Visit", Content: "observations", CreatedAt: t0, UpdatedAt: t0}
	require.NoError(b, db.Records().Create(b.Context(), &r))
	for j := range 2 {
		c := domain.Comment{RecordID: r.ID, DoctorID: d.ID, Text: fmt.Sprint("comment ", j), CreatedAt: t0}
		require.NoError(b, db.Comments().Create(b.Context(), &c))
	}
	get := func(b *testing.B) {
		got, err := db.Records().Get(b.Context(), r.ID)
		if err != nil || len(got.Comments) != 2 {
			b.Fatal(err)
		}
	}
	b.Run("trusted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			get(b)
		}
	})
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	require.NoError(b, err)
	b.Cleanup(func() { _ = raw.Close() })
	b.Run("after_a_commit", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			b.StopTimer()
			n++
			_, err := raw.Exec(`UPDATE users SET email = ? WHERE id = ?`, fmt.Sprint("p", n, "@example.com"), p.ID)
			require.NoError(b, err)
			b.StartTimer()
			get(b)
		}
	})
	// Many readers while another connection commits every millisecond,
	// as reads do while the audit buffer flushes: after each commit one
	// reader catches the feed up, and the others wait for it or read
	// their version. cpu-ns/op is the process's CPU per read.
	b.Run("parallel_with_commits", func(b *testing.B) {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				_, _ = raw.Exec(`UPDATE users SET email = ? WHERE id = ?`, fmt.Sprint("c", n, "@example.com"), p.ID)
			}
		}()
		b.ReportAllocs()
		b.SetParallelism(16)
		cpu0 := cpuTime(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				got, err := db.Records().Get(context.Background(), r.ID)
				if err != nil || len(got.Comments) != 2 {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		close(stop)
		<-done
	})
	distrust := func() {
		db.records.mu.Lock()
		e := db.records.entries[r.ID]
		e.trusted = false
		db.records.entries[r.ID] = e
		db.records.mu.Unlock()
	}
	b.Run("by_version", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			distrust()
			b.StartTimer()
			get(b)
		}
	})
	// What every read paid after a commit before the feed: the version
	// read on a connection whose page cache the commit emptied.
	b.Run("by_version_after_a_commit", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			b.StopTimer()
			n++
			_, err := raw.Exec(`UPDATE users SET email = ? WHERE id = ?`, fmt.Sprint("q", n, "@example.com"), p.ID)
			require.NoError(b, err)
			require.True(b, db.records.catchUp(b.Context()))
			distrust() // so the version is read
			b.StartTimer()
			get(b)
		}
	})
}
