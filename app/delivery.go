package app

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"healthrecord/domain"
	"healthrecord/ports"
)

// The delivery use cases: what is due, one attempt, and what a failure
// comes to (retry with back-off, or dead) for each sink of an outbox event.
// A background loop (adapters/outbox) claims and calls them; each sink
// progresses on its own, so the in-API notification never waits for email.

const (
	// recordTimeout bounds writing an attempt's result, which happens even
	// when the attempt's context has ended (shutdown), so a delivery done
	// is not repeated needlessly.
	recordTimeout = 5 * time.Second
	// inAppLease is the lease of in-API deliveries: they are claimed and
	// delivered in one transaction, so it never runs out in use.
	inAppLease = time.Minute
	// maxErrorLen bounds the failure kept as last_error.
	maxErrorLen = 500
)

// Sinks lists the sinks a new assignment is delivered to: the in-API
// notification, and the email when a mailer is configured.
func (a *App) Sinks() []string {
	if a.mailer == nil {
		return []string{domain.SinkNotification}
	}
	return []string{domain.SinkNotification, domain.SinkEmail}
}

// DeliverNotifications delivers up to limit due in-API notifications in one
// write transaction: claim, store the notifications, mark them delivered.
// The store keeps one notification per event, so a redelivery is harmless.
// It returns how many it delivered.
func (a *App) DeliverNotifications(ctx context.Context, owner string, limit int) (int, error) {
	var events []domain.OutboxEvent
	var now time.Time
	err := a.store.WithinTx(ctx, func(tx ports.Repos) error {
		now = a.clock.Now()
		evs, err := tx.Outbox().Claim(ctx, domain.SinkNotification, owner, now, inAppLease, limit)
		if err != nil || len(evs) == 0 {
			return err
		}
		results := make([]domain.DeliveryResult, 0, len(evs))
		for _, e := range evs {
			n := domain.NotificationFor(e)
			if _, err := tx.Notifications().Create(ctx, &n); err != nil {
				return err
			}
			results = append(results, domain.DeliveryResult{
				EventID: e.ID, Sink: domain.SinkNotification, Outcome: domain.OutcomeDelivered, At: now,
			})
		}
		if _, err := tx.Outbox().Record(ctx, owner, results); err != nil {
			return err
		}
		events = evs
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(events) > 0 {
		a.notified.notify() // open notification streams look at once
	}
	for _, e := range events {
		a.observe(domain.SinkNotification, domain.OutcomeDelivered, now.Sub(e.CreatedAt))
	}
	return len(events), nil
}

// ClaimEmails leases up to limit due email deliveries to owner for lease.
func (a *App) ClaimEmails(ctx context.Context, owner string, lease time.Duration, limit int) ([]domain.OutboxEvent, error) {
	return a.store.Outbox().Claim(ctx, domain.SinkEmail, owner, a.clock.Now(), lease, limit)
}

// DeliverEmail attempts the email delivery of e, claimed by owner, and
// records what it came to: delivered; dead at once on a permanent refusal
// (the relay's answer kept as last_error); otherwise retried with capped
// back-off until it is older than the maximum age. The email names the
// patient's username, never the record's title or content, and carries a
// Message-ID derived from the event id, so a repeat is recognisable. It
// returns the outcome; an error only when the result could not be stored.
func (a *App) DeliverEmail(ctx context.Context, owner string, e domain.OutboxEvent) (string, error) {
	d, ok := e.Delivery(domain.SinkEmail)
	if !ok {
		return "", fmt.Errorf("app: event %d has no email delivery", e.ID)
	}
	sendErr := a.sendEmail(ctx, e)
	now := a.clock.Now()
	res := domain.DeliveryResult{EventID: e.ID, Sink: domain.SinkEmail, Outcome: domain.OutcomeDelivered, At: now}
	if sendErr != nil {
		// A recipient that is not an address will never become one.
		permanent := ports.IsPermanent(sendErr) || domain.ErrorCode(sendErr) == domain.EInvalid
		res = a.retry.Failed(d, d.Attempts+1, now, oneLine(sendErr.Error(), maxErrorLen), permanent, a.jitter())
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	n, err := a.store.Outbox().Record(rctx, owner, []domain.DeliveryResult{res})
	if err != nil {
		return res.Outcome, err
	}
	if n == 0 {
		// The lease ran out and another dispatcher has the delivery now:
		// its result, not this one, counts.
		a.log.Warn("outbox: lease lost, result dropped", "event", e.ID, "sink", domain.SinkEmail)
		return res.Outcome, nil
	}
	a.observe(domain.SinkEmail, res.Outcome, now.Sub(e.CreatedAt))
	switch res.Outcome {
	case domain.OutcomeDead:
		a.log.Error("outbox: email is dead", "event", e.ID, "attempt", d.Attempts+1, "err", res.Error)
	case domain.OutcomeRetry:
		a.log.Warn("outbox: email failed, will retry", "event", e.ID, "attempt", d.Attempts+1,
			"next_attempt_at", res.Next, "err", res.Error)
	}
	return res.Outcome, nil
}

func (a *App) sendEmail(ctx context.Context, e domain.OutboxEvent) error {
	if a.mailer == nil {
		return errors.New("email is not configured on this server")
	}
	doctor, err := a.store.Users().ByID(ctx, e.DoctorID)
	if err != nil {
		return fmt.Errorf("load doctor %d: %w", e.DoctorID, err)
	}
	patient, err := a.store.Users().ByID(ctx, e.PatientID)
	if err != nil {
		return fmt.Errorf("load patient %d: %w", e.PatientID, err)
	}
	return a.mailer.Send(ctx, domain.AssignmentEmail(e, doctor, patient, a.cfg.MailHost))
}

// jitter is a value in [0, 1) from the injected randomness.
func (a *App) jitter() float64 {
	return float64(binary.BigEndian.Uint64(a.random(8))>>11) / (1 << 53)
}

func (a *App) observe(sink, outcome string, sinceCommit time.Duration) {
	if a.observer != nil {
		a.observer.ObserveDelivery(sink, outcome, sinceCommit)
	}
}

// oneLine makes s one line of at most n bytes, cut on a rune boundary.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
