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
type records struct{ in repos }

const recordCols = "id, patient_id, doctor_id, title, content, created_at, updated_at"

func (r records) Create(ctx context.Context, rec *domain.Record) error {
	id, err := insertedID(r.in.writes().ExecContext(ctx,
		`INSERT INTO records (patient_id, doctor_id, title, content, created_at, updated_at)
		 VALUES (?, ?, ?, ?, ?, ?)`,
		rec.PatientID, nullID(rec.DoctorID), rec.Title, rec.Content, toNanos(rec.CreatedAt), toNanos(rec.UpdatedAt)))
	if err != nil {
		return fmt.Errorf("sqlite: create record: %w", err)
	}
	rec.ID = id
	return nil
}

func (r records) Get(ctx context.Context, id int64) (domain.Record, error) {
	recs, _, err := r.byID(ctx, id)
	return oneRecord(id, recs, err)
}

// oneRecord is Get's answer from what byID read.
func oneRecord(id int64, recs []domain.Record, err error) (domain.Record, error) {
	if err != nil {
		return domain.Record{}, fmt.Errorf("sqlite: record %d: %w", id, err)
	}
	if len(recs) == 0 {
		return domain.Record{}, fmt.Errorf("sqlite: record %d: %w", id, domain.NotFound())
	}
	return recs[0], nil
}

func (r records) Update(ctx context.Context, rec domain.Record) error {
	err := mustChange(r.in.writes().ExecContext(ctx,
		`UPDATE records SET title = ?, content = ?, doctor_id = ?, updated_at = ? WHERE id = ?`,
		rec.Title, rec.Content, nullID(rec.DoctorID), toNanos(rec.UpdatedAt), rec.ID))
	if err != nil {
		return fmt.Errorf("sqlite: update record %d: %w", rec.ID, err)
	}
	return nil
}

// Delete removes the record; its comments go with it (ON DELETE CASCADE).
func (r records) Delete(ctx context.Context, id int64) error {
	if err := mustChange(r.in.writes().ExecContext(ctx, `DELETE FROM records WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("sqlite: delete record %d: %w", id, err)
	}
	return nil
}

// errNoRecordFilter refuses an unfiltered list: lists are filtered by the
// actor in SQL, and a forgotten filter must not show every record.
var errNoRecordFilter = errors.New("sqlite: record list needs a patient or a doctor")

func (r records) List(ctx context.Context, f ports.RecordFilter, p domain.Page) ([]domain.Record, error) {
	pg, err := pageOf(f, p)
	if err != nil {
		return nil, err
	}
	recs, _, err := r.page(ctx, pg)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list records: %w", err)
	}
	return recs, nil
}

// recordPage is one page of a list in SQL: its conditions (the filter and
// the cursor) and their arguments, the page size last.
type recordPage struct {
	where string
	args  []any
}

// pageOf is the page of records f and p ask for; an unfiltered list is
// refused.
func pageOf(f ports.RecordFilter, p domain.Page) (recordPage, error) {
	var w where
	if f.PatientID != 0 {
		w.add("patient_id = ?", f.PatientID)
	}
	if f.DoctorID != 0 {
		w.add("doctor_id = ?", f.DoctorID)
	}
	if len(w.conds) == 0 {
		return recordPage{}, errNoRecordFilter
	}
	w.after(p, "created_at", "id")
	return recordPage{where: w.String(), args: append(w.args, limit(p))}, nil
}

// The reads of records: byID, page and byIDs read records with their
// comments and versions, all through queryRecords; version and
// pageVersions read only the index, for the record cache.

// byID reads one record (none if it does not exist).
func (r records) byID(ctx context.Context, id int64) ([]domain.Record, []int64, error) {
	return queryRecords(ctx, r.in.reads(),
		`SELECT `+joinedCols+` FROM records r LEFT JOIN comments c ON c.record_id = r.id
		 WHERE r.id = ? ORDER BY c.created_at, c.id`, id)
}

// page reads a page in one statement: the page of records, joined with
// their comments (oldest first within a record), instead of a second
// query per page.
func (r records) page(ctx context.Context, pg recordPage) ([]domain.Record, []int64, error) {
	return queryRecords(ctx, r.in.reads(),
		`SELECT `+joinedCols+` FROM (SELECT `+recordCols+`, version FROM records`+pg.where+
			` ORDER BY created_at DESC, id DESC LIMIT ?) r
		 LEFT JOIN comments c ON c.record_id = r.id
		 ORDER BY r.created_at DESC, r.id DESC, c.created_at, c.id`,
		pg.args...)
}

// byIDs reads the records of ids, in id order, skipping those that do not
// exist.
func (r records) byIDs(ctx context.Context, ids []int64) ([]domain.Record, []int64, error) {
	list := []byte{'['} // a JSON array, for json_each
	for i, id := range ids {
		if i > 0 {
			list = append(list, ',')
		}
		list = strconv.AppendInt(list, id, 10)
	}
	return queryRecords(ctx, r.in.reads(),
		`SELECT `+joinedCols+` FROM records r LEFT JOIN comments c ON c.record_id = r.id
		 WHERE r.id IN (SELECT value FROM json_each(?)) ORDER BY r.id, c.created_at, c.id`,
		string(append(list, ']')))
}

// version reads a record's version.
func (r records) version(ctx context.Context, id int64) (int64, error) {
	var v int64
	err := r.in.reads().QueryRowContext(ctx, `SELECT version FROM records WHERE id = ?`, id).Scan(&v)
	return v, err
}

// recordRef is a record's id and version.
type recordRef struct{ id, version int64 }

// pageVersions reads the ids and versions of the records of a page. Each
// row is scanned into the same two variables: on the cached list's path a
// row costs no allocation of its own.
func (r records) pageVersions(ctx context.Context, pg recordPage) ([]recordRef, error) {
	var x recordRef
	dest := []any{&x.id, &x.version}
	return queryAll(ctx, r.in.reads(), func(sc scanner) (recordRef, error) {
		err := sc.Scan(dest...)
		return x, err
	}, `SELECT id, version FROM records`+pg.where+` ORDER BY created_at DESC, id DESC LIMIT ?`, pg.args...)
}

// joinedCols are a record's columns, its version and its comment's
// columns (NULL without one).
const joinedCols = "r.id, r.patient_id, r.doctor_id, r.title, r.content, r.created_at, r.updated_at, r.version, " +
	"c.id, c.doctor_id, c.comment, c.created_at"

// queryRecords reads records joined with their comments, one row per
// comment (or one row with NULL comment columns), grouped by record in
// the order the query gives, and each record's version.
func queryRecords(ctx context.Context, q sqlRunner, query string, args ...any) ([]domain.Record, []int64, error) {
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
	err := r.in.reads().QueryRowContext(ctx, `SELECT stored_bytes FROM users WHERE id = ?`, patientID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: stored bytes of user %d: %w", patientID, notFoundIf(err))
	}
	return n, nil
}
