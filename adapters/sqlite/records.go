package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"healthrecord/domain"
	"healthrecord/ports"
)

// records implements ports.Records.
type records struct{ s scope }

const recordCols = "id, patient_id, doctor_id, title, content, created_at, updated_at"

func (r records) Create(ctx context.Context, rec *domain.Record) error {
	res, err := r.s.writer().ExecContext(ctx,
		`INSERT INTO records (patient_id, doctor_id, title, content, created_at, updated_at)
		 VALUES (?, ?, ?, ?, ?, ?)`,
		rec.PatientID, nullID(rec.DoctorID), rec.Title, rec.Content, toNanos(rec.CreatedAt), toNanos(rec.UpdatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: create record: %w", err)
	}
	if rec.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("sqlite: create record: %w", err)
	}
	return nil
}

func (r records) Get(ctx context.Context, id int64) (domain.Record, error) {
	if c := r.s.cache(); c != nil {
		var version int64
		err := r.s.reader().QueryRowContext(ctx, `SELECT version FROM records WHERE id = ?`, id).Scan(&version)
		if err != nil {
			return domain.Record{}, fmt.Errorf("sqlite: record %d: %w", id, notFoundIf(err))
		}
		if rec, ok := c.get(id, version); ok {
			return rec, nil
		}
	}
	recs, err := r.query(ctx,
		`SELECT `+joinedCols+` FROM records r LEFT JOIN comments c ON c.record_id = r.id
		 WHERE r.id = ? ORDER BY c.created_at, c.id`, id)
	if err != nil {
		return domain.Record{}, fmt.Errorf("sqlite: record %d: %w", id, err)
	}
	if len(recs) == 0 {
		return domain.Record{}, fmt.Errorf("sqlite: record %d: %w", id, domain.NotFound())
	}
	return recs[0], nil
}

func (r records) Update(ctx context.Context, rec domain.Record) error {
	err := mustChange(r.s.writer().ExecContext(ctx,
		`UPDATE records SET title = ?, content = ?, doctor_id = ?, updated_at = ? WHERE id = ?`,
		rec.Title, rec.Content, nullID(rec.DoctorID), toNanos(rec.UpdatedAt), rec.ID))
	if err != nil {
		return fmt.Errorf("sqlite: update record %d: %w", rec.ID, err)
	}
	return nil
}

// Delete removes the record; its comments go with it (ON DELETE CASCADE).
func (r records) Delete(ctx context.Context, id int64) error {
	if err := mustChange(r.s.writer().ExecContext(ctx, `DELETE FROM records WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("sqlite: delete record %d: %w", id, err)
	}
	return nil
}

// errNoRecordFilter refuses an unfiltered list: lists are filtered by the
// actor in SQL, and a forgotten filter must not show every record.
var errNoRecordFilter = errors.New("sqlite: record list needs a patient or a doctor")

func (r records) List(ctx context.Context, f ports.RecordFilter, p domain.Page) ([]domain.Record, error) {
	var w where
	if f.PatientID != 0 {
		w.add("patient_id = ?", f.PatientID)
	}
	if f.DoctorID != 0 {
		w.add("doctor_id = ?", f.DoctorID)
	}
	if len(w.conds) == 0 {
		return nil, errNoRecordFilter
	}
	w.after(p, "created_at", "id")
	args := append(w.args, limit(p))
	if c := r.s.cache(); c != nil {
		if recs, ok, err := r.listCached(ctx, c, w.String(), args); ok || err != nil {
			return recs, err
		}
	}
	// One statement: the page of records, joined with their comments
	// (oldest first within a record), instead of a second query per page.
	recs, err := r.query(ctx,
		`SELECT `+joinedCols+` FROM (SELECT `+recordCols+`, version FROM records`+w.String()+
			` ORDER BY created_at DESC, id DESC LIMIT ?) r
		 LEFT JOIN comments c ON c.record_id = r.id
		 ORDER BY r.created_at DESC, r.id DESC, c.created_at, c.id`,
		args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list records: %w", err)
	}
	return recs, nil
}

// listCached reads the page's (id, version) pairs from the index, takes
// the records the cache holds at those versions, and reads the others in
// one statement. ok is false when a record changed between the two
// statements: the caller then reads the page in one statement, so a page
// is never a mix of two moments (a record reassigned meanwhile must not
// be shown to the doctor it left).
func (r records) listCached(ctx context.Context, c *recordCache, where string, args []any) (recs []domain.Record, ok bool, err error) {
	rows, err := r.s.reader().QueryContext(ctx,
		`SELECT id, version FROM records`+where+` ORDER BY created_at DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: list records: %w", err)
	}
	type ref struct{ id, version int64 }
	var refs []ref
	for rows.Next() {
		var x ref
		if err := rows.Scan(&x.id, &x.version); err != nil {
			rows.Close()
			return nil, false, fmt.Errorf("sqlite: list records: %w", err)
		}
		refs = append(refs, x)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, false, fmt.Errorf("sqlite: list records: %w", err)
	}
	if listedHook != nil {
		listedHook()
	}
	recs = make([]domain.Record, len(refs))
	var missing []byte // a JSON array of ids, for json_each
	for i, x := range refs {
		var hit bool
		if recs[i], hit = c.get(x.id, x.version); !hit {
			missing = strconv.AppendInt(append(missing, ','), x.id, 10)
		}
	}
	if missing == nil {
		return recs, true, nil
	}
	missing[0] = '['
	fetched, versions, err := queryRecords(ctx, r.s.reader(),
		`SELECT `+joinedCols+` FROM records r LEFT JOIN comments c ON c.record_id = r.id
		 WHERE r.id IN (SELECT value FROM json_each(?)) ORDER BY r.id, c.created_at, c.id`,
		string(append(missing, ']')))
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: list records: %w", err)
	}
	byID := make(map[int64]int, len(fetched))
	for j, rec := range fetched {
		byID[rec.ID] = j
		c.put(rec, versions[j])
	}
	for i, x := range refs {
		if recs[i].ID != 0 {
			continue
		}
		j, found := byID[x.id]
		if !found || versions[j] != x.version {
			return nil, false, nil
		}
		recs[i] = fetched[j]
	}
	return recs, true, nil
}

// listedHook, when set by a test, runs between listCached's two
// statements, where another writer may change a record.
var listedHook func()

// query reads records with queryRecords; reads through the read pool
// (committed data) refresh the cache.
func (r records) query(ctx context.Context, query string, args ...any) ([]domain.Record, error) {
	recs, versions, err := queryRecords(ctx, r.s.reader(), query, args...)
	if c := r.s.cache(); c != nil && err == nil {
		for i, rec := range recs {
			c.put(rec, versions[i])
		}
	}
	return recs, err
}

// joinedCols are a record's columns, its version and its comment's
// columns (NULL without one).
const joinedCols = "r.id, r.patient_id, r.doctor_id, r.title, r.content, r.created_at, r.updated_at, r.version, " +
	"c.id, c.doctor_id, c.comment, c.created_at"

// queryRecords reads records joined with their comments, one row per
// comment (or one row with NULL comment columns), grouped by record in
// the order the query gives, and each record's version.
func queryRecords(ctx context.Context, q querier, query string, args ...any) ([]domain.Record, []int64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	out, versions := []domain.Record{}, []int64(nil)
	for rows.Next() {
		var rec domain.Record
		var doctor, cID, cDoctor, cAt sql.NullInt64
		var cText sql.NullString
		var createdAt, updatedAt, version int64
		if err := rows.Scan(&rec.ID, &rec.PatientID, &doctor, &rec.Title, &rec.Content, &createdAt, &updatedAt, &version,
			&cID, &cDoctor, &cText, &cAt); err != nil {
			return nil, nil, err
		}
		if n := len(out); n == 0 || out[n-1].ID != rec.ID {
			rec.DoctorID, rec.CreatedAt, rec.UpdatedAt = doctor.Int64, fromNanos(createdAt), fromNanos(updatedAt)
			rec.Comments = []domain.Comment{}
			out = append(out, rec)
			versions = append(versions, version)
		}
		if cID.Valid {
			last := &out[len(out)-1]
			last.Comments = append(last.Comments, domain.Comment{
				ID: cID.Int64, RecordID: last.ID, DoctorID: cDoctor.Int64, Text: cText.String, CreatedAt: fromNanos(cAt.Int64),
			})
		}
	}
	return out, versions, rows.Err()
}

// StoredBytes reads the total the triggers of migration 00003 keep.
func (r records) StoredBytes(ctx context.Context, patientID int64) (int64, error) {
	var n int64
	err := r.s.reader().QueryRowContext(ctx, `SELECT stored_bytes FROM users WHERE id = ?`, patientID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: stored bytes of user %d: %w", patientID, notFoundIf(err))
	}
	return n, nil
}
