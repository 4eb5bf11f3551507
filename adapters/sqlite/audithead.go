package sqlite

import (
	"context"

	"healthrecord/domain"
)

// auditHeadState is the audit chain's head as a write transaction has
// moved it. The appends of one transaction (every unit of a group commit)
// chain from it instead of each reading and rewriting the audit_head
// row, and the row is written once, just before the transaction commits
// (writeAuditHead). A unit rolled back to its savepoint restores the
// state it found.
type auditHeadState struct {
	head  domain.AuditHead
	mac   string
	dirty bool // moved since the row was last written
}

// auditHead is the head the transaction sees: its own state, else the
// row, read once.
func (in repos) auditHead(ctx context.Context) (domain.AuditHead, error) {
	if s := in.tx.auditHead; s != nil {
		return s.head, nil
	}
	var h domain.AuditHead
	if err := in.reads().QueryRowContext(ctx, `SELECT last_id, last_hash FROM audit_head WHERE one = 1`).
		Scan(&h.ID, &h.Hash); err != nil {
		return domain.AuditHead{}, err
	}
	in.tx.auditHead = &auditHeadState{head: h}
	return h, nil
}

// moveAuditHead records the head after an append; the row follows before
// commit.
func (in repos) moveAuditHead(h domain.AuditHead, mac string) {
	in.tx.auditHead = &auditHeadState{head: h, mac: mac, dirty: true}
}

// releaseAuditHead writes the moved head to its row and forgets it, for a
// statement that reads or writes the row itself.
func (in repos) releaseAuditHead(ctx context.Context) error {
	err := writeAuditHead(ctx, in.db, in.tx)
	in.tx.auditHead = nil
	return err
}

// writeAuditHead writes the head t moved, if it moved, to the row.
func writeAuditHead(ctx context.Context, db *DB, t *writeTx) error {
	s := t.auditHead
	if s == nil || !s.dirty {
		return nil
	}
	_, err := preparedTx{tx: t.Tx, c: db.writeStmts}.ExecContext(ctx,
		`UPDATE audit_head SET last_id = ?, last_hash = ?, head_mac = ? WHERE one = 1`, s.head.ID, s.head.Hash, s.mac)
	if err == nil {
		s.dirty = false
	}
	return err
}
