package outbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"healthrecord/domain"
	"healthrecord/ports"
)

// fakeStore is an in-memory ports.Outbox with the lease semantics the port
// documents: a claimed event belongs to its owner until the lease runs out,
// and writes by anyone else are EConflict.
type fakeStore struct {
	mu     sync.Mutex
	events []*fakeEvent // by id, oldest first

	// ClaimErr, when set, answers Claim instead of the store.
	ClaimErr func() error

	claims     int
	maxClaimed int // the most events one Claim returned
	maxHeld    int // the most unexpired leases one owner held at once
}

type fakeEvent struct {
	ev         domain.OutboxEvent
	owner      string
	leaseUntil time.Time
}

var _ ports.Outbox = (*fakeStore)(nil)

func (s *fakeStore) Add(_ context.Context, e *domain.OutboxEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.ID = int64(len(s.events) + 1)
	if e.State == "" {
		e.State = domain.OutboxPending
	}
	s.events = append(s.events, &fakeEvent{ev: cloneEvent(*e)})
	return nil
}

func (s *fakeStore) Claim(_ context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]domain.OutboxEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claims++
	if s.ClaimErr != nil {
		if err := s.ClaimErr(); err != nil {
			return nil, err
		}
	}
	held := 0
	for _, fe := range s.events {
		if fe.owner == owner && fe.leaseUntil.After(now) {
			held++
		}
	}
	var out []domain.OutboxEvent
	for _, fe := range s.events {
		if len(out) == limit {
			break
		}
		if fe.ev.State != domain.OutboxPending || fe.ev.NextAttemptAt.After(now) {
			continue
		}
		if fe.owner != "" && fe.leaseUntil.After(now) {
			continue
		}
		fe.owner, fe.leaseUntil = owner, now.Add(lease)
		out = append(out, cloneEvent(fe.ev))
	}
	s.maxClaimed = max(s.maxClaimed, len(out))
	s.maxHeld = max(s.maxHeld, held+len(out))
	return out, nil
}

// leased returns the event id if owner holds it, else EConflict.
func (s *fakeStore) leased(owner string, id int64) (*fakeEvent, error) {
	if id < 1 || int(id) > len(s.events) {
		return nil, domain.NotFound()
	}
	fe := s.events[id-1]
	if fe.owner != owner {
		return nil, domain.Errorf(domain.EConflict, "event %d is not leased to %s", id, owner)
	}
	return fe, nil
}

func (s *fakeStore) MarkSinkDone(_ context.Context, owner string, id int64, sink string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fe, err := s.leased(owner, id)
	if err != nil {
		return err
	}
	if !fe.ev.DeliveredTo(sink) {
		fe.ev.Done = append(fe.ev.Done, sink)
	}
	return nil
}

func (s *fakeStore) Delivered(_ context.Context, owner string, id int64, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fe, err := s.leased(owner, id)
	if err != nil {
		return err
	}
	t := now.UTC()
	fe.ev.State, fe.ev.DeliveredAt, fe.owner = domain.OutboxDelivered, &t, ""
	return nil
}

func (s *fakeStore) Failed(_ context.Context, owner string, id int64, errMsg string, next time.Time, dead bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fe, err := s.leased(owner, id)
	if err != nil {
		return err
	}
	fe.ev.Attempts++
	fe.ev.LastError, fe.ev.NextAttemptAt, fe.owner = errMsg, next.UTC(), ""
	if dead {
		fe.ev.State = domain.OutboxDead
	}
	return nil
}

func (s *fakeStore) Release(_ context.Context, owner string, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fe, err := s.leased(owner, id)
	if err != nil {
		return err
	}
	fe.owner = ""
	return nil
}

func (s *fakeStore) Get(_ context.Context, id int64) (domain.OutboxEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < 1 || int(id) > len(s.events) {
		return domain.OutboxEvent{}, domain.NotFound()
	}
	return cloneEvent(s.events[id-1].ev), nil
}

func (s *fakeStore) List(_ context.Context, state string, p domain.Page) ([]domain.OutboxEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []domain.OutboxEvent
	for _, fe := range slices.Backward(s.events) {
		if state == "" || fe.ev.State == state {
			out = append(out, cloneEvent(fe.ev))
		}
	}
	if p.Limit > 0 && len(out) > p.Limit {
		out = out[:p.Limit]
	}
	return out, nil
}

func (s *fakeStore) Retry(_ context.Context, id int64, now time.Time) (domain.OutboxEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < 1 || int(id) > len(s.events) {
		return domain.OutboxEvent{}, domain.NotFound()
	}
	fe := s.events[id-1]
	if fe.ev.State != domain.OutboxDead {
		return domain.OutboxEvent{}, domain.Errorf(domain.EConflict, "event %d is not dead", id)
	}
	fe.ev.State, fe.ev.Attempts, fe.ev.NextAttemptAt = domain.OutboxPending, 0, now.UTC()
	return cloneEvent(fe.ev), nil
}

// owner returns who holds event id ("" when nobody does).
func (s *fakeStore) owner(id int64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events[id-1].owner
}

// counts returns how many events are in each state.
func (s *fakeStore) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := map[string]int{}
	for _, fe := range s.events {
		c[fe.ev.State]++
	}
	return c
}

func (s *fakeStore) stats() (claims, maxClaimed, maxHeld int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claims, s.maxClaimed, s.maxHeld
}

func cloneEvent(e domain.OutboxEvent) domain.OutboxEvent {
	e.Done = slices.Clone(e.Done)
	return e
}

// fakeSink is a ports.Sink whose behaviour is a function field; it counts
// calls per event id and attempt number.
type fakeSink struct {
	name    string
	deliver func(ctx context.Context, e domain.OutboxEvent) error

	mu    sync.Mutex
	calls map[attemptKey]int // by event id and attempt
	ok    map[int64]int      // successful deliveries by event id
}

type attemptKey struct {
	id      int64
	attempt int
}

var _ ports.Sink = (*fakeSink)(nil)

func newSink(name string, deliver func(ctx context.Context, e domain.OutboxEvent) error) *fakeSink {
	return &fakeSink{name: name, deliver: deliver, calls: map[attemptKey]int{}, ok: map[int64]int{}}
}

func (s *fakeSink) Name() string { return s.name }

func (s *fakeSink) Deliver(ctx context.Context, e domain.OutboxEvent) error {
	s.mu.Lock()
	s.calls[attemptKey{e.ID, e.Attempts + 1}]++
	s.mu.Unlock()
	var err error
	if s.deliver != nil {
		err = s.deliver(ctx, e)
	}
	if err == nil {
		s.mu.Lock()
		s.ok[e.ID]++
		s.mu.Unlock()
	}
	return err
}

// callsFor returns how many times the sink was asked to deliver event id.
func (s *fakeSink) callsFor(id int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.calls {
		if k.id == id {
			n += c
		}
	}
	return n
}

// repeats lists every event attempt delivered more than once, and every
// event delivered successfully more than once.
func (s *fakeSink) repeats() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k, c := range s.calls {
		if c > 1 {
			out = append(out, fmt.Sprintf("%s: event %d attempt %d ran %d times", s.name, k.id, k.attempt, c))
		}
	}
	for id, c := range s.ok {
		if c > 1 {
			out = append(out, fmt.Sprintf("%s: event %d delivered %d times", s.name, id, c))
		}
	}
	return out
}

func (s *fakeSink) delivered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ok)
}

// fakeClock is a settable clock for deterministic back-off checks.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func mustAdd(t *testing.T, s ports.Outbox, n int) {
	t.Helper()
	// Due before both the fake clock and the real one.
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		e := domain.NewAssignmentEvent(domain.Record{ID: int64(i + 1), PatientID: 1, DoctorID: 2}, now)
		if err := s.Add(context.Background(), &e); err != nil {
			t.Fatal(err)
		}
	}
}
