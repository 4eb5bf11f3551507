package app

import (
	"context"
	"time"

	"healthrecord/domain"
	"healthrecord/ports"
)

// ListRecords lists what the actor may see, filtered in SQL: a patient's
// own records, or those assigned to a doctor. EForbidden for admins.
func (a *App) ListRecords(ctx context.Context, actor domain.Actor, p domain.Page) ([]domain.Record, *domain.Cursor, error) {
	scope, err := domain.ScopeOf(actor)
	if err != nil {
		a.auditRead(actor, domain.ActionRecordList, domain.Record{}, domain.OutcomeDenied)
		return nil, nil, err
	}
	items, err := a.store.Records().List(ctx, scope, pageQuery(p))
	if err != nil {
		return nil, nil, err
	}
	items, next := trimPage(items, p, recordCursor)
	a.auditShown(actor, domain.ActionRecordList, items)
	return items, next, nil
}

func recordCursor(r domain.Record) domain.Cursor {
	return domain.Cursor{CreatedAt: r.CreatedAt, ID: r.ID}
}

// CreateRecord stores a patient's record. When it names a doctor, the
// assignment's outbox event, the doctor's in-API notification (see
// assign) and the audit entry commit in the same transaction, so the
// doctor is notified if and only if it committed.
// EForbidden, EInvalid.
func (a *App) CreateRecord(ctx context.Context, actor domain.Actor, c domain.RecordChange) (domain.Record, error) {
	if err := domain.CanCreateRecord(actor); err != nil {
		return domain.Record{}, err
	}
	var rec domain.Record
	err := a.store.WithinTx(ctx, func(tx ports.Repos) error {
		now := a.clock.Now() // one now per transaction
		r, err := domain.NewRecord(actor.ID, c, now)
		if err != nil {
			return err
		}
		if err := a.checkQuota(ctx, tx, actor.ID, recordBytes(r)); err != nil {
			return err
		}
		if r.DoctorID != 0 {
			if err := checkAssignable(ctx, tx, r.DoctorID); err != nil {
				return err
			}
		}
		if err := tx.Records().Create(ctx, &r); err != nil {
			return err
		}
		if r.DoctorID != 0 {
			if err := a.assign(ctx, tx, r, now); err != nil {
				return err
			}
		}
		rec = r
		return tx.Audit().Append(ctx, a.entry(actor, domain.ActionRecordCreate, r, domain.OutcomeAllowed, now))
	})
	if err != nil {
		return domain.Record{}, err
	}
	if rec.DoctorID != 0 {
		a.notifiedInTx()
	}
	rec.Comments = []domain.Comment{}
	return rec, nil
}

// assign commits a record's assignment event, and with it the doctor's
// in-API notification: it needs nothing outside the database, so it is
// delivered in the assignment's own transaction rather than claimed and
// delivered in another after it. It exists if and only if the assignment
// committed, once (one notification per event), and the dispatcher
// never sees it pending; the event's other sinks (email) stay pending
// for the dispatcher.
func (a *App) assign(ctx context.Context, tx ports.Repos, r domain.Record, now time.Time) error {
	ev := domain.NewAssignmentEvent(r, now, a.Sinks()...)
	ev.Delivered(domain.SinkNotification, now)
	if err := tx.Outbox().Add(ctx, &ev); err != nil {
		return err
	}
	n := domain.NotificationFor(ev)
	_, err := tx.Notifications().Create(ctx, &n)
	return err
}

// notifiedInTx is what follows the commit of notifications delivered in
// their event's transaction: open streams look at once, and the delivery
// is counted, at no delay from its commit.
func (a *App) notifiedInTx() {
	a.notified.notify()
	a.observe(domain.SinkNotification, domain.OutcomeDelivered, 0)
}

// checkAssignable: the doctor must exist and be an approved, active
// doctor; anything else is reported as a pk that does not exist.
func checkAssignable(ctx context.Context, repos ports.Repos, doctorID int64) error {
	d, err := repos.Users().ByID(ctx, doctorID)
	if domain.ErrorCode(err) == domain.ENotFound || (err == nil && !d.Assignable()) {
		return domain.DoesNotExist("doctor", doctorID)
	}
	return err
}

// lookupError is the one "not visible or admin" branch for a record
// lookup that failed: an absent record answers as a hidden one does, 403
// to an admin (who sees no health data at all) and 404 to anyone else.
func lookupError(actor domain.Actor, err error) error {
	if domain.ErrorCode(err) == domain.ENotFound {
		if ferr := domain.CanUseRecords(actor); ferr != nil {
			return ferr
		}
	}
	return err
}

// GetRecord returns one record with its comments to its owner or assigned
// doctor; anyone else gets ENotFound, the same as for a missing record.
// A refused read of an existing record is audited as denied.
func (a *App) GetRecord(ctx context.Context, actor domain.Actor, id int64) (domain.Record, error) {
	r, err := a.store.Records().Get(ctx, id)
	if err != nil {
		return domain.Record{}, lookupError(actor, err)
	}
	if err := domain.CanReadRecord(actor, r); err != nil {
		a.auditRead(actor, domain.ActionRecordRead, r, domain.OutcomeDenied)
		return domain.Record{}, err
	}
	a.auditRead(actor, domain.ActionRecordRead, r, domain.OutcomeAllowed)
	return r, nil
}

// UpdateRecord changes the owner's record (PUT with full, PATCH without).
// A change of doctor to another doctor writes an outbox event in the same
// transaction. EForbidden for the assigned doctor, ENotFound for others.
func (a *App) UpdateRecord(ctx context.Context, actor domain.Actor, id int64, c domain.RecordChange, full bool) (domain.Record, error) {
	var rec domain.Record
	notified := false
	err := a.changeRecord(ctx, actor, id, domain.ActionRecordUpdate, func(tx ports.Repos, r *domain.Record, now time.Time) error {
		before := recordBytes(*r)
		assigned, err := r.Apply(c, full, now)
		if err != nil {
			return err
		}
		if err := a.checkQuota(ctx, tx, r.PatientID, recordBytes(*r)-before); err != nil {
			return err
		}
		// Only a new doctor is checked, so a client may PUT back what it
		// read even if its doctor has since been deactivated.
		if assigned {
			if err := checkAssignable(ctx, tx, r.DoctorID); err != nil {
				return err
			}
		}
		if err := tx.Records().Update(ctx, *r); err != nil {
			return err
		}
		if assigned {
			if err := a.assign(ctx, tx, *r, now); err != nil {
				return err
			}
			notified = true
		}
		rec = *r
		return nil
	})
	if err == nil && notified {
		a.notifiedInTx()
	}
	return rec, err
}

// DeleteRecord removes the owner's record and its comments. EForbidden for
// the assigned doctor, ENotFound for others.
func (a *App) DeleteRecord(ctx context.Context, actor domain.Actor, id int64) error {
	return a.changeRecord(ctx, actor, id, domain.ActionRecordDelete, func(tx ports.Repos, r *domain.Record, _ time.Time) error {
		return tx.Records().Delete(ctx, r.ID)
	})
}

// changeRecord loads the record in a write transaction, checks the owner
// rule, applies change, and audits the outcome, with one now for the
// change and its audit entry. A refused change of an
// existing record is audited as denied in its own transaction, because
// the refused one rolls back.
func (a *App) changeRecord(ctx context.Context, actor domain.Actor, id int64, action string,
	change func(tx ports.Repos, r *domain.Record, now time.Time) error) error {
	var denied *domain.Record
	err := a.store.WithinTx(ctx, func(tx ports.Repos) error {
		now := a.clock.Now() // one now per transaction
		r, err := tx.Records().Get(ctx, id)
		if err != nil {
			return lookupError(actor, err)
		}
		if err := domain.CanChange(actor, r); err != nil {
			denied = &r
			return err
		}
		if err := change(tx, &r, now); err != nil {
			return err
		}
		return tx.Audit().Append(ctx, a.entry(actor, action, r, domain.OutcomeAllowed, now))
	})
	if denied != nil {
		if aerr := a.store.Audit().Append(ctx, a.entry(actor, action, *denied, domain.OutcomeDenied, a.clock.Now())); aerr != nil {
			a.log.Error("audit denied change", "err", aerr, "request_id", actor.RequestID)
		}
	}
	return err
}

// AccessLog lists who read or changed the record; only its owner may see
// it. ENotFound, EForbidden.
func (a *App) AccessLog(ctx context.Context, actor domain.Actor, recordID int64, p domain.Page) ([]domain.AuditEntry, *domain.Cursor, error) {
	r, err := a.store.Records().Get(ctx, recordID)
	if err != nil {
		return nil, nil, lookupError(actor, err)
	}
	if err := domain.CanReadAccessLog(actor, r); err != nil {
		return nil, nil, err
	}
	// Make sure reads still buffered show up in the log they describe.
	if err := a.audit.Flush(ctx); err != nil {
		return nil, nil, err
	}
	items, err := a.store.Audit().List(ctx, ports.AuditFilter{RecordID: recordID}, pageQuery(p))
	if err != nil {
		return nil, nil, err
	}
	items, next := trimPage(items, p, auditCursor)
	return items, next, nil
}

func auditCursor(e domain.AuditEntry) domain.Cursor { return domain.Cursor{CreatedAt: e.At, ID: e.ID} }
