package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"healthrecord/domain"
	"healthrecord/ports"
)

// UseAuditKey keys the audit chain with key from now on; call it before
// the store is used. When rekey is set (the key was just made, so no chain
// can have been keyed under it before), a chain written before the chain
// was keyed is verified as revision 1's SHA-256 chain and re-keyed from
// its first entry, in one transaction; one that does not verify is
// refused with a *LegacyChainError instead of being laundered. Without
// rekey a chain not keyed yet is left alone, and fails verification.
func (db *DB) UseAuditKey(ctx context.Context, key domain.AuditKey, rekey bool) error {
	if len(key) < domain.MinAuditKeyLen {
		return fmt.Errorf("sqlite: audit key of %d bytes, at least %d needed", len(key), domain.MinAuditKeyLen)
	}
	k := append(domain.AuditKey(nil), key...)
	db.auditKey.Store(&k)
	if !rekey {
		return nil
	}
	return repos{db: db}.atomic(ctx, func(in repos) error { return rekeyAudit(ctx, in, db.auditHasher()) })
}

// auditHasher hashes under the current key; one per call, since a hasher
// is not safe for concurrent use.
func (db *DB) auditHasher() *domain.AuditHasher { return domain.NewAuditHasher(*db.auditKey.Load()) }

// audit implements ports.Audit.
type audit struct{ in repos }

const auditCols = "id, at, actor_id, actor_role, action, record_id, patient_id, outcome, " +
	"request_id, remote_addr, prev_hash, hash"

// auditColCount is the number of auditCols.
const auditColCount = 12

// auditRowsPerInsert bounds the rows of one INSERT (SQLite allows 32,766
// parameters; the statement cache keeps one statement per row count).
const auditRowsPerInsert = 32

// auditInserts[n] inserts n entries.
var auditInserts = func() (q [auditRowsPerInsert + 1]string) {
	row := "(" + placeholders(auditColCount) + ")"
	for n := 1; n <= auditRowsPerInsert; n++ {
		q[n] = "INSERT INTO audit (" + auditCols + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
	}
	return q
}()

func scanAudit(sc scanner) (domain.AuditEntry, error) {
	var e domain.AuditEntry
	var at int64
	var role string
	err := sc.Scan(&e.ID, &at, &e.ActorID, &role, &e.Action, &e.RecordID, &e.PatientID, &e.Outcome,
		&e.RequestID, &e.RemoteAddr, &e.PrevHash, &e.Hash)
	e.At, e.ActorRole = fromNanos(at), domain.Role(role)
	return e, err
}

// Append chains entries to the head in one transaction: ids are the head's
// id plus one, and the head moves with them, so a deleted tail is visible.
// The entries' ID, PrevHash and Hash are set in place.
func (r audit) Append(ctx context.Context, entries ...domain.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	for i := range entries {
		if entries[i].At.IsZero() {
			return errors.New("sqlite: audit entry without a time")
		}
	}
	h := r.in.db.auditHasher()
	err := r.in.atomic(ctx, func(in repos) error {
		var head domain.AuditHead
		if err := in.reads().QueryRowContext(ctx, `SELECT last_id, last_hash FROM audit_head WHERE one = 1`).
			Scan(&head.ID, &head.Hash); err != nil {
			return err
		}
		for i := range entries {
			entries[i].At = fromNanos(toNanos(entries[i].At)) // exactly what is stored, and hashed
		}
		head, mac := h.Link(head, entries)
		// Several rows per INSERT: a read burst flushes hundreds of entries,
		// and each statement has a fixed cost beside its row's.
		for rest := entries; len(rest) > 0; {
			chunk := rest[:min(len(rest), auditRowsPerInsert)]
			rest = rest[len(chunk):]
			args := make([]any, 0, auditColCount*len(chunk))
			for _, e := range chunk {
				args = append(args, e.ID, toNanos(e.At), e.ActorID, string(e.ActorRole), e.Action, e.RecordID, e.PatientID,
					e.Outcome, e.RequestID, e.RemoteAddr, e.PrevHash, e.Hash)
			}
			if _, err := in.writes().ExecContext(ctx, auditInserts[len(chunk)], args...); err != nil {
				return err
			}
		}
		_, err := in.writes().ExecContext(ctx, `UPDATE audit_head SET last_id = ?, last_hash = ?, head_mac = ? WHERE one = 1`,
			head.ID, head.Hash, mac)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: append audit: %w", err)
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
	out, err := queryAll(ctx, r.in.reads(), scanAudit,
		`SELECT `+auditCols+` FROM audit`+w.String()+` ORDER BY at DESC, id DESC LIMIT ?`,
		append(w.args, limit(p))...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	return out, nil
}

func (r audit) Head(ctx context.Context) (domain.AuditHead, error) {
	var h domain.AuditHead
	err := r.in.reads().QueryRowContext(ctx, `SELECT last_id, last_hash FROM audit_head WHERE one = 1`).Scan(&h.ID, &h.Hash)
	if err != nil {
		return domain.AuditHead{}, fmt.Errorf("sqlite: audit head: %w", err)
	}
	return h, nil
}

// Verify streams the chain in id order inside one read transaction, so the
// rows and the head are one snapshot, in constant memory. An edited entry
// breaks at itself (its hash) or at the next one (its link); a deleted
// entry breaks at the next one; a deleted tail breaks at the head's last
// id, and a head moved back to an earlier entry at that entry (its MAC),
// unless it is a head row saved earlier: since, a head kept outside,
// catches that one at the first entry missing.
func (r audit) Verify(ctx context.Context, since *domain.AuditHead) (domain.AuditCheck, error) {
	h := r.in.db.auditHasher()
	var c domain.AuditCheck
	err := r.readTx(ctx, func(q sqlRunner) error {
		rows, err := q.QueryContext(ctx, `SELECT `+auditCols+` FROM audit ORDER BY id`)
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
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		var head domain.AuditHead
		var headMAC string
		err = q.QueryRowContext(ctx, `SELECT last_id, last_hash, head_mac FROM audit_head WHERE one = 1`).Scan(&head.ID, &head.Hash, &headMAC)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		c = w.End(head, headMAC)
		return nil
	})
	if err != nil {
		return domain.AuditCheck{}, fmt.Errorf("sqlite: verify audit: %w", err)
	}
	return c, nil
}

// LegacyChainError is a chain written before the chain was keyed that does
// not verify as such: re-keying it would hide the break.
type LegacyChainError struct{ FirstBroken int64 }

func (e *LegacyChainError) Error() string {
	return fmt.Sprintf("sqlite: the audit trail written before it was keyed is broken at entry %d: "+
		"it was edited, or an entry before it was deleted; refusing to re-key it", e.FirstBroken)
}

// rekeyBatch is how many entries re-keying reads at a time.
const rekeyBatch = 512

// rekeyAudit verifies a chain not keyed yet as revision 1's SHA-256 chain,
// then re-hashes it under h from its first entry and keys the head, all in
// the caller's transaction. A keyed chain is left as it is.
func rekeyAudit(ctx context.Context, in repos, h *domain.AuditHasher) error {
	var headID int64
	var headHash, headMAC string
	var keyed bool
	err := in.reads().QueryRowContext(ctx, `SELECT last_id, last_hash, head_mac, keyed FROM audit_head WHERE one = 1`).
		Scan(&headID, &headHash, &headMAC, &keyed)
	if err != nil {
		return err
	}
	if keyed {
		if headID == 0 && headMAC == "" { // a new chain: key its head at once
			_, err = in.writes().ExecContext(ctx, `UPDATE audit_head SET head_mac = ? WHERE one = 1`, h.Head(0, ""))
		}
		return err
	}
	// Two passes in batches: verify all of the old chain before changing
	// any of it.
	var lastID int64
	var lastHash string
	err = auditBatches(ctx, in, func(es []domain.AuditEntry) error {
		for _, e := range es {
			if e.ID != lastID+1 || e.PrevHash != lastHash || e.Hash != e.LegacyChainHash(e.PrevHash) {
				return &LegacyChainError{FirstBroken: e.ID}
			}
			lastID, lastHash = e.ID, e.Hash
		}
		return nil
	})
	if err != nil {
		return err
	}
	if headID != lastID || headHash != lastHash {
		return &LegacyChainError{FirstBroken: max(headID, lastID, 1)}
	}
	prev := ""
	err = auditBatches(ctx, in, func(es []domain.AuditEntry) error {
		for _, e := range es {
			e.PrevHash, e.Hash = prev, h.Entry(e, prev)
			if _, err := in.writes().ExecContext(ctx, `UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?`, e.PrevHash, e.Hash, e.ID); err != nil {
				return err
			}
			prev = e.Hash
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = in.writes().ExecContext(ctx, `UPDATE audit_head SET last_hash = ?, head_mac = ?, keyed = 1 WHERE one = 1`,
		prev, h.Head(lastID, prev))
	return err
}

// auditBatches hands the chain to fn in id order, rekeyBatch entries at a
// time, each batch read whole before fn runs (fn may write).
func auditBatches(ctx context.Context, in repos, fn func([]domain.AuditEntry) error) error {
	var after int64
	for {
		es, err := queryAll(ctx, in.reads(), scanAudit,
			`SELECT `+auditCols+` FROM audit WHERE id > ? ORDER BY id LIMIT ?`, after, rekeyBatch)
		if err != nil || len(es) == 0 {
			return err
		}
		if err := fn(es); err != nil {
			return err
		}
		after = es[len(es)-1].ID
	}
}

// readTx runs fn in one read transaction: the caller's, or a deferred one
// on the read pool, which takes no write lock.
func (r audit) readTx(ctx context.Context, fn func(q sqlRunner) error) error {
	if r.in.tx != nil {
		return fn(r.in.tx)
	}
	tx, err := r.in.db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to lose
	return fn(tx)
}
