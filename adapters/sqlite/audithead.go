package sqlite

import (
	"context"

	"healthrecord/domain"
)

// auditPending is what a write transaction's appends left to write: the
// chain's head as they moved it, and their rows. The appends of one
// transaction (every unit of a group commit) chain from it instead of
// each reading and rewriting the audit_head row, and their rows go in
// together, several per INSERT, just before the transaction commits
// (writeAudit). Each append still links its entries at once, so ids and
// hashes are set when it returns. A unit rolled back to its savepoint
// restores the state it found, written marks included: rows written
// during the unit were rolled back with it and are written again.
type auditPending struct {
	head      domain.AuditHead
	mac       string
	headMoved bool // since the head row was last written
	rows      []auditRow
	refs      []auditRef
	// rows[:wroteRows] and refs[:wroteRefs] are in their tables already.
	wroteRows, wroteRefs int
}

// auditState is the transaction's pending audit, begun from the head row
// on first use.
func (in repos) auditState(ctx context.Context) (*auditPending, error) {
	if p := in.tx.audit; p != nil {
		return p, nil
	}
	p := &auditPending{}
	if err := in.reads().QueryRowContext(ctx, `SELECT last_id, last_hash FROM audit_head WHERE one = 1`).
		Scan(&p.head.ID, &p.head.Hash); err != nil {
		return nil, err
	}
	in.tx.audit = p
	return p, nil
}

// snapshot is a copy to restore after a rollback to a savepoint; the
// slices are only ever appended to past the copy's lengths.
func (p *auditPending) snapshot() *auditPending {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// syncAudit writes what is pending, for a statement that reads the audit
// tables inside the transaction.
func (in repos) syncAudit(ctx context.Context) error {
	if in.tx == nil {
		return nil
	}
	return writeAudit(ctx, in.db, in.tx)
}

// releaseAudit writes what is pending and forgets the state, for a
// statement that rewrites the head row itself.
func (in repos) releaseAudit(ctx context.Context) error {
	err := writeAudit(ctx, in.db, in.tx)
	in.tx.audit = nil
	return err
}

// writeAudit writes t's pending rows and moved head, if any.
func writeAudit(ctx context.Context, db *DB, t *writeTx) error {
	p := t.audit
	if p == nil {
		return nil
	}
	in := repos{db: db, tx: t}
	// Several rows per INSERT: a read burst flushes hundreds of entries, a
	// group commit one or more per unit, and each statement has a fixed
	// cost beside its rows'.
	err := insertChunks(ctx, in, auditInserts, p.rows[p.wroteRows:], func(args []any, row auditRow) []any {
		e := row.first
		return append(args, e.ID, toNanos(e.At), e.ActorID, string(e.ActorRole), e.Action, e.RecordID, e.PatientID,
			e.Outcome, e.RequestID, e.RemoteAddr, e.PrevHash, e.Hash, row.n, row.more)
	})
	if err != nil {
		return err
	}
	p.wroteRows = len(p.rows)
	err = insertChunks(ctx, in, auditRefInserts, p.refs[p.wroteRefs:], func(args []any, f auditRef) []any {
		return append(args, f.user, f.at, f.id)
	})
	if err != nil {
		return err
	}
	p.wroteRefs = len(p.refs)
	if !p.headMoved {
		return nil
	}
	_, err = in.writes().ExecContext(ctx,
		`UPDATE audit_head SET last_id = ?, last_hash = ?, head_mac = ? WHERE one = 1`, p.head.ID, p.head.Hash, p.mac)
	if err == nil {
		p.headMoved = false
	}
	return err
}
