package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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
	"request_id, remote_addr, prev_hash, hash, n, more"

// auditColCount is the number of auditCols.
const auditColCount = 14

// auditRowsPerInsert bounds the rows of one INSERT (SQLite allows 32,766
// parameters; the statement cache keeps one statement per row count).
const auditRowsPerInsert = 32

// auditInserts[n] inserts n rows; auditRefInserts[n] n index rows.
var auditInserts, auditRefInserts = multiRowInserts("audit ("+auditCols+")", auditColCount),
	multiRowInserts("audit_users (user_id, at, id)", 3)

func multiRowInserts(into string, cols int) (q [auditRowsPerInsert + 1]string) {
	row := "(" + placeholders(cols) + ")"
	for n := 1; n <= auditRowsPerInsert; n++ {
		q[n] = "INSERT INTO " + into + " VALUES " + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
	}
	return q
}

func scanAudit(sc scanner) (auditRow, error) {
	var r auditRow
	e := &r.first
	var at int64
	var role string
	err := sc.Scan(&e.ID, &at, &e.ActorID, &role, &e.Action, &e.RecordID, &e.PatientID, &e.Outcome,
		&e.RequestID, &e.RemoteAddr, &e.PrevHash, &e.Hash, &r.n, &r.more)
	e.At, e.ActorRole = fromNanos(at), domain.Role(role)
	if err == nil && (r.n < 1 || r.n > maxAuditGroup) {
		err = errBadGroup
	}
	return r, err
}

// Append chains entries to the head in one transaction: ids are the head's
// id plus one, and the head moves with them, so a deleted tail is visible
// (rows and head are written as the transaction commits: see
// auditPending). The entries' ID, PrevHash and Hash are set in place.
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
		p, err := in.auditState(ctx)
		if err != nil {
			return err
		}
		for i := range entries {
			entries[i].At = fromNanos(toNanos(entries[i].At)) // exactly what is stored, and hashed
		}
		p.head, p.mac = h.Link(p.head, entries)
		p.headMoved = true
		from := len(p.rows)
		p.rows = groupAudit(p.rows, entries)
		for _, row := range p.rows[from:] {
			start := int(row.first.ID - entries[0].ID)
			p.refs = row.appendRefs(p.refs, entries[start:start+row.n])
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: append audit: %w", err)
	}
	return nil
}

// insertChunks inserts vs with the multi-row statements qs, at most
// auditRowsPerInsert rows per statement.
func insertChunks[T any](ctx context.Context, in repos, qs [auditRowsPerInsert + 1]string, vs []T, args func([]any, T) []any) error {
	var a []any // one for every chunk: a full one holds hundreds of arguments
	for rest := vs; len(rest) > 0; {
		chunk := rest[:min(len(rest), auditRowsPerInsert)]
		rest = rest[len(chunk):]
		a = a[:0]
		for _, v := range chunk {
			a = args(a, v)
		}
		if _, err := in.writes().ExecContext(ctx, qs[len(chunk)], a...); err != nil {
			return err
		}
	}
	return nil
}

// List reads whole rows newest first from the index that fits the filter
// and expands them, keeping the entries that match, until the page is
// full. Entries of one row share their time, so the order is (at, id)
// across rows and within them. A record's entries are found among its
// patient's (a record never changes patient; its patient is on its
// record.create entry); a record whose creation is not on file is
// searched for in the whole trail. Actors and patients are found through
// audit_users.
func (r audit) List(ctx context.Context, f ports.AuditFilter, p domain.Page) ([]domain.AuditEntry, error) {
	if err := r.in.syncAudit(ctx); err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	patient := f.PatientID
	if f.RecordID != 0 && patient == 0 {
		err := r.in.reads().QueryRowContext(ctx, `SELECT patient_id FROM audit
			WHERE action = '`+domain.ActionRecordCreate+`' AND record_id = ? LIMIT 1`, f.RecordID).Scan(&patient)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlite: list audit: %w", err)
		}
	}
	var w where
	from, at, id := " FROM audit a", "a.at", "a.id"
	if user := cmp.Or(patient, f.ActorID); user != 0 {
		from, at, id = " FROM audit_users f JOIN audit a ON a.id = f.id", "f.at", "f.id"
		w.add("f.user_id = ?", user)
	}
	if f.ActorID != 0 {
		w.add("a.actor_id = ?", f.ActorID)
	}
	if f.Action != "" {
		w.add("a.action = ?", f.Action)
	}
	size := limit(p)
	// Without a record or patient filter every row found holds a matching
	// entry, so a page needs its size in rows, plus the row the cursor
	// points into; with one, rows are read in batches until the page is
	// full (a row found by its user may name it as actor, not patient).
	batch := size + 1
	if f.RecordID != 0 || f.PatientID != 0 {
		batch = max(batch, 64)
	}
	h := r.in.db.auditHasher()
	out := []domain.AuditEntry{}
	after := p.After
	for {
		q := where{conds: slices.Clone(w.conds), args: slices.Clone(w.args)}
		if after != nil {
			q.after(domain.Page{After: after}, at, id)
		}
		rows, err := queryAll(ctx, r.in.reads(), scanAudit,
			`SELECT `+prefixed("a.", auditCols)+from+q.String()+` ORDER BY `+at+` DESC, `+id+` DESC LIMIT ?`,
			append(q.args, batch)...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list audit: %w", err)
		}
		for _, row := range rows {
			es, err := row.entries(h)
			if err != nil {
				return nil, fmt.Errorf("sqlite: list audit: entry %d: %w", row.first.ID, err)
			}
			for i := len(es) - 1; i >= 0 && len(out) < size; i-- {
				e := es[i]
				if (f.RecordID != 0 && e.RecordID != f.RecordID) || (f.PatientID != 0 && e.PatientID != f.PatientID) ||
					(p.After != nil && !before(e, *p.After)) {
					continue
				}
				out = append(out, e)
			}
		}
		if len(out) >= size || len(rows) < batch {
			return out, nil
		}
		last := rows[len(rows)-1].first
		after = &domain.Cursor{CreatedAt: last.At, ID: last.ID}
	}
}

// before reports whether e comes after the cursor c in newest-first order.
func before(e domain.AuditEntry, c domain.Cursor) bool {
	at, cat := toNanos(e.At), toNanos(c.CreatedAt)
	return at < cat || (at == cat && e.ID < c.ID)
}

// prefixed qualifies each of the comma-separated columns with prefix.
func prefixed(prefix, cols string) string {
	return prefix + strings.ReplaceAll(cols, ", ", ", "+prefix)
}

func (r audit) Head(ctx context.Context) (domain.AuditHead, error) {
	if r.in.tx != nil {
		p, err := r.in.auditState(ctx)
		if err != nil {
			return domain.AuditHead{}, fmt.Errorf("sqlite: audit head: %w", err)
		}
		return p.head, nil
	}
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
// catches that one at the first entry missing. The index rows of
// audit_users are checked against the rows they index, read alongside in
// the same order, so that an access log cannot be emptied by deleting
// them.
func (r audit) Verify(ctx context.Context, since *domain.AuditHead) (domain.AuditCheck, error) {
	if err := r.in.syncAudit(ctx); err != nil {
		return domain.AuditCheck{}, fmt.Errorf("sqlite: verify audit: %w", err)
	}
	h := r.in.db.auditHasher()
	var c domain.AuditCheck
	err := r.readTx(ctx, func(q sqlRunner) error {
		refRows, err := q.QueryContext(ctx, `SELECT user_id, at, id FROM audit_users ORDER BY id, user_id`)
		if err != nil {
			return err
		}
		defer refRows.Close()
		refs := refReader{rows: refRows}
		rows, err := q.QueryContext(ctx, `SELECT `+auditCols+` FROM audit ORDER BY id`)
		if err != nil {
			return err
		}
		w := h.Walk(since)
		for rows.Next() {
			row, err := scanAudit(rows)
			if err != nil {
				rows.Close()
				return err
			}
			es, err := row.entries(h)
			if err != nil {
				w.Broken(row.first.ID)
				es = []domain.AuditEntry{row.first}
			}
			w.NextGroup(es)
			ok, err := refs.match(row.first.ID, row.refs(es))
			if err != nil {
				rows.Close()
				return err
			}
			if !ok {
				w.Broken(row.first.ID)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		orphan, err := refs.rest()
		if err != nil {
			return err
		}
		var head domain.AuditHead
		var headMAC string
		err = q.QueryRowContext(ctx, `SELECT last_id, last_hash, head_mac FROM audit_head WHERE one = 1`).Scan(&head.ID, &head.Hash, &headMAC)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		c = w.End(head, headMAC)
		if c.FirstBroken == 0 && orphan != 0 {
			c.FirstBroken = orphan // an index row naming no entry
		}
		return nil
	})
	if err != nil {
		return domain.AuditCheck{}, fmt.Errorf("sqlite: verify audit: %w", err)
	}
	return c, nil
}

// refReader reads audit_users in (id, user_id) order beside the rows.
type refReader struct {
	rows   *sql.Rows
	peeked *auditRef
	done   bool
}

func (r *refReader) next() (*auditRef, error) {
	if r.peeked != nil || r.done {
		return r.peeked, nil
	}
	if !r.rows.Next() {
		r.done = true
		return nil, r.rows.Err()
	}
	var f auditRef
	if err := r.rows.Scan(&f.user, &f.at, &f.id); err != nil {
		return nil, err
	}
	r.peeked = &f
	return r.peeked, nil
}

// match consumes the index rows up to row id and reports whether they
// are exactly want (sorted by user).
func (r *refReader) match(id int64, want []auditRef) (bool, error) {
	ok := true
	for {
		f, err := r.next()
		if err != nil {
			return false, err
		}
		if f == nil || f.id > id {
			return ok && len(want) == 0, nil
		}
		r.peeked = nil
		if f.id < id || len(want) == 0 || *f != want[0] {
			ok = false
			continue
		}
		want = want[1:]
	}
}

// rest is the id of an index row left after the last row, 0 when none.
func (r *refReader) rest() (int64, error) {
	f, err := r.next()
	if f == nil || err != nil {
		return 0, err
	}
	return f.id, nil
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
	if err := in.releaseAudit(ctx); err != nil { // the chain and head are read and rewritten below
		return err
	}
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

// auditBatches hands a chain not keyed yet (one entry a row) to fn in id
// order, rekeyBatch entries at a time, each batch read whole before fn runs (fn may write).
func auditBatches(ctx context.Context, in repos, fn func([]domain.AuditEntry) error) error {
	var after int64
	for {
		rows, err := queryAll(ctx, in.reads(), scanAudit,
			`SELECT `+auditCols+` FROM audit WHERE id > ? ORDER BY id LIMIT ?`, after, rekeyBatch)
		if err != nil || len(rows) == 0 {
			return err
		}
		es := make([]domain.AuditEntry, len(rows))
		for i, row := range rows {
			if row.n != 1 { // rows were grouped only after the chain was keyed
				return &LegacyChainError{FirstBroken: row.first.ID}
			}
			es[i] = row.first
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

// EachAuditEntry hands fn every entry of the chain in id order, as read
// in tx (a read transaction on this database's file, such as a copy's
// snapshot), each whole: rows that keep several entries are expanded
// under this database's key.
func (db *DB) EachAuditEntry(ctx context.Context, tx *sql.Tx, fn func(domain.AuditEntry) error) error {
	h := db.auditHasher()
	rows, err := tx.QueryContext(ctx, `SELECT `+auditCols+` FROM audit ORDER BY id`)
	if err != nil {
		return fmt.Errorf("sqlite: read audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		row, err := scanAudit(rows)
		if err != nil {
			return fmt.Errorf("sqlite: read audit: %w", err)
		}
		es, err := row.entries(h)
		if err != nil {
			return fmt.Errorf("sqlite: read audit: entry %d: %w", row.first.ID, err)
		}
		for _, e := range es {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return rows.Err()
}
