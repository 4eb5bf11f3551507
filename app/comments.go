package app

import (
	"context"

	"healthrecord/domain"
	"healthrecord/ports"
)

// ListComments lists a doctor's own comments, or the comments on a
// patient's records; recordID, when not 0, narrows to one record.
// EForbidden for admins.
func (a *App) ListComments(ctx context.Context, actor domain.Actor, recordID int64, p domain.Page) ([]domain.Comment, *domain.Cursor, error) {
	if err := domain.CanUseRecords(actor); err != nil {
		return nil, nil, err
	}
	f := ports.CommentFilter{RecordID: recordID, PatientID: actor.ID}
	if actor.Role == domain.RoleDoctor {
		f = ports.CommentFilter{RecordID: recordID, DoctorID: actor.ID}
	}
	items, err := a.store.Comments().List(ctx, f, pageQuery(p))
	if err != nil {
		return nil, nil, err
	}
	items, next := trimPage(items, p, commentCursor)
	return items, next, nil
}

func commentCursor(c domain.Comment) domain.Cursor {
	return domain.Cursor{CreatedAt: c.CreatedAt, ID: c.ID}
}

// CreateComment adds the assigned doctor's comment to a record, with its
// audit entry in the same transaction. A record the doctor cannot see is
// reported as not existing (400), so ids cannot be probed. EForbidden for
// patients and admins, EInvalid.
func (a *App) CreateComment(ctx context.Context, actor domain.Actor, recordID int64, text *string) (domain.Comment, error) {
	if err := domain.CanCommentAt(actor); err != nil {
		return domain.Comment{}, err
	}
	var out domain.Comment
	var denied *domain.Record
	err := a.store.WithinTx(ctx, func(tx ports.Tx) error {
		now := a.clock.Now()
		r, err := tx.Records().Get(ctx, recordID)
		if domain.ErrorCode(err) == domain.ENotFound {
			return domain.DoesNotExist("record", recordID)
		} else if err != nil {
			return err
		}
		if err := domain.CanComment(actor, r); err != nil {
			denied = &r
			return err
		}
		c, err := domain.NewComment(r.ID, actor.ID, text, now)
		if err != nil {
			return err
		}
		if err := a.checkQuota(ctx, tx, r.PatientID, int64(len(c.Text))); err != nil {
			return err
		}
		if err := tx.Comments().Create(ctx, &c); err != nil {
			return err
		}
		out = c
		return tx.Audit().Append(ctx, a.entry(actor, domain.ActionCommentCreate, r, domain.OutcomeAllowed, now))
	})
	if denied != nil {
		a.auditRead(actor, domain.ActionCommentCreate, *denied, domain.OutcomeDenied)
	}
	return out, err
}

// GetComment returns a comment to its author or to the owner of its
// record; anyone else gets ENotFound.
func (a *App) GetComment(ctx context.Context, actor domain.Actor, id int64) (domain.Comment, error) {
	if err := domain.CanUseRecords(actor); err != nil {
		return domain.Comment{}, err
	}
	c, err := a.store.Comments().Get(ctx, id)
	if err != nil {
		return domain.Comment{}, err
	}
	r, err := a.store.Records().Get(ctx, c.RecordID)
	if err != nil {
		return domain.Comment{}, err
	}
	if !domain.CanViewComment(actor, c, r) {
		a.auditRead(actor, domain.ActionCommentRead, r, domain.OutcomeDenied)
		return domain.Comment{}, domain.NotFound()
	}
	a.auditRead(actor, domain.ActionCommentRead, r, domain.OutcomeAllowed)
	return c, nil
}
