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

func scanRecord(sc scanner) (domain.Record, error) {
	var r domain.Record
	var doctor sql.NullInt64
	var createdAt, updatedAt int64
	err := sc.Scan(&r.ID, &r.PatientID, &doctor, &r.Title, &r.Content, &createdAt, &updatedAt)
	r.DoctorID, r.CreatedAt, r.UpdatedAt = doctor.Int64, fromNanos(createdAt), fromNanos(updatedAt)
	return r, err
}

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
	q := r.s.reader()
	rec, err := scanRecord(q.QueryRowContext(ctx, `SELECT `+recordCols+` FROM records WHERE id = ?`, id))
	if err != nil {
		return domain.Record{}, fmt.Errorf("sqlite: record %d: %w", id, notFoundIf(err))
	}
	recs := []domain.Record{rec}
	if err := attachComments(ctx, q, recs); err != nil {
		return domain.Record{}, err
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
	q := r.s.reader()
	rows, err := q.QueryContext(ctx,
		`SELECT `+recordCols+` FROM records`+w.String()+` ORDER BY created_at DESC, id DESC LIMIT ?`,
		append(w.args, limit(p))...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list records: %w", err)
	}
	out := []domain.Record{}
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: list records: %w", err)
		}
		out = append(out, rec)
	}
	// Close before the next query: inside a transaction both share one connection.
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("sqlite: list records: %w", err)
	}
	if err := attachComments(ctx, q, out); err != nil {
		return nil, err
	}
	return out, nil
}

// attachComments loads the comments of recs, oldest first, in one query.
func attachComments(ctx context.Context, q querier, recs []domain.Record) error {
	if len(recs) == 0 {
		return nil
	}
	ids := make([]any, len(recs))
	at := make(map[int64]int, len(recs))
	for i := range recs {
		ids[i], at[recs[i].ID] = recs[i].ID, i
		recs[i].Comments = []domain.Comment{}
	}
	rows, err := q.QueryContext(ctx,
		`SELECT `+commentCols+` FROM comments WHERE record_id IN (`+placeholders(len(ids))+`)
		 ORDER BY created_at, id`, ids...)
	if err != nil {
		return fmt.Errorf("sqlite: record comments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanComment(rows)
		if err != nil {
			return fmt.Errorf("sqlite: record comments: %w", err)
		}
		i := at[c.RecordID]
		recs[i].Comments = append(recs[i].Comments, c)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: record comments: %w", err)
	}
	return nil
}
