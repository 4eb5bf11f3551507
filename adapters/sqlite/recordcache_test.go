package sqlite

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// mustAssigned creates a record of patient assigned to doctor, with one
// comment.
func mustAssigned(t *testing.T, db *DB, patient, doctor int64) domain.Record {
	t.Helper()
	r := domain.Record{PatientID: patient, DoctorID: doctor, Title: "t", Content: "c", CreatedAt: t0, UpdatedAt: t0}
	require.NoError(t, db.Records().Create(t.Context(), &r))
	c := domain.Comment{RecordID: r.ID, DoctorID: doctor, Text: "first", CreatedAt: t0}
	require.NoError(t, db.Comments().Create(t.Context(), &c))
	r.Comments = []domain.Comment{c}
	return r
}

func title(t *testing.T, db *DB, id int64) string {
	t.Helper()
	r, err := db.Records().Get(t.Context(), id)
	require.NoError(t, err)
	return r.Title
}

// These tests hold the record cache to its invariant, stated once on
// cachedRecords: an entry is served only at the version the index holds
// now, and only committed reads fill it.

// The cache is really used: while a record's version stands still, reads
// come from memory. (Dropping the trigger is what only an intruder could
// do; it shows that the version, and nothing else, guards the cache.)
func TestRecordCache_ServesWhileTheVersionStands(t *testing.T) {
	db, path := mustOpenDBAt(t)
	p, d := mustPatient(t, db, "p"), mustUser(t, db, "d", domain.RoleDoctor)
	r := mustAssigned(t, db, p.ID, d.ID)
	require.Equal(t, "t", title(t, db, r.ID))

	raw := rawSQL(t, path)
	_, err := raw.Exec(`DROP TRIGGER records_version`)
	require.NoError(t, err)
	_, err = raw.Exec(`UPDATE records SET title = 'behind its back' WHERE id = ?`, r.ID)
	require.NoError(t, err)
	assert.Equal(t, "t", title(t, db, r.ID), "the version did not move, so the copy in memory is served")

	_, err = raw.Exec(`UPDATE records SET version = version + 1 WHERE id = ?`, r.ID)
	require.NoError(t, err)
	assert.Equal(t, "behind its back", title(t, db, r.ID))
}

// Another process (the CLI, a second server) changing the file is seen at
// once: the triggers move the version in the writer's own transaction.
func TestRecordCache_SeesOtherProcesses(t *testing.T) {
	db, path := mustOpenDBAt(t)
	other := mustOpenRaw(t, path)
	p, d := mustPatient(t, db, "p"), mustUser(t, db, "d", domain.RoleDoctor)
	r := mustAssigned(t, db, p.ID, d.ID)
	mine := func() domain.Record {
		got, err := db.Records().List(t.Context(), ports.RecordFilter{PatientID: p.ID}, domain.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, got, 1)
		return got[0]
	}
	require.Equal(t, "t", mine().Title)

	r.Title = "changed elsewhere"
	require.NoError(t, other.Records().Update(t.Context(), r))
	assert.Equal(t, "changed elsewhere", mine().Title)
	assert.Equal(t, "changed elsewhere", title(t, db, r.ID))

	c := domain.Comment{RecordID: r.ID, DoctorID: d.ID, Text: "second", CreatedAt: t0.Add(1)}
	require.NoError(t, other.Comments().Create(t.Context(), &c))
	assert.Len(t, mine().Comments, 2)

	_, err := rawSQL(t, path).Exec(`DELETE FROM comments WHERE id = ?`, c.ID)
	require.NoError(t, err)
	assert.Len(t, mine().Comments, 1, "a deleted comment goes from the record")
}

// A record that changes between the page's index read and the fetch of
// the records not in memory: the page is read again in one statement, so
// it never mixes two moments, and the doctor a record left never sees
// what was written after.
func TestRecordCache_ChangeBetweenStatements(t *testing.T) {
	db := mustOpenDB(t)
	p, d1, d2 := mustPatient(t, db, "p"), mustUser(t, db, "d1", domain.RoleDoctor), mustUser(t, db, "d2", domain.RoleDoctor)
	r := mustAssigned(t, db, p.ID, d1.ID)
	t.Cleanup(func() { db.records.betweenReads = nil })
	db.records.betweenReads = func() {
		db.records.betweenReads = nil
		moved := r
		moved.DoctorID, moved.Content = d2.ID, "written for d2 only"
		require.NoError(t, db.Records().Update(t.Context(), moved))
	}
	got, err := db.Records().List(t.Context(), ports.RecordFilter{DoctorID: d1.ID}, domain.Page{Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, got, "read again after the change: no longer d1's")
	assert.Nil(t, db.records.betweenReads, "the hook ran")

	db.records = newRecordCache(defaultCacheBytes) // so that the record is fetched after the hook
	db.records.betweenReads = func() {
		db.records.betweenReads = nil
		_, err := db.write.Exec(`UPDATE records SET title = 'newer' WHERE id = ?`, r.ID)
		require.NoError(t, err)
	}
	got, err = db.Records().List(t.Context(), ports.RecordFilter{PatientID: p.ID}, domain.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "newer", got[0].Title)
	assert.Equal(t, "written for d2 only", got[0].Content)
}

func TestRecordCache_Bounds(t *testing.T) {
	rec := func(id int64, text string) domain.Record {
		return domain.Record{ID: id, Title: "t", Content: text, Comments: []domain.Comment{{ID: id, Text: "c"}}}
	}
	c := newRecordCache(64 * 1024)
	for i := range int64(1000) {
		c.put(rec(i+1, fmt.Sprint("content ", i)), 1)
		require.LessOrEqual(t, c.size, c.maxBytes)
	}
	assert.Less(t, len(c.entries), 1000, "entries were dropped to stay within the bound")
	total := 0
	for _, e := range c.entries {
		total += e.size
	}
	assert.Equal(t, total, c.size, "size is the sum of the entries")

	c.put(rec(5000, string(make([]byte, c.maxBytes/32))), 1)
	_, ok := c.get(5000, 1)
	assert.False(t, ok, "a record too big for its share is not kept")

	c.put(rec(7, "v2"), 2)
	c.put(rec(7, "v1"), 1)
	got, ok := c.get(7, 2)
	require.True(t, ok, "an older copy read late does not replace a newer one")
	assert.Equal(t, "v2", got.Content)
	_, ok = c.get(7, 1)
	assert.False(t, ok, "another version is a miss")

	got.Comments[0].Text = "changed by a caller"
	got.Comments = append(got.Comments, domain.Comment{ID: 99})
	again, _ := c.get(7, 2)
	assert.Equal(t, []domain.Comment{{ID: 7, Text: "c"}}, again.Comments, "callers cannot change an entry")
}

// Reads inside a write transaction never fill the cache: a change read
// there and then rolled back leaves its version number to the next
// change, which must not be answered with the rolled-back text.
func TestRecordCache_TransactionReadsNeverFillIt(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	p, d := mustPatient(t, db, "p"), mustUser(t, db, "d", domain.RoleDoctor)
	r := mustAssigned(t, db, p.ID, d.ID)
	require.Equal(t, "t", title(t, db, r.ID))

	err := db.WithinTx(ctx, func(tx ports.Repos) error {
		undone := r
		undone.Title = "rolled back"
		require.NoError(t, tx.Records().Update(ctx, undone))
		got, err := tx.Records().Get(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, "rolled back", got.Title, "the transaction sees its own write")
		_, err = tx.Records().List(ctx, ports.RecordFilter{PatientID: p.ID}, domain.Page{Limit: 10})
		require.NoError(t, err)
		return errors.New("undo")
	})
	require.Error(t, err)

	r.Title = "committed"
	require.NoError(t, db.Records().Update(ctx, r), "takes the version number the rolled-back change had")
	assert.Equal(t, "committed", title(t, db, r.ID))
	got, err := db.Records().List(ctx, ports.RecordFilter{PatientID: p.ID}, domain.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "committed", got[0].Title)
}
