package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// requireRecord compares records, comments by id only.
func requireRecord(t *testing.T, want, got domain.Record) {
	t.Helper()
	requireSameTime(t, want.CreatedAt, got.CreatedAt)
	requireSameTime(t, want.UpdatedAt, got.UpdatedAt)
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, want.PatientID, got.PatientID)
	assert.Equal(t, want.DoctorID, got.DoctorID)
	assert.Equal(t, want.Title, got.Title)
	assert.Equal(t, want.Content, got.Content)
	assert.Equal(t, commentIDs(want.Comments), commentIDs(got.Comments))
}

func commentIDs(cs []domain.Comment) []int64 {
	return ids(cs, func(c domain.Comment) int64 { return c.ID })
}

func recordIDs(rs []domain.Record) []int64 {
	return ids(rs, func(r domain.Record) int64 { return r.ID })
}

func recordKey(r domain.Record) (time.Time, int64) { return r.CreatedAt, r.ID }

func testRecords(t *testing.T, open Opener) {
	t.Run("create_and_get", func(t *testing.T) {
		s := open(t)
		p, d := mustPatient(t, s, "p"), mustDoctor(t, s, "d")
		unassigned := mustRecord(t, s, p.ID, 0, at(0))
		assigned := mustRecord(t, s, p.ID, d.ID, at(1))
		for _, want := range []domain.Record{unassigned, assigned} {
			got, err := s.Records().Get(ctx(t), want.ID)
			require.NoError(t, err)
			requireRecord(t, want, got)
			assert.Empty(t, got.Comments)
		}
		_, err := s.Records().Get(ctx(t), 999)
		requireCode(t, domain.ENotFound, err)
	})

	t.Run("comments_nested_oldest_first", func(t *testing.T) {
		s := open(t)
		p, d := mustPatient(t, s, "p"), mustDoctor(t, s, "d")
		r := mustRecord(t, s, p.ID, d.ID, at(0))
		c2 := mustComment(t, s, r.ID, d.ID, at(20))
		c1 := mustComment(t, s, r.ID, d.ID, at(10))
		c3 := mustComment(t, s, r.ID, d.ID, at(20))
		got, err := s.Records().Get(ctx(t), r.ID)
		require.NoError(t, err)
		assert.Equal(t, []int64{c1.ID, c2.ID, c3.ID}, commentIDs(got.Comments))
		requireSameTime(t, c1.CreatedAt, got.Comments[0].CreatedAt)
		assert.Equal(t, c1.Text, got.Comments[0].Text)
	})

	t.Run("update", func(t *testing.T) {
		s := open(t)
		p, d1, d2 := mustPatient(t, s, "p"), mustDoctor(t, s, "d1"), mustDoctor(t, s, "d2")
		r := mustRecord(t, s, p.ID, d1.ID, at(0))
		for _, tc := range []struct {
			name   string
			doctor int64
		}{{"reassign", d2.ID}, {"unassign", 0}, {"assign", d1.ID}} {
			t.Run(tc.name, func(t *testing.T) {
				r.Title, r.Content, r.DoctorID, r.UpdatedAt = "new "+tc.name, "changed", tc.doctor, at(60)
				require.NoError(t, s.Records().Update(ctx(t), r))
				got, err := s.Records().Get(ctx(t), r.ID)
				require.NoError(t, err)
				requireRecord(t, r, got)
			})
		}
		r.ID = 999
		requireCode(t, domain.ENotFound, s.Records().Update(ctx(t), r))
	})

	t.Run("delete_takes_comments", func(t *testing.T) {
		s := open(t)
		p, d := mustPatient(t, s, "p"), mustDoctor(t, s, "d")
		r := mustRecord(t, s, p.ID, d.ID, at(0))
		keep := mustRecord(t, s, p.ID, d.ID, at(1))
		c := mustComment(t, s, r.ID, d.ID, at(2))
		kept := mustComment(t, s, keep.ID, d.ID, at(3))
		require.NoError(t, s.Records().Delete(ctx(t), r.ID))
		_, err := s.Records().Get(ctx(t), r.ID)
		requireCode(t, domain.ENotFound, err)
		_, err = s.Comments().Get(ctx(t), c.ID)
		requireCode(t, domain.ENotFound, err)
		_, err = s.Comments().Get(ctx(t), kept.ID)
		require.NoError(t, err)
		requireCode(t, domain.ENotFound, s.Records().Delete(ctx(t), r.ID))
	})

	t.Run("stored_bytes", func(t *testing.T) {
		s := open(t)
		p, q, d := mustPatient(t, s, "p"), mustPatient(t, s, "q"), mustDoctor(t, s, "d")
		size := func(r domain.Record) int64 { return int64(len(r.Title) + len(r.Content)) }
		stored := func(id int64) int64 {
			n, err := s.Records().StoredBytes(ctx(t), id)
			require.NoError(t, err)
			return n
		}
		assert.Zero(t, stored(p.ID))
		r := mustRecord(t, s, p.ID, d.ID, at(0))
		other := mustRecord(t, s, q.ID, d.ID, at(1))
		c := mustComment(t, s, r.ID, d.ID, at(2))
		assert.Equal(t, size(r)+int64(len(c.Text)), stored(p.ID), "UTF-8 bytes of records and their comments")
		assert.Equal(t, size(other), stored(q.ID))
		r.Content = "longer content, ✓✓"
		require.NoError(t, s.Records().Update(ctx(t), r))
		assert.Equal(t, size(r)+int64(len(c.Text)), stored(p.ID))
		require.NoError(t, s.Records().Delete(ctx(t), r.ID))
		assert.Zero(t, stored(p.ID), "a deleted record gives back its comments' bytes too")
	})

	// A store may keep records in memory (the SQLite adapter does); every
	// read after a change must still show the change, and nothing a
	// rolled-back transaction did.
	t.Run("reads_after_changes_are_current", func(t *testing.T) {
		s := open(t)
		p, d1, d2 := mustPatient(t, s, "p"), mustDoctor(t, s, "d1"), mustDoctor(t, s, "d2")
		r := mustRecord(t, s, p.ID, d1.ID, at(0))
		other := mustRecord(t, s, p.ID, 0, at(1))
		list := func(f ports.RecordFilter) []domain.Record {
			t.Helper()
			got, err := s.Records().List(ctx(t), f, domain.Page{Limit: 10})
			require.NoError(t, err)
			return got
		}
		// read twice: the second read may come from memory
		current := func(want domain.Record, note string) {
			t.Helper()
			for range 2 {
				got, err := s.Records().Get(ctx(t), want.ID)
				require.NoError(t, err, note)
				requireRecord(t, want, got)
				mine := list(ports.RecordFilter{PatientID: p.ID})
				require.Equal(t, []int64{other.ID, want.ID}, recordIDs(mine), note)
				requireRecord(t, want, mine[1])
			}
		}
		current(r, "first reads")

		r.Title, r.Content, r.UpdatedAt = "changed title", "changed content", at(5)
		require.NoError(t, s.Records().Update(ctx(t), r))
		current(r, "after an update")

		c := mustComment(t, s, r.ID, d1.ID, at(6))
		r.Comments = []domain.Comment{c}
		current(r, "after a comment")
		got := list(ports.RecordFilter{DoctorID: d1.ID})
		require.Len(t, got, 1)
		require.Len(t, got[0].Comments, 1)
		assert.Equal(t, c.Text, got[0].Comments[0].Text)

		// A transaction that changes and reads the record, then fails.
		errRollback := domain.Forbidden("roll back")
		err := s.WithinTx(ctx(t), func(tx ports.Repos) error {
			changed := r
			changed.Title = "rolled back"
			require.NoError(t, tx.Records().Update(ctx(t), changed))
			got, err := tx.Records().Get(ctx(t), r.ID)
			require.NoError(t, err)
			assert.Equal(t, "rolled back", got.Title, "a transaction sees its own change")
			return errRollback
		})
		require.ErrorIs(t, err, errRollback)
		current(r, "after a rollback")
		r.Title = "committed after the rollback"
		require.NoError(t, s.Records().Update(ctx(t), r))
		current(r, "after a change made once more")

		r.DoctorID = d2.ID
		require.NoError(t, s.Records().Update(ctx(t), r))
		current(r, "after a reassignment")
		assert.Empty(t, list(ports.RecordFilter{DoctorID: d1.ID}), "the doctor it left no longer sees it")
		got = list(ports.RecordFilter{DoctorID: d2.ID})
		require.Len(t, got, 1)
		requireRecord(t, r, got[0])

		require.NoError(t, s.Records().Delete(ctx(t), r.ID))
		_, err = s.Records().Get(ctx(t), r.ID)
		requireCode(t, domain.ENotFound, err)
		assert.Equal(t, []int64{other.ID}, recordIDs(list(ports.RecordFilter{PatientID: p.ID})))
		assert.Empty(t, list(ports.RecordFilter{DoctorID: d2.ID}))
	})

	t.Run("list_by_actor_keyset_pages", func(t *testing.T) {
		s := open(t)
		p, other := mustPatient(t, s, "p"), mustPatient(t, s, "other")
		d, d2 := mustDoctor(t, s, "d"), mustDoctor(t, s, "d2")
		mine, doctors := map[int64]time.Time{}, map[int64]time.Time{}
		// Ties on created_at must be broken by id; other people's records
		// are interleaved and must never show.
		for i, sec := range []int{0, 1, 1, 1, 2, 3, 3, 3, 3, 4, 5} {
			doctor := []int64{d.ID, 0, d2.ID}[i%3]
			r := mustRecord(t, s, p.ID, doctor, at(sec))
			mine[r.ID] = r.CreatedAt
			if doctor == d.ID {
				doctors[r.ID] = r.CreatedAt
			}
			mustRecord(t, s, other.ID, d2.ID, at(sec))
		}
		for _, tc := range []struct {
			name string
			f    ports.RecordFilter
			want []int64
		}{
			{"patient", ports.RecordFilter{PatientID: p.ID}, newestFirst(mine)},
			{"doctor", ports.RecordFilter{DoctorID: d.ID}, newestFirst(doctors)},
		} {
			for _, size := range []int{1, 2, 3, 50} {
				got := walk(t, size, func(pg domain.Page) ([]domain.Record, error) {
					return s.Records().List(ctx(t), tc.f, pg)
				}, recordKey)
				assert.Equal(t, tc.want, got, "%s, pages of %d", tc.name, size)
			}
		}
	})

	t.Run("list_carries_comments", func(t *testing.T) {
		s := open(t)
		p, d := mustPatient(t, s, "p"), mustDoctor(t, s, "d")
		r1 := mustRecord(t, s, p.ID, d.ID, at(0))
		r2 := mustRecord(t, s, p.ID, d.ID, at(1))
		r3 := mustRecord(t, s, p.ID, d.ID, at(2))
		c1 := mustComment(t, s, r1.ID, d.ID, at(3))
		c2 := mustComment(t, s, r1.ID, d.ID, at(4))
		c3 := mustComment(t, s, r3.ID, d.ID, at(5))
		got, err := s.Records().List(ctx(t), ports.RecordFilter{DoctorID: d.ID}, domain.Page{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, []int64{r3.ID, r2.ID, r1.ID}, recordIDs(got))
		assert.Equal(t, []int64{c3.ID}, commentIDs(got[0].Comments))
		assert.Empty(t, got[1].Comments)
		assert.Equal(t, []int64{c1.ID, c2.ID}, commentIDs(got[2].Comments))
	})

	// Lists are filtered by the actor in the store: a forgotten filter
	// must be an error, never every record.
	t.Run("unfiltered_list_is_refused", func(t *testing.T) {
		s := open(t)
		p, d := mustPatient(t, s, "p"), mustDoctor(t, s, "d")
		mustRecord(t, s, p.ID, d.ID, at(0))
		got, err := s.Records().List(ctx(t), ports.RecordFilter{}, domain.Page{Limit: 10})
		require.Error(t, err, "an unfiltered list must not show every record")
		assert.Empty(t, got)
	})

	t.Run("default_page_size", func(t *testing.T) {
		s := open(t)
		p := mustPatient(t, s, "p")
		for i := range domain.DefaultPageSize + 1 {
			mustRecord(t, s, p.ID, 0, at(i))
		}
		got, err := s.Records().List(ctx(t), ports.RecordFilter{PatientID: p.ID}, domain.Page{})
		require.NoError(t, err)
		assert.Len(t, got, domain.DefaultPageSize)
	})

	t.Run("empty_list", func(t *testing.T) {
		s := open(t)
		p := mustPatient(t, s, "p")
		got, err := s.Records().List(ctx(t), ports.RecordFilter{PatientID: p.ID}, domain.Page{Limit: 10})
		require.NoError(t, err)
		assert.Empty(t, got)
	})
}

func testComments(t *testing.T, open Opener) {
	s := open(t)
	p, p2 := mustPatient(t, s, "p"), mustPatient(t, s, "p2")
	d, d2 := mustDoctor(t, s, "d"), mustDoctor(t, s, "d2")
	r1 := mustRecord(t, s, p.ID, d.ID, at(0))
	r2 := mustRecord(t, s, p.ID, d.ID, at(0))
	r3 := mustRecord(t, s, p2.ID, d2.ID, at(0))
	c1 := mustComment(t, s, r1.ID, d.ID, at(1))
	c2 := mustComment(t, s, r1.ID, d.ID, at(2))
	c3 := mustComment(t, s, r2.ID, d.ID, at(2))
	c4 := mustComment(t, s, r3.ID, d2.ID, at(3))
	c5 := mustComment(t, s, r2.ID, d2.ID, at(4)) // a doctor since unassigned

	t.Run("get", func(t *testing.T) {
		got, err := s.Comments().Get(ctx(t), c2.ID)
		require.NoError(t, err)
		requireSameTime(t, c2.CreatedAt, got.CreatedAt)
		got.CreatedAt = c2.CreatedAt
		assert.Equal(t, c2, got)
		_, err = s.Comments().Get(ctx(t), 999)
		requireCode(t, domain.ENotFound, err)
	})

	t.Run("list_needs_a_scope", func(t *testing.T) {
		_, err := s.Comments().List(ctx(t), ports.CommentFilter{RecordID: r1.ID}, domain.Page{Limit: 10})
		require.Error(t, err, "a list without a scope must not show every comment")
	})

	t.Run("list_filtered_newest_first", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			f    ports.CommentFilter
			want []int64
		}{
			// A comment is visible exactly when its record is: the doctor
			// assigned now sees every comment on its records, whoever wrote
			// them; the author of c5, since unassigned from r2, not c5.
			{"assigned_doctor", ports.CommentFilter{Records: ports.RecordFilter{DoctorID: d.ID}}, []int64{c5.ID, c3.ID, c2.ID, c1.ID}},
			{"other_doctor", ports.CommentFilter{Records: ports.RecordFilter{DoctorID: d2.ID}}, []int64{c4.ID}},
			{"on_patients_records", ports.CommentFilter{Records: ports.RecordFilter{PatientID: p.ID}}, []int64{c5.ID, c3.ID, c2.ID, c1.ID}},
			{"other_patient", ports.CommentFilter{Records: ports.RecordFilter{PatientID: p2.ID}}, []int64{c4.ID}},
			{"record_of_patient", ports.CommentFilter{Records: ports.RecordFilter{PatientID: p.ID}, RecordID: r1.ID}, []int64{c2.ID, c1.ID}},
			{"record_not_the_patients", ports.CommentFilter{Records: ports.RecordFilter{PatientID: p2.ID}, RecordID: r1.ID}, []int64{}},
			{"assigned_doctor_on_record", ports.CommentFilter{Records: ports.RecordFilter{DoctorID: d.ID}, RecordID: r2.ID}, []int64{c5.ID, c3.ID}},
			{"former_author_on_record", ports.CommentFilter{Records: ports.RecordFilter{DoctorID: d2.ID}, RecordID: r2.ID}, []int64{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, size := range []int{1, 2, 10} {
					got := walk(t, size, func(pg domain.Page) ([]domain.Comment, error) {
						return s.Comments().List(ctx(t), tc.f, pg)
					}, func(c domain.Comment) (time.Time, int64) { return c.CreatedAt, c.ID })
					if len(tc.want) == 0 {
						assert.Empty(t, got)
					} else {
						assert.Equal(t, tc.want, got, "pages of %d", size)
					}
				}
			})
		}
	})
}
