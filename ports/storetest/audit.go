package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// entry is an audit entry of actor on record of patient at when.
func entry(actor, record, patient int64, when time.Time) domain.AuditEntry {
	return domain.AuditEntry{
		At: when, ActorID: actor, ActorRole: domain.RoleDoctor, Action: domain.ActionRecordRead,
		RecordID: record, PatientID: patient, Outcome: domain.OutcomeAllowed,
		RequestID: fmt.Sprintf("req-%d", when.UnixNano()), RemoteAddr: "192.0.2.1",
	}
}

func auditIDs(es []domain.AuditEntry) []int64 {
	return ids(es, func(e domain.AuditEntry) int64 { return e.ID })
}

// requireIntact verifies the chain and returns how many entries it holds.
func requireIntact(t *testing.T, s ports.Store) int64 {
	t.Helper()
	c, err := s.Audit().Verify(ctx(t), nil)
	require.NoError(t, err)
	require.True(t, c.OK(), "broken at %d", c.FirstBroken)
	return c.Entries
}

// auditFilterCase is a filter and the entries it must keep.
type auditFilterCase struct {
	name string
	f    ports.AuditFilter
	keep func(domain.AuditEntry) bool
}

// checkAuditFilters lists es (appended to s) through each filter in pages
// of several sizes: the entries kept, newest first, each once.
func checkAuditFilters(t *testing.T, s ports.Store, es []domain.AuditEntry, cases []auditFilterCase) {
	t.Helper()
	for _, tc := range cases {
		want := map[int64]time.Time{}
		for _, e := range es {
			if tc.keep(e) {
				want[e.ID] = e.At
			}
		}
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{1, 2, 3, 10} {
				got := walk(t, size, func(pg domain.Page) ([]domain.AuditEntry, error) {
					return s.Audit().List(ctx(t), tc.f, pg)
				}, func(e domain.AuditEntry) (time.Time, int64) { return e.At, e.ID })
				assert.Equal(t, newestFirst(want), append([]int64{}, got...), "pages of %d", size)
			}
		})
	}
}

func testAudit(t *testing.T, open Opener) {
	t.Run("head_and_verify_since", func(t *testing.T) {
		s := open(t)
		h, err := s.Audit().Head(ctx(t))
		require.NoError(t, err)
		assert.Equal(t, domain.AuditHead{}, h, "an empty chain")
		assert.Zero(t, requireIntact(t, s))

		es := []domain.AuditEntry{entry(1, 1, 1, at(1)), entry(2, 2, 2, at(2))}
		require.NoError(t, s.Audit().Append(ctx(t), es...))
		h, err = s.Audit().Head(ctx(t))
		require.NoError(t, err)
		assert.Equal(t, domain.AuditHead{ID: es[1].ID, Hash: es[1].Hash}, h)
		require.NoError(t, s.Audit().Append(ctx(t), entry(3, 3, 3, at(3))))
		assert.Equal(t, int64(3), requireIntact(t, s))

		for _, tc := range []struct {
			name  string
			since domain.AuditHead
			want  int64
		}{
			{"kept_head_still_there", h, 0},
			{"first_entry", domain.AuditHead{ID: es[0].ID, Hash: es[0].Hash}, 0},
			{"other_hash", domain.AuditHead{ID: h.ID, Hash: es[0].Hash}, h.ID},
			{"beyond_the_chain", domain.AuditHead{ID: 9, Hash: h.Hash}, 4},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, err := s.Audit().Verify(ctx(t), &tc.since)
				require.NoError(t, err)
				assert.Equal(t, domain.AuditCheck{Entries: 3, FirstBroken: tc.want}, c)
			})
		}
	})

	t.Run("append_chains", func(t *testing.T) {
		s := open(t)
		first := []domain.AuditEntry{entry(1, 10, 100, at(1)), entry(2, 20, 200, at(2))}
		require.NoError(t, s.Audit().Append(ctx(t), first...))
		third := entry(1, 0, 0, at(3))
		third.Action = domain.ActionRecordList
		batch := []domain.AuditEntry{third}
		require.NoError(t, s.Audit().Append(ctx(t), batch...))

		all := append(first, batch...)
		prev := ""
		for i, e := range all {
			assert.Equal(t, int64(i+1), e.ID)
			assert.Equal(t, prev, e.PrevHash)
			assert.Regexp(t, `^[0-9a-f]{64}$`, e.Hash)
			assert.NotEqual(t, prev, e.Hash)
			prev = e.Hash
		}
		got, err := s.Audit().List(ctx(t), ports.AuditFilter{}, domain.Page{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, []int64{3, 2, 1}, auditIDs(got))
		for i, g := range got {
			want := all[2-i]
			requireSameTime(t, want.At, g.At)
			g.At = want.At
			assert.Equal(t, want, g)
		}
		requireIntact(t, s)
	})

	// A flush of buffered reads appends hundreds at once: more entries
	// than any one statement of an adapter may take.
	t.Run("append_many_at_once", func(t *testing.T) {
		s := open(t)
		require.NoError(t, s.Audit().Append(ctx(t), entry(1, 1, 1, at(0))))
		many := make([]domain.AuditEntry, 150)
		for i := range many {
			many[i] = entry(int64(i%7+1), int64(i), int64(i%3), at(i+1))
		}
		require.NoError(t, s.Audit().Append(ctx(t), many...))
		got, err := s.Audit().List(ctx(t), ports.AuditFilter{}, domain.Page{Limit: 500})
		require.NoError(t, err)
		require.Len(t, got, 151)
		for i, e := range many {
			g := got[len(many)-1-i] // newest first
			assert.Equal(t, int64(i+2), e.ID)
			requireSameTime(t, e.At, g.At)
			g.At = e.At
			require.Equal(t, e, g)
		}
		requireIntact(t, s)
	})

	t.Run("empty_chain_verifies", func(t *testing.T) {
		s := open(t)
		requireIntact(t, s)
	})

	t.Run("list_filters_newest_first", func(t *testing.T) {
		s := open(t)
		// Appended out of time order (reads are written in batches later),
		// with ties on time: the list is by time, then id.
		es := []domain.AuditEntry{
			entry(1, 10, 100, at(5)), entry(1, 11, 100, at(3)), entry(2, 10, 100, at(3)),
			entry(2, 20, 200, at(4)), entry(1, 20, 200, at(3)), entry(3, 0, 0, at(6)),
		}
		es[1].Action, es[5].Action = domain.ActionRecordList, domain.ActionRecordList
		require.NoError(t, s.Audit().Append(ctx(t), es[:3]...))
		require.NoError(t, s.Audit().Append(ctx(t), es[3:]...))
		checkAuditFilters(t, s, es, []auditFilterCase{
			{"all", ports.AuditFilter{}, func(domain.AuditEntry) bool { return true }},
			{"actor", ports.AuditFilter{ActorID: 1}, func(e domain.AuditEntry) bool { return e.ActorID == 1 }},
			{"record", ports.AuditFilter{RecordID: 10}, func(e domain.AuditEntry) bool { return e.RecordID == 10 }},
			{"patient", ports.AuditFilter{PatientID: 200}, func(e domain.AuditEntry) bool { return e.PatientID == 200 }},
			{"actor_and_patient", ports.AuditFilter{ActorID: 1, PatientID: 100}, func(e domain.AuditEntry) bool {
				return e.ActorID == 1 && e.PatientID == 100
			}},
			{"action", ports.AuditFilter{Action: domain.ActionRecordList}, func(e domain.AuditEntry) bool {
				return e.Action == domain.ActionRecordList
			}},
			{"action_and_actor", ports.AuditFilter{Action: domain.ActionRecordRead, ActorID: 2}, func(e domain.AuditEntry) bool {
				return e.Action == domain.ActionRecordRead && e.ActorID == 2
			}},
		})
	})

	// A list leaves one entry per record it showed, alike but for record
	// and patient; stores may keep such entries together, and must still
	// list, filter, page and verify them one by one.
	t.Run("list_entries_one_per_record", func(t *testing.T) {
		s := open(t)
		shown := func(actor int64, when time.Time, recs ...int64) []domain.AuditEntry {
			es := make([]domain.AuditEntry, len(recs))
			for i, r := range recs {
				es[i] = entry(actor, r, r/10, when)
				es[i].Action = domain.ActionRecordList
			}
			return es
		}
		var es []domain.AuditEntry
		es = append(es, entry(1, 11, 1, at(1)))
		es = append(es, shown(1, at(2), 13, 12, 11)...)     // one patient's list
		es = append(es, shown(9, at(2), 21, 11, 32, 22)...) // a doctor's, three patients, same time
		es = append(es, entry(9, 0, 0, at(3)))              // a security event
		es = append(es, shown(9, at(1), 32)...)             // a late flush: earlier time
		es = append(es, shown(1, at(4), 11, 12, 13, 14, 15)...)
		require.NoError(t, s.Audit().Append(ctx(t), es[:6]...))
		require.NoError(t, s.Audit().Append(ctx(t), es[6:]...))
		for i, e := range es {
			require.Equal(t, int64(i+1), e.ID)
		}
		checkAuditFilters(t, s, es, []auditFilterCase{
			{"all", ports.AuditFilter{}, func(domain.AuditEntry) bool { return true }},
			{"record", ports.AuditFilter{RecordID: 11}, func(e domain.AuditEntry) bool { return e.RecordID == 11 }},
			{"patient", ports.AuditFilter{PatientID: 2}, func(e domain.AuditEntry) bool { return e.PatientID == 2 }},
			{"record_and_patient", ports.AuditFilter{RecordID: 32, PatientID: 3}, func(e domain.AuditEntry) bool { return e.RecordID == 32 }},
			{"record_of_another_patient", ports.AuditFilter{RecordID: 32, PatientID: 1}, func(domain.AuditEntry) bool { return false }},
			{"actor_and_record", ports.AuditFilter{ActorID: 9, RecordID: 11}, func(e domain.AuditEntry) bool {
				return e.ActorID == 9 && e.RecordID == 11
			}},
			{"actor_and_patient", ports.AuditFilter{ActorID: 1, PatientID: 1}, func(e domain.AuditEntry) bool {
				return e.ActorID == 1 && e.PatientID == 1
			}},
			{"action", ports.AuditFilter{Action: domain.ActionRecordList}, func(e domain.AuditEntry) bool {
				return e.Action == domain.ActionRecordList
			}},
		})
		// Each entry comes back whole, hashes included.
		got, err := s.Audit().List(ctx(t), ports.AuditFilter{}, domain.Page{Limit: 100})
		require.NoError(t, err)
		byID := map[int64]domain.AuditEntry{}
		for _, g := range got {
			byID[g.ID] = g
		}
		for _, e := range es {
			g := byID[e.ID]
			requireSameTime(t, e.At, g.At)
			g.At = e.At
			assert.Equal(t, e, g)
		}
		h, err := s.Audit().Head(ctx(t))
		require.NoError(t, err)
		assert.Equal(t, domain.AuditHead{ID: es[len(es)-1].ID, Hash: es[len(es)-1].Hash}, h)
		assert.Equal(t, int64(len(es)), requireIntact(t, s))
		for _, e := range es { // a head kept at any entry, even inside a list's, is found
			c, err := s.Audit().Verify(ctx(t), &domain.AuditHead{ID: e.ID, Hash: e.Hash})
			require.NoError(t, err)
			assert.True(t, c.OK(), "kept head %d: broken at %d", e.ID, c.FirstBroken)
		}
		n, err := s.Counts(ctx(t))
		require.NoError(t, err)
		assert.Equal(t, int64(len(es)), n.AuditEntries)
	})

	// A record rarely shown among its patient's many lists: its entries
	// are found however many of the patient's entries do not name it.
	t.Run("record_among_many_of_its_patient", func(t *testing.T) {
		s := open(t)
		var es []domain.AuditEntry
		for r := int64(11); r <= 15; r++ {
			c := entry(1, r, 1, at(0))
			c.Action = domain.ActionRecordCreate
			es = append(es, c)
		}
		for i := range 300 {
			for r := int64(11); r <= 14; r++ { // one list: records 11-14
				e := entry(1, r, 1, at(i+1))
				e.Action = domain.ActionRecordList
				es = append(es, e)
			}
			if i%70 == 0 {
				es = append(es, entry(2, 15, 1, at(i+1)))
			}
		}
		require.NoError(t, s.Audit().Append(ctx(t), es...))
		want := map[int64]time.Time{}
		for _, e := range es {
			if e.RecordID == 15 {
				want[e.ID] = e.At
			}
		}
		for _, size := range []int{1, 2, 5, 50} {
			got := walk(t, size, func(pg domain.Page) ([]domain.AuditEntry, error) {
				return s.Audit().List(ctx(t), ports.AuditFilter{RecordID: 15}, pg)
			}, func(e domain.AuditEntry) (time.Time, int64) { return e.At, e.ID })
			assert.Equal(t, newestFirst(want), got, "pages of %d", size)
		}
	})

	t.Run("rolled_back_append_leaves_no_gap", func(t *testing.T) {
		s := open(t)
		boom := errors.New("boom")
		err := s.WithinTx(ctx(t), func(tx ports.Repos) error {
			require.NoError(t, tx.Audit().Append(ctx(t), entry(1, 1, 1, at(1))))
			return boom
		})
		require.ErrorIs(t, err, boom)
		e := []domain.AuditEntry{entry(1, 1, 1, at(2))}
		require.NoError(t, s.Audit().Append(ctx(t), e...))
		assert.Equal(t, int64(1), e[0].ID)
		requireIntact(t, s)
	})

	// The operator's verify and the app's appends run at once.
	t.Run("verify_while_appending", func(t *testing.T) {
		s := open(t)
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			wg.Go(func() { errs <- s.Audit().Append(ctx(t), entry(int64(i+1), 1, 1, at(i))) })
			wg.Go(func() {
				c, err := s.Audit().Verify(ctx(t), nil)
				if err == nil && !c.OK() {
					err = fmt.Errorf("broken at %d while appending", c.FirstBroken)
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		assert.Equal(t, int64(n), requireIntact(t, s))
	})

	t.Run("concurrent_appends_keep_one_chain", func(t *testing.T) {
		s := open(t)
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() { errs <- s.Audit().Append(ctx(t), entry(int64(i+1), 1, 1, at(i))) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		got, err := s.Audit().List(ctx(t), ports.AuditFilter{}, domain.Page{Limit: 100})
		require.NoError(t, err)
		assert.Len(t, got, n)
		requireIntact(t, s)
	})
}
