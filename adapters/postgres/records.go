package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"healthrecord/domain"
	"healthrecord/ports"
)

// records implements ports.Records.
type records struct{ s scope }

const recordCols = "id, patient_id, doctor_id, title, content, created_at, updated_at"

// Create takes the record's id from the ids the batch reserved and leaves
// the INSERT to go with the transaction's next statement (or the unit's
// end): the id is all the caller needs at once, and the round trip is
// shared. An error of the INSERT is the unit's.
func (r records) Create(ctx context.Context, rec *domain.Record) error {
	err := r.s.write(ctx, func(t *txn) error {
		id, err := t.nextRecordID(ctx)
		if err != nil {
			return err
		}
		t.deferWrite("create record",
			`INSERT INTO records (id, patient_id, doctor_id, title, content, created_at, updated_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			id, rec.PatientID, nullID(rec.DoctorID), rec.Title, rec.Content, toNanos(rec.CreatedAt), toNanos(rec.UpdatedAt))
		rec.ID = id
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: create record: %w", err)
	}
	return nil
}

func (r records) Get(ctx context.Context, id int64) (domain.Record, error) {
	recs, err := queryRecords(ctx, r.s.reader(),
		`SELECT `+joinedCols+` FROM records r LEFT JOIN comments c ON c.record_id = r.id
		 WHERE r.id = $1 ORDER BY c.created_at, c.id`, id)
	if err != nil {
		return domain.Record{}, fmt.Errorf("postgres: record %d: %w", id, err)
	}
	if len(recs) == 0 {
		return domain.Record{}, fmt.Errorf("postgres: record %d: %w", id, domain.NotFound())
	}
	return recs[0], nil
}

func (r records) Update(ctx context.Context, rec domain.Record) error {
	err := r.s.write(ctx, func(t *txn) error {
		return mustChange(t.Exec(ctx,
			`UPDATE records SET title = $1, content = $2, doctor_id = $3, updated_at = $4 WHERE id = $5`,
			rec.Title, rec.Content, nullID(rec.DoctorID), toNanos(rec.UpdatedAt), rec.ID))
	})
	if err != nil {
		return fmt.Errorf("postgres: update record %d: %w", rec.ID, err)
	}
	return nil
}

// Delete removes the record; its comments go with it (ON DELETE CASCADE).
func (r records) Delete(ctx context.Context, id int64) error {
	err := r.s.write(ctx, func(t *txn) error {
		return mustChange(t.Exec(ctx, `DELETE FROM records WHERE id = $1`, id))
	})
	if err != nil {
		return fmt.Errorf("postgres: delete record %d: %w", id, err)
	}
	return nil
}

// errNoRecordFilter refuses an unfiltered list: lists are filtered by the
// actor in SQL, and a forgotten filter must not show every record.
var errNoRecordFilter = errors.New("postgres: record list needs a patient or a doctor")

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
	// One statement: the page of records joined with their comments
	// (oldest first within a record), one snapshot.
	recs, err := queryRecords(ctx, r.s.reader(),
		`SELECT `+joinedCols+` FROM (SELECT `+recordCols+`, version FROM records`+w.String()+
			` ORDER BY created_at DESC, id DESC LIMIT `+w.next(limit(p))+`) r
		 LEFT JOIN comments c ON c.record_id = r.id
		 ORDER BY r.created_at DESC, r.id DESC, c.created_at, c.id`,
		w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list records: %w", err)
	}
	return recs, nil
}

// joinedCols are a record's columns, its version and its comment's
// columns (NULL without one).
const joinedCols = "r.id, r.patient_id, r.doctor_id, r.title, r.content, r.created_at, r.updated_at, r.version, " +
	"c.id, c.doctor_id, c.comment, c.created_at"

// recordRow is one row of joinedCols.
type recordRow struct {
	rec                  domain.Record
	cID, cDoctor, cAt    *int64
	cText                *string
	doctor               *int64
	createdAt, updatedAt int64
	version              int64
}

func scanRecordRow(row pgx.Row) (recordRow, error) {
	var x recordRow
	err := row.Scan(&x.rec.ID, &x.rec.PatientID, &x.doctor, &x.rec.Title, &x.rec.Content, &x.createdAt, &x.updatedAt,
		&x.version, &x.cID, &x.cDoctor, &x.cText, &x.cAt)
	return x, err
}

// queryRecords reads records joined with their comments, one row per
// comment (or one row with NULL comment columns), grouped by record in
// the order the query gives.
func queryRecords(ctx context.Context, q querier, query string, args ...any) ([]domain.Record, error) {
	rows, err := collect(ctx, q, scanRecordRow, query, args...)
	if err != nil {
		return nil, err
	}
	out := []domain.Record{}
	for _, x := range rows {
		if n := len(out); n == 0 || out[n-1].ID != x.rec.ID {
			rec := x.rec
			if x.doctor != nil {
				rec.DoctorID = *x.doctor
			}
			rec.CreatedAt, rec.UpdatedAt = fromNanos(x.createdAt), fromNanos(x.updatedAt)
			rec.Comments = []domain.Comment{}
			out = append(out, rec)
		}
		if x.cID != nil {
			last := &out[len(out)-1]
			last.Comments = append(last.Comments, domain.Comment{
				ID: *x.cID, RecordID: last.ID, DoctorID: *x.cDoctor, Text: *x.cText, CreatedAt: fromNanos(*x.cAt),
			})
		}
	}
	return out, nil
}

// StoredBytes reads the total the triggers keep.
func (r records) StoredBytes(ctx context.Context, patientID int64) (int64, error) {
	n, err := one(ctx, r.s.reader(), func(row pgx.Row) (int64, error) {
		var n int64
		return n, row.Scan(&n)
	}, `SELECT stored_bytes FROM users WHERE id = $1`, patientID)
	if err != nil {
		return 0, fmt.Errorf("postgres: stored bytes of user %d: %w", patientID, err)
	}
	return n, nil
}

// comments implements ports.Comments.
type comments struct{ s scope }

const commentCols = "id, record_id, doctor_id, comment, created_at"

func scanComment(row pgx.Row) (domain.Comment, error) {
	var c domain.Comment
	var createdAt int64
	err := row.Scan(&c.ID, &c.RecordID, &c.DoctorID, &c.Text, &createdAt)
	c.CreatedAt = fromNanos(createdAt)
	return c, err
}

func (r comments) Create(ctx context.Context, c *domain.Comment) error {
	err := r.s.write(ctx, func(t *txn) error {
		return t.QueryRow(ctx,
			`INSERT INTO comments (record_id, doctor_id, comment, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
			c.RecordID, c.DoctorID, c.Text, toNanos(c.CreatedAt)).Scan(&c.ID)
	})
	if err != nil {
		return fmt.Errorf("postgres: create comment: %w", err)
	}
	return nil
}

func (r comments) Get(ctx context.Context, id int64) (domain.Comment, error) {
	c, err := one(ctx, r.s.reader(), scanComment, `SELECT `+commentCols+` FROM comments WHERE id = $1`, id)
	if err != nil {
		return domain.Comment{}, fmt.Errorf("postgres: comment %d: %w", id, err)
	}
	return c, nil
}

// errNoCommentScope refuses a list without a scope: a comment is visible
// only with its record, and a forgotten scope must not show them all.
var errNoCommentScope = errors.New("postgres: comment list needs a patient or a doctor")

func (r comments) List(ctx context.Context, f ports.CommentFilter, p domain.Page) ([]domain.Comment, error) {
	var w where
	switch {
	case f.Records.PatientID != 0:
		w.add("record_id IN (SELECT id FROM records WHERE patient_id = ?)", f.Records.PatientID)
	case f.Records.DoctorID != 0:
		w.add("record_id IN (SELECT id FROM records WHERE doctor_id = ?)", f.Records.DoctorID)
	default:
		return nil, errNoCommentScope
	}
	if f.RecordID != 0 {
		w.add("record_id = ?", f.RecordID)
	}
	w.after(p, "created_at", "id")
	out, err := collect(ctx, r.s.reader(), scanComment,
		`SELECT `+commentCols+` FROM comments`+w.String()+` ORDER BY created_at DESC, id DESC LIMIT `+w.next(limit(p)),
		w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list comments: %w", err)
	}
	return out, nil
}
