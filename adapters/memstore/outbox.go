package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"healthrecord/domain"
	"healthrecord/ports"
)

// outbox implements ports.Outbox: each event holds its deliveries; the
// leases are kept beside them.
type outbox struct{ r repos }

func (o outbox) Add(ctx context.Context, e *domain.OutboxEvent) error {
	if len(e.Deliveries) == 0 {
		return errors.New("memstore: add outbox event: no delivery")
	}
	return o.r.write(ctx, "Outbox.Add", func(t *Tables) error {
		e.ID = t.nextID("outbox")
		stored := *e
		stored.NextAttemptAt, stored.CreatedAt, stored.DeliveredAt = stamp(e.NextAttemptAt), stamp(e.CreatedAt), stampPtr(e.DeliveredAt)
		stored.Deliveries = make([]domain.Delivery, len(e.Deliveries))
		for i := range e.Deliveries {
			e.Deliveries[i].EventID = e.ID
			d := e.Deliveries[i]
			d.NextAttemptAt, d.Since, d.DeliveredAt = stamp(d.NextAttemptAt), stamp(d.Since), stampPtr(d.DeliveredAt)
			stored.Deliveries[i] = d
		}
		sortDeliveries(stored.Deliveries)
		t.Outbox[e.ID] = stored
		return nil
	})
}

// sortDeliveries puts an event's deliveries in the order the SQLite
// adapter reads them.
func sortDeliveries(ds []domain.Delivery) {
	slices.SortFunc(ds, func(a, b domain.Delivery) int { return strings.Compare(b.Sink, a.Sink) })
}

func (o outbox) Claim(ctx context.Context, sink, owner string, now time.Time, leaseFor time.Duration, limit int) ([]domain.OutboxEvent, error) {
	out := []domain.OutboxEvent{}
	if limit <= 0 {
		return out, nil
	}
	now = stamp(now)
	err := o.r.write(ctx, "Outbox.Claim", func(t *Tables) error {
		for _, e := range t.Outbox {
			d, ok := e.Delivery(sink)
			if !ok || d.State != domain.OutboxPending || d.NextAttemptAt.After(now) {
				continue
			}
			if l, held := t.leases[leaseKey{e.ID, sink}]; held && l.until.After(now) {
				continue
			}
			claimed := e
			claimed.Deliveries = []domain.Delivery{d}
			out = append(out, claimed)
		}
		slices.SortFunc(out, func(a, b domain.OutboxEvent) int {
			if c := a.Deliveries[0].NextAttemptAt.Compare(b.Deliveries[0].NextAttemptAt); c != 0 {
				return c
			}
			return cmp.Compare(a.ID, b.ID)
		})
		out = out[:min(len(out), limit)]
		for _, e := range out {
			t.leases[leaseKey{e.ID, sink}] = lease{owner: owner, until: now.Add(leaseFor)}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (o outbox) Record(ctx context.Context, owner string, results []domain.DeliveryResult) (int, error) {
	stored := 0
	if len(results) == 0 {
		return 0, nil
	}
	err := o.r.write(ctx, "Outbox.Record", func(t *Tables) error {
		stored = 0
		for _, res := range results {
			var state string
			next, at := stamp(res.Next), stamp(res.At)
			var delivered *time.Time
			switch res.Outcome {
			case domain.OutcomeDelivered:
				state, delivered, next = domain.OutboxDelivered, &at, at
			case domain.OutcomeRetry:
				state = domain.OutboxPending
			case domain.OutcomeDead:
				state, next = domain.OutboxDead, at
			default:
				return fmt.Errorf("memstore: record outbox deliveries: unknown outcome %q", res.Outcome)
			}
			key := leaseKey{res.EventID, res.Sink}
			e, ok := t.Outbox[res.EventID]
			d, has := e.Delivery(res.Sink)
			if l := t.leases[key]; !ok || !has || l.owner != owner || d.State != domain.OutboxPending {
				continue
			}
			delete(t.leases, key)
			d.State, d.Attempts, d.LastError, d.NextAttemptAt, d.DeliveredAt =
				state, d.Attempts+1, truncate(res.Error, maxErrLen), next, delivered
			t.Outbox[e.ID] = summarise(withDelivery(e, d))
			stored++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return stored, nil
}

// withDelivery is e with its delivery through d.Sink replaced by d.
func withDelivery(e domain.OutboxEvent, d domain.Delivery) domain.OutboxEvent {
	e.Deliveries = slices.Clone(e.Deliveries)
	for i := range e.Deliveries {
		if e.Deliveries[i].Sink == d.Sink {
			e.Deliveries[i] = d
		}
	}
	return e
}

// summarise sets the event's summary from its deliveries: dead when one
// is dead, else pending when one is pending, else delivered; the most
// attempts; the first failing sink's error (dead first, then by sink);
// the earliest pending due time; the last delivery time once all are
// delivered.
func summarise(e domain.OutboxEvent) domain.OutboxEvent {
	dead, pending := false, false
	e.Attempts, e.LastError, e.DeliveredAt = 0, "", nil
	var next *time.Time
	var errSink *domain.Delivery
	var lastDelivered *time.Time
	for i := range e.Deliveries {
		d := &e.Deliveries[i]
		e.Attempts = max(e.Attempts, d.Attempts)
		switch d.State {
		case domain.OutboxDead:
			dead = true
		case domain.OutboxPending:
			pending = true
			if next == nil || d.NextAttemptAt.Before(*next) {
				next = &d.NextAttemptAt
			}
		}
		if d.State != domain.OutboxDelivered && d.LastError != "" &&
			(errSink == nil || errFirst(d, errSink)) {
			errSink = d
		}
		if d.DeliveredAt != nil && (lastDelivered == nil || d.DeliveredAt.After(*lastDelivered)) {
			lastDelivered = d.DeliveredAt
		}
	}
	switch {
	case dead:
		e.State = domain.OutboxDead
	case pending:
		e.State = domain.OutboxPending
	default:
		e.State, e.DeliveredAt = domain.OutboxDelivered, lastDelivered
	}
	if errSink != nil {
		e.LastError = errSink.Sink + ": " + errSink.LastError
	}
	if next != nil {
		e.NextAttemptAt = *next
	}
	return e
}

// errFirst reports whether a's error is reported before b's: a dead
// delivery's first, then by sink.
func errFirst(a, b *domain.Delivery) bool {
	if (a.State == domain.OutboxDead) != (b.State == domain.OutboxDead) {
		return a.State == domain.OutboxDead
	}
	return a.Sink < b.Sink
}

func (o outbox) Release(ctx context.Context, owner, sink string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	return o.r.write(ctx, "Outbox.Release", func(t *Tables) error {
		for _, id := range ids {
			key := leaseKey{id, sink}
			if l, ok := t.leases[key]; ok && l.owner == owner {
				delete(t.leases, key)
			}
		}
		return nil
	})
}

func (o outbox) Get(ctx context.Context, id int64) (domain.OutboxEvent, error) {
	return byKey(ctx, o.r, "Outbox.Get", "outbox event", func(t *Tables) map[int64]domain.OutboxEvent { return t.Outbox }, id)
}

func (o outbox) List(ctx context.Context, f ports.OutboxFilter, p domain.Page) ([]domain.OutboxEvent, error) {
	var out []domain.OutboxEvent
	err := o.r.read(ctx, "Outbox.List", func(t *Tables) error {
		for _, e := range t.Outbox {
			if f.Sink != "" {
				d, ok := e.Delivery(f.Sink)
				if !ok || (f.State != "" && d.State != f.State) {
					continue
				}
			} else if f.State != "" && e.State != f.State {
				continue
			}
			out = append(out, e)
		}
		out = newestFirst(out, func(e domain.OutboxEvent) (time.Time, int64) { return e.CreatedAt, e.ID }, p)
		return nil
	})
	return out, err
}

func (o outbox) Retry(ctx context.Context, id int64, now time.Time) (domain.OutboxEvent, error) {
	var out domain.OutboxEvent
	now = stamp(now)
	err := o.r.write(ctx, "Outbox.Retry", func(t *Tables) error {
		e, ok := t.Outbox[id]
		if !ok {
			return notFound("outbox event", id)
		}
		if e.State != domain.OutboxDead {
			return domain.Errorf(domain.EConflict, "Only a dead event can be retried; this one is %s.", e.State)
		}
		e.Deliveries = slices.Clone(e.Deliveries)
		for i := range e.Deliveries {
			d := &e.Deliveries[i]
			if d.State == domain.OutboxDead {
				d.State, d.Attempts, d.NextAttemptAt, d.Since = domain.OutboxPending, 0, now, now
				delete(t.leases, leaseKey{id, d.Sink})
			}
		}
		out = summarise(e)
		t.Outbox[id] = out
		return nil
	})
	return out, err
}
