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
	return a.r.write(ctx, "Audit.Append", func(t *Tables) error {
		for i := range entries {
			entries[i].At = stamp(entries[i].At) // exactly what is stored, and hashed
		}
		head, mac := a.r.s.hasher().Link(t.head, entries)
		t.Audit = append(t.Audit, entries...)
		t.head, t.headMAC = head, mac
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
		h = t.head
		return nil
	})
	return h, err
}

// Verify walks the chain with the domain's rules (domain.AuditWalk).
func (a audit) Verify(ctx context.Context, since *domain.AuditHead) (domain.AuditCheck, error) {
	var c domain.AuditCheck
	err := a.r.read(ctx, "Audit.Verify", func(t *Tables) error {
		w := a.r.s.hasher().Walk(since)
		for _, e := range t.Audit {
			w.Next(e)
		}
		c = w.End(t.head, t.headMAC)
		return nil
	})
	return c, err
}
