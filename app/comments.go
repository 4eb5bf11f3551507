package app

import (
	"context"

	"healthrecord/domain"
	"healthrecord/ports"
)

// ListComments lists the comments on the records the actor sees now (the
// owner's, or those assigned to the doctor), whoever wrote them; recordID,
// when not 0, narrows to one record, and a record out of sight gives an
// empty list, as a missing one does. EForbidden for admins.
func (a *App) ListComments(ctx context.Context, actor domain.Actor, recordID int64, p domain.Page) ([]domain.Comment, *domain.Cursor, error) {
	scope, err := domain.ScopeOf(actor)
	if err != nil {
		return nil, nil, err
	}
	items, err := a.store.Comments().List(ctx, ports.CommentFilter{Records: scope, RecordID: recordID}, pageQuery(p))
	if err != nil {
		return nil, nil, err
	}
	items, next := trimPage(items, p, commentCursor)
	shown, err := a.commentedRecords(ctx, scope, items)
	if err != nil {
		return nil, nil, err
	}
	a.auditShown(actor, domain.ActionCommentList, shown)
	return items, next, nil
}

// commentedRecords are the records whose comments a list showed, each once,
// in the order the list met them, with their owner for the audit. A record
// deleted since the list read it is named without its owner.
func (a *App) commentedRecords(ctx context.Context, scope domain.RecordScope, items []domain.Comment) ([]domain.Record, error) {
	var out []domain.Record
	seen := map[int64]bool{}
	for _, c := range items {
		if seen[c.RecordID] {
			continue
		}
		seen[c.RecordID] = true
		r := domain.Record{ID: c.RecordID, PatientID: scope.PatientID}
		if r.PatientID == 0 {
			got, err := a.store.Records().Get(ctx, c.RecordID)
			if err != nil && domain.ErrorCode(err) != domain.ENotFound {
				return nil, err
			}
			r.PatientID = got.PatientID
		}
		out = append(out, r)
	}
	return out, nil
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
	err := a.store.WithinTx(ctx, func(tx ports.Repos) error {
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

// GetComment returns a comment to whoever sees its record now (the owner,
// the doctor assigned); anyone else, its author included once the record
// was reassigned, gets ENotFound.
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
	if err := domain.CanReadRecord(actor, r); err != nil {
		a.auditRead(actor, domain.ActionCommentRead, r, domain.OutcomeDenied)
		return domain.Comment{}, err
	}
	a.auditRead(actor, domain.ActionCommentRead, r, domain.OutcomeAllowed)
	return c, nil
}
