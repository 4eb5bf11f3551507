package sqlite

import (
	"context"
	"errors"
	"fmt"

	"healthrecord/domain"
	"healthrecord/ports"
)

// comments implements ports.Comments.
type comments struct{ in repos }

const commentCols = "id, record_id, doctor_id, comment, created_at"

func scanComment(sc scanner) (domain.Comment, error) {
	var c domain.Comment
	var createdAt int64
	err := sc.Scan(&c.ID, &c.RecordID, &c.DoctorID, &c.Text, &createdAt)
	c.CreatedAt = fromNanos(createdAt)
	return c, err
}

func (r comments) Create(ctx context.Context, c *domain.Comment) error {
	id, err := insertedID(r.in.writes().ExecContext(ctx,
		`INSERT INTO comments (record_id, doctor_id, comment, created_at) VALUES (?, ?, ?, ?)`,
		c.RecordID, c.DoctorID, c.Text, toNanos(c.CreatedAt)))
	if err != nil {
		return fmt.Errorf("sqlite: create comment: %w", err)
	}
	c.ID = id
	return nil
}

func (r comments) Get(ctx context.Context, id int64) (domain.Comment, error) {
	c, err := scanComment(r.in.reads().QueryRowContext(ctx, `SELECT `+commentCols+` FROM comments WHERE id = ?`, id))
	if err != nil {
		return domain.Comment{}, fmt.Errorf("sqlite: comment %d: %w", id, notFoundIf(err))
	}
	return c, nil
}

// errNoCommentScope refuses a list without a scope: a comment is visible
// only with its record, and a forgotten scope must not show them all.
var errNoCommentScope = errors.New("sqlite: comment list needs a patient or a doctor")

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
	out, err := queryAll(ctx, r.in.reads(), scanComment,
		`SELECT `+commentCols+` FROM comments`+w.String()+` ORDER BY created_at DESC, id DESC LIMIT ?`,
		append(w.args, limit(p))...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list comments: %w", err)
	}
	return out, nil
}
