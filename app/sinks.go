package app

import (
	"context"
	"fmt"

	"healthrecord/domain"
	"healthrecord/ports"
)

// Sink names, as stored in an outbox event's done list.
const (
	SinkNotification = "notification"
	SinkEmail        = "email"
)

// NotificationSink delivers an assignment as an in-API notification for
// the doctor. The store keeps one notification per event, so delivering
// again is harmless.
func (a *App) NotificationSink() ports.Sink {
	return sinkFunc{name: SinkNotification, deliver: func(ctx context.Context, e domain.OutboxEvent) error {
		n := domain.Notification{
			UserID: e.DoctorID, Kind: e.Kind, RecordID: e.RecordID, PatientID: e.PatientID,
			EventID: e.ID, CreatedAt: e.CreatedAt,
		}
		created, err := a.store.Notifications().Create(ctx, &n)
		if created {
			a.notified.notify()
		}
		return err
	}}
}

// EmailSink delivers an assignment as an email to the doctor. The email
// names the patient's username, never the record's title or content, and
// carries a Message-ID derived from the event id.
func (a *App) EmailSink(m ports.Mailer) ports.Sink {
	return sinkFunc{name: SinkEmail, deliver: func(ctx context.Context, e domain.OutboxEvent) error {
		doctor, err := a.store.Users().ByID(ctx, e.DoctorID)
		if err != nil {
			return fmt.Errorf("load doctor %d: %w", e.DoctorID, err)
		}
		patient, err := a.store.Users().ByID(ctx, e.PatientID)
		if err != nil {
			return fmt.Errorf("load patient %d: %w", e.PatientID, err)
		}
		return m.Send(ctx, domain.AssignmentEmail(e, doctor, patient, a.cfg.MailHost))
	}}
}

type sinkFunc struct {
	name    string
	deliver func(context.Context, domain.OutboxEvent) error
}

func (s sinkFunc) Name() string                                            { return s.name }
func (s sinkFunc) Deliver(ctx context.Context, e domain.OutboxEvent) error { return s.deliver(ctx, e) }
