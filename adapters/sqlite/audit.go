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

// audit implements ports.Audit.
type audit struct{ s scope }

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
	err := r.s.atomic(ctx, func(s scope) error {
		var lastID int64
		var lastHash string
		if err := s.reader().QueryRowContext(ctx, `SELECT last_id, last_hash FROM audit_head WHERE one = 1`).
			Scan(&lastID, &lastHash); err != nil {
			return err
		}
		// Several rows per INSERT: a read burst flushes hundreds of entries,
		// and each statement has a fixed cost beside its row's.
		for rest := entries; len(rest) > 0; {
			chunk := rest[:min(len(rest), auditRowsPerInsert)]
			rest = rest[len(chunk):]
			args := make([]any, 0, auditColCount*len(chunk))
			for i := range chunk {
				e := &chunk[i]
				e.At = fromNanos(toNanos(e.At)) // exactly what is stored, and hashed
				e.ID, e.PrevHash = lastID+1, lastHash
				e.Hash = e.ChainHash(e.PrevHash)
				args = append(args, e.ID, toNanos(e.At), e.ActorID, string(e.ActorRole), e.Action, e.RecordID, e.PatientID,
					e.Outcome, e.RequestID, e.RemoteAddr, e.PrevHash, e.Hash)
				lastID, lastHash = e.ID, e.Hash
			}
			if _, err := s.writer().ExecContext(ctx, auditInserts[len(chunk)], args...); err != nil {
				return err
			}
		}
		_, err := s.writer().ExecContext(ctx, `UPDATE audit_head SET last_id = ?, last_hash = ? WHERE one = 1`, lastID, lastHash)
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
	rows, err := r.s.reader().QueryContext(ctx,
		`SELECT `+auditCols+` FROM audit`+w.String()+` ORDER BY at DESC, id DESC LIMIT ?`,
		append(w.args, limit(p))...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	defer rows.Close()
	out := []domain.AuditEntry{}
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list audit: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	return out, nil
}

// Verify streams the chain in id order inside one read transaction, so the
// rows and the head are one snapshot, in constant memory. An edited entry
// breaks at itself (its hash) or at the next one (its link); a deleted
// entry breaks at the next one; a deleted tail breaks at the head's last id.
func (r audit) Verify(ctx context.Context) (int64, error) {
	var broken int64
	err := r.readTx(ctx, func(q querier) error {
		rows, err := q.QueryContext(ctx, `SELECT `+auditCols+` FROM audit ORDER BY id`)
		if err != nil {
			return err
		}
		var lastID int64
		var lastHash string
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				rows.Close()
				return err
			}
			if e.ID != lastID+1 || e.PrevHash != lastHash || e.Hash != e.ChainHash(e.PrevHash) {
				broken = e.ID
				break
			}
			lastID, lastHash = e.ID, e.Hash
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil || broken != 0 {
			return err
		}
		var headID int64
		var headHash string
		err = q.QueryRowContext(ctx, `SELECT last_id, last_hash FROM audit_head WHERE one = 1`).Scan(&headID, &headHash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if headID != lastID || headHash != lastHash {
			broken = max(headID, lastID, 1)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: verify audit: %w", err)
	}
	return broken, nil
}

// readTx runs fn in one read transaction: the caller's, or a deferred one
// on the read pool, which takes no write lock.
func (r audit) readTx(ctx context.Context, fn func(q querier) error) error {
	if r.s.tx != nil {
		return fn(r.s.tx)
	}
	tx, err := r.s.db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to lose
	return fn(tx)
}
