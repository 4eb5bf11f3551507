package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"healthrecord/domain"
)

// auditPending is what a write transaction's appends left to write: the
// chain's head as they moved it, and their entries. The appends of one
// transaction (every unit of a batch) chain from it instead of each
// reading and rewriting the audit_head row, and their entries go in
// together, in one statement, with the batch's COMMIT (queueAudit). Each
// append still links its entries at once, so ids and hashes are set when
// it returns. A unit undone to its savepoint restores the state it found,
// written marks included: rows written during the unit were undone with
// it and are written again.
type auditPending struct {
	head      domain.AuditHead
	mac       string
	headMoved bool // since the head row was last written
	rows      []domain.AuditEntry
	wrote     int // rows[:wrote] are in the table already
}

// snapshot is a copy to restore after a rollback to a savepoint; rows is
// only ever appended to past the copy's length.
func (p *auditPending) snapshot() *auditPending {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// auditState is the transaction's pending audit, begun from the head row
// on first use. The writer lock keeps the row as read until commit.
func (t *txn) auditState(ctx context.Context) (*auditPending, error) {
	if t.audit != nil {
		return t.audit, nil
	}
	p := &auditPending{}
	if err := t.QueryRow(ctx, `SELECT last_id, last_hash FROM audit_head WHERE one = 1`).
		Scan(&p.head.ID, &p.head.Hash); err != nil {
		return nil, err
	}
	t.audit = p
	return p, nil
}

// syncAudit writes what is pending, for a statement that reads the audit
// tables inside the transaction; t nil (no transaction) has nothing.
func syncAudit(ctx context.Context, t *txn) error {
	if t == nil || t.audit == nil {
		return nil
	}
	b := &pgx.Batch{}
	queueAuditRows(b, t.audit)
	if b.Len() == 0 {
		return nil
	}
	br := t.SendBatch(ctx, b)
	var err error
	for range b.Len() {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		t.audit.wrote, t.audit.headMoved = len(t.audit.rows), false
	}
	return err
}

// releaseAudit writes what is pending and forgets the state, for a
// statement that rewrites the head row itself.
func releaseAudit(ctx context.Context, t *txn) error {
	err := syncAudit(ctx, t)
	t.audit = nil
	return err
}

// queueAudit queues the writing of what t's appends left pending, for the
// batch's commit.
func (db *DB) queueAudit(b *pgx.Batch, t *txn) {
	if t.audit != nil {
		queueAuditRows(b, t.audit)
	}
}

// insertAudit inserts the entries given column by column: one statement,
// however many.
const insertAudit = `INSERT INTO audit (` + auditCols + `)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])`

// queueAuditRows queues p's unwritten rows and its moved head.
func queueAuditRows(b *pgx.Batch, p *auditPending) {
	if rows := p.rows[p.wrote:]; len(rows) > 0 {
		n := len(rows)
		ids, ats, actors, records, patients := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		roles, actions, outcomes, requests, addrs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		prevs, hashes := make([]string, n), make([]string, n)
		for i, e := range rows {
			ids[i], ats[i], actors[i], records[i], patients[i] = e.ID, toNanos(e.At), e.ActorID, e.RecordID, e.PatientID
			roles[i], actions[i], outcomes[i], requests[i], addrs[i] = string(e.ActorRole), e.Action, e.Outcome, e.RequestID, e.RemoteAddr
			prevs[i], hashes[i] = e.PrevHash, e.Hash
		}
		b.Queue(insertAudit, ids, ats, actors, roles, actions, records, patients, outcomes, requests, addrs, prevs, hashes)
	}
	if p.headMoved {
		b.Queue(`UPDATE audit_head SET last_id = $1, last_hash = $2, head_mac = $3 WHERE one = 1`, p.head.ID, p.head.Hash, p.mac)
	}
}
