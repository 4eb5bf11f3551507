package domain_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

// almostOne is the largest r a caller's [0, 1) random source can give.
var almostOne = math.Nextafter(1, 0)

func TestBackoff(t *testing.T) {
	const base, limit = time.Second, time.Minute
	tests := []struct {
		name     string
		attempts int
		r        float64
		want     time.Duration
	}{
		{"zero_attempts_counts_as_one", 0, 0.5, time.Second},
		{"negative_attempts_counts_as_one", -3, 0.5, time.Second},
		{"first", 1, 0.5, time.Second},
		{"second_doubles", 2, 0.5, 2 * time.Second},
		{"third_doubles_again", 3, 0.5, 4 * time.Second},
		{"sixth", 6, 0.5, 32 * time.Second},
		{"capped", 7, 0.5, time.Minute},
		{"capped_far_out", 10_000, 0.5, time.Minute},
		{"jitter_low_bound", 3, 0, 2 * time.Second},
		{"jitter_low_bound_capped", 50, 0, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, domain.Backoff(tt.attempts, base, limit, tt.r))
		})
	}

	t.Run("jitter_high_bound", func(t *testing.T) {
		// With r close to 1 the delay approaches 1.5 times the capped
		// exponential. At the very largest r below 1, 0.5+r rounds to 1.5
		// in float64, so 1.5 times is the bound that holds.
		for _, c := range []struct {
			attempts int
			nominal  time.Duration
		}{{3, 4 * time.Second}, {50, time.Minute}} {
			high := c.nominal * 3 / 2
			got := domain.Backoff(c.attempts, base, limit, 0.999999)
			assert.Less(t, got, high)
			assert.Greater(t, got, high-time.Millisecond)
			assert.LessOrEqual(t, domain.Backoff(c.attempts, base, limit, almostOne), high)
		}
	})

	t.Run("never_decreases_with_attempts", func(t *testing.T) {
		prev := time.Duration(0)
		for n := 1; n < 80; n++ {
			d := domain.Backoff(n, base, limit, 0.3)
			assert.GreaterOrEqual(t, d, prev, "attempt %d", n)
			prev = d
		}
	})
}

// revision1Hash is the chain hash as revision 1 computed it, copied here:
// an old chain must verify byte for byte before it is re-keyed.
func revision1Hash(e domain.AuditEntry, prev string) string {
	var b strings.Builder
	for _, f := range []string{
		prev, strconv.FormatInt(e.ID, 10), e.At.UTC().Format(time.RFC3339Nano),
		strconv.FormatInt(e.ActorID, 10), string(e.ActorRole), e.Action,
		strconv.FormatInt(e.RecordID, 10), strconv.FormatInt(e.PatientID, 10),
		e.Outcome, e.RequestID, e.RemoteAddr,
	} {
		b.WriteString(strconv.Itoa(len(f)))
		b.WriteByte(':')
		b.WriteString(f)
		b.WriteByte('|')
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

func TestAuditEntry_Hashes(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	base := domain.AuditEntry{
		ID: 7, At: at, ActorID: 1, ActorRole: domain.RolePatient, Action: domain.ActionRecordRead,
		RecordID: 5, PatientID: 1, Outcome: domain.OutcomeAllowed, RequestID: "req-1", RemoteAddr: "10.0.0.1",
	}
	const prev = "abc123"
	key := domain.AuditKey(bytes.Repeat([]byte{1}, 32))
	keyed := domain.NewAuditHasher(key)

	t.Run("legacy_is_revision_1", func(t *testing.T) {
		assert.Equal(t, revision1Hash(base, prev), base.LegacyChainHash(prev))
		assert.Equal(t, revision1Hash(base, ""), base.LegacyChainHash(""))
	})
	t.Run("keyed_is_hmac_under_the_key", func(t *testing.T) {
		h := keyed.Entry(base, prev)
		assert.NotEqual(t, base.LegacyChainHash(prev), h)
		assert.NotEqual(t, h, domain.NewAuditHasher(domain.AuditKey(bytes.Repeat([]byte{2}, 32))).Entry(base, prev), "another key")
		assert.Equal(t, h, domain.NewAuditHasher(key).Entry(base, prev), "a fresh hasher agrees")
	})
	t.Run("head_is_keyed", func(t *testing.T) {
		h := keyed.Head(7, "abc")
		assert.Regexp(t, regexp.MustCompile(`^[0-9a-f]{64}$`), h)
		assert.Equal(t, h, keyed.Head(7, "abc"))
		assert.NotEqual(t, h, keyed.Head(6, "abc"))
		assert.NotEqual(t, h, keyed.Head(7, "abd"))
		assert.NotEqual(t, h, domain.NewAuditHasher(domain.AuditKey(bytes.Repeat([]byte{2}, 32))).Head(7, "abc"))
		assert.NotEqual(t, keyed.Entry(base, prev), keyed.Head(base.ID, prev), "an entry hash never passes for a head")
	})

	for name, hash := range map[string]func(e domain.AuditEntry, prev string) string{
		"legacy": func(e domain.AuditEntry, prev string) string { return e.LegacyChainHash(prev) },
		"keyed":  keyed.Entry,
	} {
		t.Run(name, func(t *testing.T) { testChainHash(t, base, prev, hash) })
	}
}

// testChainHash holds a chain hash to what the chain relies on.
func testChainHash(t *testing.T, base domain.AuditEntry, prev string, hash func(e domain.AuditEntry, prev string) string) {
	h := hash(base, prev)
	t.Run("deterministic_hex_sha256", func(t *testing.T) {
		assert.Equal(t, h, hash(base, prev))
		assert.Regexp(t, regexp.MustCompile(`^[0-9a-f]{64}$`), h)
	})
	t.Run("same_instant_in_another_zone", func(t *testing.T) {
		e := base
		e.At = base.At.In(time.FixedZone("X", 3600))
		assert.Equal(t, h, hash(e, prev))
	})
	t.Run("stored_hash_fields_not_hashed", func(t *testing.T) {
		e := base
		e.PrevHash, e.Hash = "x", "y"
		assert.Equal(t, h, hash(e, prev))
	})
	t.Run("prev_changes_it", func(t *testing.T) {
		assert.NotEqual(t, h, hash(base, "abc124"))
		assert.NotEqual(t, h, hash(base, ""))
	})

	mutations := []struct {
		name string
		f    func(*domain.AuditEntry)
	}{
		{"id", func(e *domain.AuditEntry) { e.ID++ }},
		{"at", func(e *domain.AuditEntry) { e.At = e.At.Add(time.Nanosecond) }},
		{"actor", func(e *domain.AuditEntry) { e.ActorID = 2 }},
		{"actor_role", func(e *domain.AuditEntry) { e.ActorRole = domain.RoleDoctor }},
		{"action", func(e *domain.AuditEntry) { e.Action = domain.ActionRecordUpdate }},
		{"record", func(e *domain.AuditEntry) { e.RecordID = 6 }},
		{"patient", func(e *domain.AuditEntry) { e.PatientID = 2 }},
		{"outcome", func(e *domain.AuditEntry) { e.Outcome = domain.OutcomeDenied }},
		{"request_id", func(e *domain.AuditEntry) { e.RequestID = "req-2" }},
		{"remote_addr", func(e *domain.AuditEntry) { e.RemoteAddr = "10.0.0.2" }},
		// Fields are length-prefixed: moving a character across a field
		// boundary is a different entry.
		{"boundary_shift", func(e *domain.AuditEntry) { e.RequestID, e.RemoteAddr = "req-11", "0.0.0.1" }},
	}
	seen := map[string]string{h: "base"}
	for _, m := range mutations {
		t.Run("field_"+m.name, func(t *testing.T) {
			e := base
			m.f(&e)
			got := hash(e, prev)
			if other, dup := seen[got]; dup {
				t.Fatalf("hash of %s equals hash of %s", m.name, other)
			}
			seen[got] = m.name
		})
	}
}

func TestNewAssignmentEvent(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	r := domain.Record{ID: 5, PatientID: 1, DoctorID: 10, Title: "secret", Content: "secret"}
	pending := func(sink string) domain.Delivery {
		return domain.Delivery{Sink: sink, State: domain.OutboxPending, NextAttemptAt: now.UTC(), Since: now.UTC()}
	}
	assert.Equal(t, domain.OutboxEvent{
		Kind: domain.KindDoctorAssigned, RecordID: 5, PatientID: 1, DoctorID: 10,
		State: domain.OutboxPending, NextAttemptAt: now.UTC(), CreatedAt: now.UTC(),
		Deliveries: []domain.Delivery{pending(domain.SinkNotification), pending(domain.SinkEmail)},
	}, domain.NewAssignmentEvent(r, now, domain.SinkNotification, domain.SinkEmail))
	only := domain.NewAssignmentEvent(r, now)
	assert.Equal(t, []domain.Delivery{pending(domain.SinkNotification)}, only.Deliveries, "the in-API notification is always on")
}

func TestOutboxEvent_Delivered(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	at := now.Add(time.Second)
	r := domain.Record{ID: 5, PatientID: 1, DoctorID: 10}

	t.Run("the only sink: the event is delivered", func(t *testing.T) {
		e := domain.NewAssignmentEvent(r, now)
		require.True(t, e.Delivered(domain.SinkNotification, at))
		assert.Equal(t, domain.OutboxDelivered, e.State)
		assert.Equal(t, 1, e.Attempts)
		require.NotNil(t, e.DeliveredAt)
		assert.Equal(t, at, *e.DeliveredAt)
		d, _ := e.Delivery(domain.SinkNotification)
		assert.Equal(t, domain.Delivery{Sink: domain.SinkNotification, State: domain.OutboxDelivered, Attempts: 1,
			NextAttemptAt: at, DeliveredAt: &at, Since: now}, d)
		assert.False(t, e.Delivered(domain.SinkNotification, at), "a delivered sink is not delivered again")
	})
	t.Run("email still to go: the event stays pending", func(t *testing.T) {
		e := domain.NewAssignmentEvent(r, now, domain.SinkNotification, domain.SinkEmail)
		require.True(t, e.Delivered(domain.SinkNotification, at))
		assert.Equal(t, domain.OutboxPending, e.State)
		assert.Equal(t, 1, e.Attempts)
		assert.Nil(t, e.DeliveredAt)
		assert.Equal(t, now, e.NextAttemptAt, "due when the email is")
		email, _ := e.Delivery(domain.SinkEmail)
		assert.Equal(t, domain.OutboxPending, email.State)
	})
	t.Run("a failing sink's error is the event's, a dead one first", func(t *testing.T) {
		e := domain.NewAssignmentEvent(r, now, domain.SinkNotification, domain.SinkEmail)
		e.Deliveries[1].State, e.Deliveries[1].LastError = domain.OutboxDead, "550 no such mailbox"
		require.True(t, e.Delivered(domain.SinkNotification, at))
		assert.Equal(t, domain.OutboxDead, e.State)
		assert.Equal(t, "email: 550 no such mailbox", e.LastError)
	})
	t.Run("no such sink", func(t *testing.T) {
		e := domain.NewAssignmentEvent(r, now)
		assert.False(t, e.Delivered(domain.SinkEmail, at))
		assert.Equal(t, domain.OutboxPending, e.State)
	})
}

func TestRetryPolicy_Failed(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	p := domain.RetryPolicy{BaseBackoff: 2 * time.Second, MaxBackoff: 15 * time.Minute, MaxAge: 72 * time.Hour}
	d := domain.Delivery{EventID: 7, Sink: domain.SinkEmail, Since: t0}

	perm := p.Failed(d, 1, t0, "550 no such mailbox", true, 0.5)
	assert.Equal(t, domain.OutcomeDead, perm.Outcome, "a permanent refusal is dead at the first attempt")
	assert.Equal(t, "550 no such mailbox", perm.Error)

	r := p.Failed(d, 1, t0, "connection refused", false, 0.5)
	assert.Equal(t, domain.OutcomeRetry, r.Outcome)
	assert.Equal(t, t0.Add(2*time.Second), r.Next)

	// Far more attempts than the old limit of eight: still retried, the
	// delay capped at 15 minutes whatever the jitter.
	now := t0.Add(10 * time.Hour)
	r = p.Failed(d, 40, now, "421 try later", false, 0.999)
	assert.Equal(t, domain.OutcomeRetry, r.Outcome)
	assert.Equal(t, now.Add(15*time.Minute), r.Next)

	// Given up by age: the next try would fall after Since+MaxAge.
	late := t0.Add(72*time.Hour - time.Minute)
	assert.Equal(t, domain.OutcomeDead, p.Failed(d, 300, late, "timeout", false, 0.5).Outcome)
}

func TestValidOutboxState(t *testing.T) {
	for _, s := range []string{domain.OutboxPending, domain.OutboxDelivered, domain.OutboxDead} {
		assert.True(t, domain.ValidOutboxState(s), s)
	}
	for _, s := range []string{"", "PENDING", "failed"} {
		assert.False(t, domain.ValidOutboxState(s), s)
	}
}
