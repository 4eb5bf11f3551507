package domain

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"math"
	"strconv"
	"time"
)

// KindDoctorAssigned is the one event and notification kind.
const KindDoctorAssigned = "doctor_assigned"

// Notification tells a doctor that a patient's record was assigned to them.
type Notification struct {
	ID        int64
	UserID    int64 // the doctor notified
	Kind      string
	RecordID  int64
	PatientID int64
	EventID   int64 // the outbox event it came from: one notification per event
	CreatedAt time.Time
	ReadAt    *time.Time
}

// Outbox states.
const (
	OutboxPending   = "pending"
	OutboxDelivered = "delivered"
	OutboxDead      = "dead"
)

// ValidOutboxState reports whether s names a state.
func ValidOutboxState(s string) bool {
	return s == OutboxPending || s == OutboxDelivered || s == OutboxDead
}

// Sink names: the ways an event is delivered. Each sink of an event has
// its own delivery state, so one sink never waits for another.
const (
	SinkNotification = "notification" // the in-API notification
	SinkEmail        = "email"
)

// ValidSink reports whether s names a sink.
func ValidSink(s string) bool { return s == SinkNotification || s == SinkEmail }

// OutboxEvent is an assignment waiting to be delivered. It is written in the
// same transaction as the assignment, so it exists if and only if the
// assignment committed. State, Attempts, LastError, NextAttemptAt and
// DeliveredAt summarise its deliveries (see Delivered).
type OutboxEvent struct {
	ID            int64
	Kind          string
	RecordID      int64
	PatientID     int64
	DoctorID      int64
	State         string
	Attempts      int
	LastError     string
	NextAttemptAt time.Time
	CreatedAt     time.Time
	DeliveredAt   *time.Time
	// Deliveries is the event's progress per sink, in sink order.
	Deliveries []Delivery
}

// Delivery is the progress of one event through one sink.
type Delivery struct {
	EventID       int64
	Sink          string
	State         string // OutboxPending, OutboxDelivered or OutboxDead
	Attempts      int
	LastError     string
	NextAttemptAt time.Time
	DeliveredAt   *time.Time
	// Since is when the delivery was first due (or due again after an
	// admin's retry): transient failures are given up by age from here.
	Since time.Time
}

// NewAssignmentEvent is the outbox event for a record newly assigned to a
// doctor, with one pending delivery per sink (the in-API notification
// alone when none is named).
func NewAssignmentEvent(r Record, now time.Time, sinks ...string) OutboxEvent {
	now = now.UTC()
	if len(sinks) == 0 {
		sinks = []string{SinkNotification}
	}
	e := OutboxEvent{
		Kind: KindDoctorAssigned, RecordID: r.ID, PatientID: r.PatientID, DoctorID: r.DoctorID,
		State: OutboxPending, NextAttemptAt: now, CreatedAt: now,
	}
	for _, s := range sinks {
		e.Deliveries = append(e.Deliveries, Delivery{Sink: s, State: OutboxPending, NextAttemptAt: now, Since: now})
	}
	return e
}

// Delivered marks e's delivery through sink as done at at (its first
// attempt) and summarises e again as the stores do: delivered once every
// sink is, pending while one is, the most attempts of any, delivered at
// the last delivery's time. It reports false if e has no such pending
// delivery.
func (e *OutboxEvent) Delivered(sink string, at time.Time) bool {
	at = at.UTC()
	found := false
	for i := range e.Deliveries {
		if d := &e.Deliveries[i]; d.Sink == sink && d.State == OutboxPending {
			d.State, d.Attempts, d.LastError, d.NextAttemptAt, d.DeliveredAt = OutboxDelivered, d.Attempts+1, "", at, &at
			found = true
		}
	}
	if !found {
		return false
	}
	e.State, e.Attempts, e.LastError, e.DeliveredAt = OutboxDelivered, 0, "", nil
	var last, next *time.Time
	var failing *Delivery // its error is the event's: a dead one first, then by sink
	for i, d := range e.Deliveries {
		e.Attempts = max(e.Attempts, d.Attempts)
		if d.State != OutboxDelivered && d.LastError != "" && (failing == nil || failsFirst(d, *failing)) {
			failing = &e.Deliveries[i]
		}
		switch d.State {
		case OutboxDead:
			e.State = OutboxDead
		case OutboxPending:
			if e.State != OutboxDead {
				e.State = OutboxPending
			}
			if next == nil || d.NextAttemptAt.Before(*next) {
				next = &d.NextAttemptAt
			}
		}
		if d.DeliveredAt != nil && (last == nil || d.DeliveredAt.After(*last)) {
			last = d.DeliveredAt
		}
	}
	if failing != nil {
		e.LastError = failing.Sink + ": " + failing.LastError
	}
	if next != nil {
		e.NextAttemptAt = *next
	}
	if e.State == OutboxDelivered && last != nil {
		t := *last
		e.DeliveredAt = &t
	}
	return true
}

// failsFirst orders failing deliveries for the event's last_error: a dead
// one before a pending one, then by sink.
func failsFirst(d, than Delivery) bool {
	if dead := d.State == OutboxDead; dead != (than.State == OutboxDead) {
		return dead
	}
	return d.Sink < than.Sink
}

// Delivery returns e's delivery through sink, and whether it has one.
func (e OutboxEvent) Delivery(sink string) (Delivery, bool) {
	for _, d := range e.Deliveries {
		if d.Sink == sink {
			return d, true
		}
	}
	return Delivery{}, false
}

// NotificationFor is the in-API notification an event delivers: one per
// event, dated at the event's commit.
func NotificationFor(e OutboxEvent) Notification {
	return Notification{
		UserID: e.DoctorID, Kind: e.Kind, RecordID: e.RecordID, PatientID: e.PatientID,
		EventID: e.ID, CreatedAt: e.CreatedAt,
	}
}

// Delivery outcomes, as an attempt's result and a metric label.
const (
	OutcomeDelivered = "delivered"
	OutcomeRetry     = "retry"
	OutcomeDead      = "dead"
)

// DeliveryResult is what one attempt of one delivery came to.
type DeliveryResult struct {
	EventID int64
	Sink    string
	Outcome string // OutcomeDelivered, OutcomeRetry or OutcomeDead
	Error   string // the failure, kept as last_error; empty when delivered
	At      time.Time
	Next    time.Time // the next attempt, for OutcomeRetry
}

// RetryPolicy decides what a failed attempt comes to: a permanent failure
// is dead at once; a transient one is retried with capped exponential
// back-off until the delivery is MaxAge old.
type RetryPolicy struct {
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	MaxAge      time.Duration
}

// Failed is the result of the attempt-th failed attempt of d at now; r in
// [0, 1) jitters the back-off.
func (p RetryPolicy) Failed(d Delivery, attempt int, now time.Time, errMsg string, permanent bool, r float64) DeliveryResult {
	res := DeliveryResult{EventID: d.EventID, Sink: d.Sink, Outcome: OutcomeDead, Error: errMsg, At: now}
	if permanent {
		return res
	}
	// The jitter never takes a delay past the cap: it is a promise to the
	// operator.
	next := now.Add(min(Backoff(attempt, p.BaseBackoff, p.MaxBackoff, r), p.MaxBackoff))
	if deadline := d.Since.Add(p.MaxAge); !next.Before(deadline) {
		// The next try would come after the give-up time: the mail
		// outage has lasted longer than the operator allows.
		return res
	}
	res.Outcome, res.Next = OutcomeRetry, next
	return res
}

// Backoff is the delay before attempt number attempts+1: exponential from
// base, capped at max, with jitter in [0.5, 1.5) taken from the caller's
// random value r in [0, 1) (no randomness is taken implicitly).
func Backoff(attempts int, base, max time.Duration, r float64) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	d := float64(base) * math.Pow(2, float64(attempts-1))
	if d > float64(max) {
		d = float64(max)
	}
	return time.Duration(d * (0.5 + r))
}

// Audit actions.
const (
	ActionRecordList    = "record.list"
	ActionRecordRead    = "record.read"
	ActionRecordCreate  = "record.create"
	ActionRecordUpdate  = "record.update"
	ActionRecordDelete  = "record.delete"
	ActionCommentCreate = "comment.create"
	ActionCommentRead   = "comment.read"
	ActionCommentList   = "comment.list"

	// Security events: record and patient are none.
	ActionSignIn              = "auth.signin"
	ActionRefreshReuse        = "auth.refresh_reuse"
	ActionPasswordChange      = "auth.password_change"
	ActionUserRegister        = "user.register"
	ActionUserApprove         = "user.approve"
	ActionUserDeactivate      = "user.deactivate"
	ActionUserActivate        = "user.activate"
	ActionUserCreateSuperuser = "user.create_superuser"
	ActionKeysRotate          = "keys.rotate"
	ActionOutboxRetry         = "outbox.retry"
)

// AuditActions lists every action, for filters that must name one.
var AuditActions = []string{
	ActionRecordList, ActionRecordRead, ActionRecordCreate, ActionRecordUpdate, ActionRecordDelete,
	ActionCommentCreate, ActionCommentRead, ActionCommentList,
	ActionSignIn, ActionRefreshReuse, ActionPasswordChange, ActionUserRegister, ActionUserApprove,
	ActionUserDeactivate, ActionUserActivate, ActionUserCreateSuperuser, ActionKeysRotate, ActionOutboxRetry,
}

// Audit outcomes.
const (
	OutcomeAllowed = "allowed"
	OutcomeDenied  = "denied"
)

// AuditEntry records one read or change of health data, or a refused try.
type AuditEntry struct {
	ID         int64
	At         time.Time
	ActorID    int64
	ActorRole  Role
	Action     string
	RecordID   int64 // 0: none (a list)
	PatientID  int64 // 0: none
	Outcome    string
	RequestID  string
	RemoteAddr string
	PrevHash   string
	Hash       string
}

// LegacyChainHash is the entry's hash as revision 1 chained it: SHA-256,
// unkeyed, over the previous hash and every field. Anyone who can write
// the database can recompute it, so it serves only to verify an old chain
// before re-keying it.
func (e AuditEntry) LegacyChainHash(prev string) string {
	sum := sha256.Sum256(appendAuditFields(nil, e, prev))
	return hex.EncodeToString(sum[:])
}

// appendAuditFields appends prev and every field of e, each prefixed with
// its length, so that no two entries encode alike.
func appendAuditFields(b []byte, e AuditEntry, prev string) []byte {
	field := func(f string) {
		b = strconv.AppendInt(b, int64(len(f)), 10)
		b = append(b, ':')
		b = append(b, f...)
		b = append(b, '|')
	}
	num := func(n int64) {
		var tmp [20]byte
		field(string(strconv.AppendInt(tmp[:0], n, 10)))
	}
	field(prev)
	num(e.ID)
	var tmp [40]byte
	field(string(e.At.UTC().AppendFormat(tmp[:0], time.RFC3339Nano)))
	num(e.ActorID)
	field(string(e.ActorRole))
	field(e.Action)
	num(e.RecordID)
	num(e.PatientID)
	field(e.Outcome)
	field(e.RequestID)
	field(e.RemoteAddr)
	return b
}

// AuditKey is the secret the audit chain is keyed with. It is kept outside
// the database, so that someone who can write the database but not read
// the key cannot forge, re-chain or truncate entries unseen.
type AuditKey []byte

// MinAuditKeyLen is the shortest key accepted: the hash's size.
const MinAuditKeyLen = 32

// AuditHasher computes the keyed chain: each entry's hash is an
// HMAC-SHA256 over the previous hash and the entry's fields, and the head
// (the last entry's id and hash) carries an HMAC of its own, so a head
// moved back to an earlier entry does not verify. It reuses its buffers:
// not safe for concurrent use.
type AuditHasher struct {
	mac hash.Hash
	buf []byte
	sum []byte
}

// NewAuditHasher hashes under k.
func NewAuditHasher(k AuditKey) *AuditHasher {
	return &AuditHasher{mac: hmac.New(sha256.New, k)}
}

// Domain separation: an entry's hash can never pass for a head's.
const (
	auditEntryTag = "healthrecord audit entry v2|"
	auditHeadTag  = "healthrecord audit head v2|"
)

// Entry is e's hash chained to prev.
func (h *AuditHasher) Entry(e AuditEntry, prev string) string {
	h.buf = appendAuditFields(append(h.buf[:0], auditEntryTag...), e, prev)
	return h.digest()
}

// Head is the MAC of a chain whose last entry is id with hash (0 and ""
// for an empty chain).
func (h *AuditHasher) Head(id int64, hash string) string {
	b := strconv.AppendInt(append(h.buf[:0], auditHeadTag...), id, 10)
	h.buf = append(append(b, '|'), hash...)
	return h.digest()
}

func (h *AuditHasher) digest() string {
	h.mac.Reset()
	h.mac.Write(h.buf)
	h.sum = h.mac.Sum(h.sum[:0])
	return hex.EncodeToString(h.sum)
}

// AuditHead is the chain's last entry, as `audit head` prints it for
// keeping outside the server.
type AuditHead struct {
	ID   int64
	Hash string
}

// AuditCheck is the outcome of verifying the chain: how many entries it
// holds and the first one that is broken (edited, deleted, re-chained, or
// missing since a head kept earlier), 0 when intact.
type AuditCheck struct {
	Entries     int64
	FirstBroken int64
}

// OK reports whether the chain verified.
func (c AuditCheck) OK() bool { return c.FirstBroken == 0 }

// Session is one sign-in: the family of refresh tokens rotated from one
// password check, and the access tokens issued with them.
type Session struct {
	ID        string
	UserID    int64
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
}

// Cursor marks a position in a newest-first list: created_at then id,
// both descending.
type Cursor struct {
	CreatedAt time.Time
	ID        int64
}

// Page asks for at most Limit items after After (nil: from the start).
// Limit is what was asked for; Size is what a page holds.
type Page struct {
	Limit int
	After *Cursor
}

// Page sizes.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// Size is the one page-size rule: DefaultPageSize when no limit was asked
// for, never more than MaxPageSize, so no client can make a page large.
func (p Page) Size() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageSize
	case p.Limit > MaxPageSize:
		return MaxPageSize
	}
	return p.Limit
}
