package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
	recs, err := queryRecords(ctx, r.s.reader(),
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
	// One statement: the page of records, joined with their comments
	// (oldest first within a record), instead of a second query per page.
	recs, err := queryRecords(ctx, r.s.reader(),
		`SELECT `+joinedCols+` FROM (SELECT `+recordCols+` FROM records`+w.String()+
			` ORDER BY created_at DESC, id DESC LIMIT ?) r
		 LEFT JOIN comments c ON c.record_id = r.id
		 ORDER BY r.created_at DESC, r.id DESC, c.created_at, c.id`,
		append(w.args, limit(p))...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list records: %w", err)
	}
	return recs, nil
}

// joinedCols are a record's columns and its comment's (NULL without one).
const joinedCols = "r.id, r.patient_id, r.doctor_id, r.title, r.content, r.created_at, r.updated_at, " +
	"c.id, c.doctor_id, c.comment, c.created_at"

// queryRecords reads records joined with their comments, one row per
// comment (or one row with NULL comment columns), grouped by record in
// the order the query gives.
func queryRecords(ctx context.Context, q querier, query string, args ...any) ([]domain.Record, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []domain.Record{}
	for rows.Next() {
		var rec domain.Record
		var doctor, cID, cDoctor, cAt sql.NullInt64
		var cText sql.NullString
		var createdAt, updatedAt int64
		if err := rows.Scan(&rec.ID, &rec.PatientID, &doctor, &rec.Title, &rec.Content, &createdAt, &updatedAt,
			&cID, &cDoctor, &cText, &cAt); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].ID != rec.ID {
			rec.DoctorID, rec.CreatedAt, rec.UpdatedAt = doctor.Int64, fromNanos(createdAt), fromNanos(updatedAt)
			rec.Comments = []domain.Comment{}
			out = append(out, rec)
		}
		if cID.Valid {
			last := &out[len(out)-1]
			last.Comments = append(last.Comments, domain.Comment{
				ID: cID.Int64, RecordID: last.ID, DoctorID: cDoctor.Int64, Text: cText.String, CreatedAt: fromNanos(cAt.Int64),
			})
		}
	}
	return out, rows.Err()
}
