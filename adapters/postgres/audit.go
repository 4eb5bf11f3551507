package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"healthrecord/domain"
	"healthrecord/ports"
)

// audit implements ports.Audit.
type audit struct{ s scope }

const auditCols = "id, at, actor_id, actor_role, action, record_id, patient_id, outcome, " +
	"request_id, remote_addr, prev_hash, hash"

// auditColumns are auditCols for COPY.
var auditColumns = []string{"id", "at", "actor_id", "actor_role", "action", "record_id", "patient_id", "outcome",
	"request_id", "remote_addr", "prev_hash", "hash"}

// copyAudit is how many entries an append writes at once, with COPY,
// instead of leaving them for the commit's INSERT.
const copyAudit = 64

// copyAuditRows writes p's unwritten rows with COPY.
func copyAuditRows(ctx context.Context, t *txn, p *auditPending) error {
	rows := p.rows[p.wrote:]
	src := make([][]any, len(rows))
	for i, e := range rows {
		src[i] = []any{e.ID, toNanos(e.At), e.ActorID, string(e.ActorRole), e.Action, e.RecordID, e.PatientID,
			e.Outcome, e.RequestID, e.RemoteAddr, e.PrevHash, e.Hash}
	}
	if _, err := t.CopyFrom(ctx, pgx.Identifier{"audit"}, auditColumns, pgx.CopyFromRows(src)); err != nil {
		return err
	}
	p.wrote = len(p.rows)
	return nil
}

func scanAudit(row pgx.Row) (domain.AuditEntry, error) {
	var e domain.AuditEntry
	var at int64
	var role string
	err := row.Scan(&e.ID, &at, &e.ActorID, &role, &e.Action, &e.RecordID, &e.PatientID, &e.Outcome,
		&e.RequestID, &e.RemoteAddr, &e.PrevHash, &e.Hash)
	e.At, e.ActorRole = fromNanos(at), domain.Role(role)
	return e, err
}

// Append chains entries to the head of the transaction's pending audit
// (audithead.go): the batch's writer lock keeps the head row as read until
// commit, so appends from every instance queue on it and each sees the
// head the last one left; the entries are written with the batch's
// commit. The entries' ID, PrevHash and Hash are set in place.
func (r audit) Append(ctx context.Context, entries ...domain.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	for i := range entries {
		if entries[i].At.IsZero() {
			return errors.New("postgres: audit entry without a time")
		}
	}
	h := r.s.db.auditHasher()
	err := r.s.write(ctx, func(t *txn) error {
		p, err := t.auditState(ctx)
		if err != nil {
			return err
		}
		linked := append([]domain.AuditEntry(nil), entries...)
		for i := range linked {
			linked[i].At = fromNanos(toNanos(linked[i].At)) // exactly what is stored, and hashed
		}
		p.head, p.mac = h.Link(p.head, linked)
		p.headMoved = true
		p.rows = append(p.rows, linked...)
		if len(linked) >= copyAudit {
			// A read flush's hundreds of entries: COPY takes them faster
			// than one INSERT of arrays.
			if err := copyAuditRows(ctx, t, p); err != nil {
				return err
			}
		}
		copy(entries, linked)
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: append audit: %w", err)
	}
	return nil
}

func (r audit) List(ctx context.Context, f ports.AuditFilter, p domain.Page) ([]domain.AuditEntry, error) {
	var w where
	if f.ActorID != 0 {
		w.add("actor_id = ?", f.ActorID)
	}
	if f.RecordID != 0 {
		w.add("record_id = ?", f.RecordID)
	}
	if f.PatientID != 0 {
		w.add("patient_id = ?", f.PatientID)
	}
	if f.Action != "" {
		w.add("action = ?", f.Action)
	}
	w.after(p, "at", "id")
	if err := syncAudit(ctx, r.s.tx); err != nil {
		return nil, fmt.Errorf("postgres: list audit: %w", err)
	}
	out, err := collect(ctx, r.s.reader(), scanAudit,
		`SELECT `+auditCols+` FROM audit`+w.String()+` ORDER BY at DESC, id DESC LIMIT `+w.next(limit(p)), w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit: %w", err)
	}
	return out, nil
}

func (r audit) Head(ctx context.Context) (domain.AuditHead, error) {
	if err := syncAudit(ctx, r.s.tx); err != nil {
		return domain.AuditHead{}, fmt.Errorf("postgres: audit head: %w", err)
	}
	h, err := one(ctx, r.s.reader(), func(row pgx.Row) (domain.AuditHead, error) {
		var h domain.AuditHead
		return h, row.Scan(&h.ID, &h.Hash)
	}, `SELECT last_id, last_hash FROM audit_head WHERE one = 1`)
	if err != nil {
		return domain.AuditHead{}, fmt.Errorf("postgres: audit head: %w", err)
	}
	return h, nil
}

// Verify streams the chain in id order inside one repeatable-read
// snapshot, so the rows and the head are one moment, in constant memory.
func (r audit) Verify(ctx context.Context, since *domain.AuditHead) (domain.AuditCheck, error) {
	h := r.s.db.auditHasher()
	var c domain.AuditCheck
	err := r.s.db.readTx(ctx, r.s.tx, func(q querier) error {
		if err := syncAudit(ctx, r.s.tx); err != nil {
			return err
		}
		rows, err := q.Query(ctx, `SELECT `+auditCols+` FROM audit ORDER BY id`)
		if err != nil {
			return err
		}
		w := h.Walk(since)
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				rows.Close()
				return err
			}
			w.Next(e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var head domain.AuditHead
		var headMAC string
		err = q.QueryRow(ctx, `SELECT last_id, last_hash, head_mac FROM audit_head WHERE one = 1`).Scan(&head.ID, &head.Hash, &headMAC)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		c = w.End(head, headMAC)
		return nil
	})
	if err != nil {
		return domain.AuditCheck{}, fmt.Errorf("postgres: verify audit: %w", err)
	}
	return c, nil
}
