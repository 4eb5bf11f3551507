package memstore

import (
	"context"
	"errors"
	"time"

	"healthrecord/domain"
	"healthrecord/ports"
)

// audit implements ports.Audit: the chain is keyed with the store's
// hasher and a keyed head, as in the SQLite adapter, so Verify finds an
// edited, deleted or truncated entry.
type audit struct{ r repos }

func (a audit) Append(ctx context.Context, entries ...domain.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	for i := range entries {
		if entries[i].At.IsZero() {
			return errors.New("memstore: audit entry without a time")
		}
	}
	h := a.r.s.hasher
	return a.r.write(ctx, "Audit.Append", func(t *Tables) error {
		id, prev := t.head.id, t.head.hash
		for i := range entries {
			e := &entries[i]
			e.At = stamp(e.At) // exactly what is stored, and hashed
			e.ID, e.PrevHash = id+1, prev
			e.Hash = h.Entry(*e, prev)
			t.Audit = append(t.Audit, *e)
			id, prev = e.ID, e.Hash
		}
		t.head = auditHead{id: id, hash: prev, mac: h.Head(id, prev)}
		return nil
	})
}

func (a audit) List(ctx context.Context, f ports.AuditFilter, p domain.Page) ([]domain.AuditEntry, error) {
	var out []domain.AuditEntry
	err := a.r.read(ctx, "Audit.List", func(t *Tables) error {
		for _, e := range t.Audit {
			if (f.ActorID == 0 || e.ActorID == f.ActorID) && (f.RecordID == 0 || e.RecordID == f.RecordID) &&
				(f.PatientID == 0 || e.PatientID == f.PatientID) && (f.Action == "" || e.Action == f.Action) {
				out = append(out, e)
			}
		}
		out = newestFirst(out, func(e domain.AuditEntry) (time.Time, int64) { return e.At, e.ID }, p)
		return nil
	})
	return out, err
}

func (a audit) Head(ctx context.Context) (domain.AuditHead, error) {
	var h domain.AuditHead
	err := a.r.read(ctx, "Audit.Head", func(t *Tables) error {
		h = domain.AuditHead{ID: t.head.id, Hash: t.head.hash}
		return nil
	})
	return h, err
}

// Verify walks the chain as the SQLite adapter does: ids without gaps,
// links and hashes, then the head and its MAC, then the kept head.
func (a audit) Verify(ctx context.Context, since *domain.AuditHead) (domain.AuditCheck, error) {
	h := a.r.s.hasher
	var c domain.AuditCheck
	err := a.r.read(ctx, "Audit.Verify", func(t *Tables) error {
		var lastID int64
		var lastHash string
		sinceFound := false
		for _, e := range t.Audit {
			c.Entries++
			if c.FirstBroken != 0 {
				continue // count the rest
			}
			if e.ID != lastID+1 || e.PrevHash != lastHash || e.Hash != h.Entry(e, e.PrevHash) {
				c.FirstBroken = e.ID
				continue
			}
			if since != nil && e.ID == since.ID {
				sinceFound = e.Hash == since.Hash
			}
			lastID, lastHash = e.ID, e.Hash
		}
		if c.FirstBroken != 0 {
			return nil
		}
		hd := t.head
		if hd.id != lastID || hd.hash != lastHash || (!hd.pristine && hd.mac != h.Head(hd.id, hd.hash)) {
			c.FirstBroken = max(hd.id, lastID, 1)
			return nil
		}
		if since != nil && !sinceFound {
			c.FirstBroken = min(since.ID, lastID+1)
		}
		return nil
	})
	return c, err
}
