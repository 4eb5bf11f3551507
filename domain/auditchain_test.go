package domain_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

// chain is five linked entries, the head and its MAC.
func chain(t *testing.T, h *domain.AuditHasher) ([]domain.AuditEntry, domain.AuditHead, string) {
	t.Helper()
	es := make([]domain.AuditEntry, 5)
	for i := range es {
		es[i] = domain.AuditEntry{At: time.Unix(int64(i), 0).UTC(), ActorID: 1, ActorRole: domain.RolePatient,
			Action: domain.ActionRecordRead, RecordID: 9, PatientID: 1, Outcome: domain.OutcomeAllowed}
	}
	head, _ := h.Link(domain.AuditHead{}, es[:2])
	head, mac := h.Link(head, es[2:])
	require.Equal(t, domain.AuditHead{ID: 5, Hash: es[4].Hash}, head)
	for i, e := range es {
		require.Equal(t, int64(i+1), e.ID)
		if i > 0 {
			require.Equal(t, es[i-1].Hash, e.PrevHash, "linked across calls")
		}
	}
	return es, head, mac
}

func walk(h *domain.AuditHasher, es []domain.AuditEntry, head domain.AuditHead, mac string, since *domain.AuditHead) domain.AuditCheck {
	w := h.Walk(since)
	for _, e := range es {
		w.Next(e)
	}
	return w.End(head, mac)
}

func TestAuditWalk_FindsTheFirstBreak(t *testing.T) {
	h := domain.NewAuditHasher(domain.AuditKey(bytes.Repeat([]byte{1}, 32)))
	for _, tc := range []struct {
		name   string
		tamper func(es []domain.AuditEntry, head *domain.AuditHead, mac *string) []domain.AuditEntry
		want   int64
	}{
		{"intact", func(es []domain.AuditEntry, _ *domain.AuditHead, _ *string) []domain.AuditEntry { return es }, 0},
		{"edited_entry", func(es []domain.AuditEntry, _ *domain.AuditHead, _ *string) []domain.AuditEntry {
			es[2].Action = domain.ActionRecordDelete
			return es
		}, 3},
		{"deleted_middle", func(es []domain.AuditEntry, _ *domain.AuditHead, _ *string) []domain.AuditEntry {
			return slices.Delete(es, 2, 3)
		}, 4},
		{"deleted_tail", func(es []domain.AuditEntry, _ *domain.AuditHead, _ *string) []domain.AuditEntry { return es[:3] }, 5},
		{"deleted_all", func([]domain.AuditEntry, *domain.AuditHead, *string) []domain.AuditEntry { return nil }, 5},
		{"head_moved_back_without_the_key", func(es []domain.AuditEntry, head *domain.AuditHead, _ *string) []domain.AuditEntry {
			*head = domain.AuditHead{ID: 4, Hash: es[3].Hash}
			return es[:4]
		}, 4},
		{"head_mac_erased", func(es []domain.AuditEntry, _ *domain.AuditHead, mac *string) []domain.AuditEntry {
			*mac = ""
			return es
		}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, head, mac := chain(t, h)
			es = tc.tamper(es, &head, &mac)
			c := walk(h, es, head, mac, nil)
			assert.Equal(t, tc.want, c.FirstBroken)
			assert.Equal(t, int64(len(es)), c.Entries)
		})
	}

	t.Run("empty_chain_never_written", func(t *testing.T) {
		assert.Equal(t, domain.AuditCheck{}, walk(h, nil, domain.AuditHead{}, "", nil))
	})
	t.Run("since", func(t *testing.T) {
		es, head, mac := chain(t, h)
		kept := domain.AuditHead{ID: 3, Hash: es[2].Hash}
		assert.Zero(t, walk(h, es, head, mac, &kept).FirstBroken, "still in the chain")
		other := domain.AuditHead{ID: 3, Hash: es[1].Hash}
		assert.Equal(t, int64(3), walk(h, es, head, mac, &other).FirstBroken, "another chain")
		beyond := domain.AuditHead{ID: 9, Hash: head.Hash}
		assert.Equal(t, int64(6), walk(h, es, head, mac, &beyond).FirstBroken, "a tail cut and re-grown")
	})
}

// Entries a store keeps together break at the first of them, wherever the
// change is; entries kept apart still break at the one changed; a check
// of the store's own marks the chain too, unless it broke earlier.
func TestAuditWalk_GroupsBreakAtTheirFirst(t *testing.T) {
	h := domain.NewAuditHasher(bytes.Repeat([]byte{7}, domain.MinAuditKeyLen))
	es, head, mac := chain(t, h)
	run := func(edit int, marks ...int64) domain.AuditCheck {
		cp := slices.Clone(es)
		if edit > 0 {
			cp[edit-1].Hash = "beef"
		}
		w := h.Walk(nil)
		w.Next(cp[0])
		w.NextGroup(cp[1:4]) // entries 2–4 kept together
		for _, id := range marks {
			w.Broken(id)
		}
		w.Next(cp[4])
		return w.End(head, mac)
	}
	assert.Equal(t, domain.AuditCheck{Entries: 5}, run(0))
	assert.Equal(t, int64(2), run(3).FirstBroken, "a change inside the group")
	assert.Equal(t, int64(2), run(4).FirstBroken, "a change at its last")
	assert.Equal(t, int64(1), run(1).FirstBroken, "before the group")
	assert.Equal(t, int64(5), run(0, 5).FirstBroken, "a store's own check")
	assert.Equal(t, int64(2), run(3, 5).FirstBroken, "an earlier break stays the first")
}
