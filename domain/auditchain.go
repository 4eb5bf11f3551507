package domain

// The chain's rules, written once for every store: how entries are linked
// when appended, and how a chain read back in id order is verified.

// Link sets each entry's ID, PrevHash and Hash so that es follow the
// chain whose last entry is head, and returns the new head and its MAC.
// Entries must hold exactly what will be stored (times as the store
// keeps them): that is what is hashed.
func (h *AuditHasher) Link(head AuditHead, es []AuditEntry) (AuditHead, string) {
	for i := range es {
		e := &es[i]
		e.ID, e.PrevHash = head.ID+1, head.Hash
		e.Hash = h.Entry(*e, e.PrevHash)
		head = AuditHead{ID: e.ID, Hash: e.Hash}
	}
	return head, h.Head(head.ID, head.Hash)
}

// AuditWalk verifies a chain read entry by entry in id order: ids
// without gaps, each link and each hash, then the head the store keeps
// and its MAC, then that a head kept earlier (since) is still there.
type AuditWalk struct {
	h     *AuditHasher
	since *AuditHead
	last  AuditHead
	found bool
	check AuditCheck
}

// Walk starts verifying a chain; since, when not nil, is a head kept
// earlier that must still be in it.
func (h *AuditHasher) Walk(since *AuditHead) *AuditWalk {
	return &AuditWalk{h: h, since: since}
}

// Next takes the chain's next entry.
func (w *AuditWalk) Next(e AuditEntry) {
	w.check.Entries++
	if w.check.FirstBroken != 0 {
		return // count the rest
	}
	if e.ID != w.last.ID+1 || e.PrevHash != w.last.Hash || e.Hash != w.h.Entry(e, e.PrevHash) {
		w.check.FirstBroken = e.ID
		return
	}
	if w.since != nil && e.ID == w.since.ID {
		w.found = e.Hash == w.since.Hash
	}
	w.last = AuditHead{ID: e.ID, Hash: e.Hash}
}

// NextGroup takes the chain's next entries when a store keeps them
// together and recomputes the hashes between the first and the last
// rather than storing them: a break anywhere among them shows at the
// first, since which one was changed cannot be told.
func (w *AuditWalk) NextGroup(es []AuditEntry) {
	intact := w.check.FirstBroken == 0
	for _, e := range es {
		w.Next(e)
	}
	if intact && w.check.FirstBroken != 0 && len(es) > 0 {
		w.check.FirstBroken = es[0].ID
	}
}

// Broken marks the chain broken at id, unless it broke earlier: a check of
// the store's own (say, of an index kept beside the chain) failed there.
func (w *AuditWalk) Broken(id int64) {
	if w.check.FirstBroken == 0 {
		w.check.FirstBroken = id
	}
}

// End checks the head the store keeps and its MAC (a head never moved,
// with no MAC, stands for an empty chain) and returns the outcome. A
// deleted entry shows as a break at the entry after it; a truncated tail
// at the head, or at the first entry missing since the head kept.
func (w *AuditWalk) End(head AuditHead, mac string) AuditCheck {
	c := w.check
	if c.FirstBroken != 0 {
		return c
	}
	pristine := head == AuditHead{} && mac == ""
	if head != w.last || (!pristine && mac != w.h.Head(head.ID, head.Hash)) {
		c.FirstBroken = max(head.ID, w.last.ID, 1)
		return c
	}
	if w.since != nil && !w.found {
		c.FirstBroken = min(w.since.ID, w.last.ID+1)
	}
	return c
}
