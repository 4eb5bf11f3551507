package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
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

// OutboxEvent is an assignment waiting to be delivered. It is written in the
// same transaction as the assignment, so it exists if and only if the
// assignment committed.
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
	// Done lists the sinks (by name) that have delivered this event, so a
	// retry repeats only the ones that failed.
	Done []string
}

// NewAssignmentEvent is the outbox event for a record newly assigned to a doctor.
func NewAssignmentEvent(r Record, now time.Time) OutboxEvent {
	now = now.UTC()
	return OutboxEvent{
		Kind: KindDoctorAssigned, RecordID: r.ID, PatientID: r.PatientID, DoctorID: r.DoctorID,
		State: OutboxPending, NextAttemptAt: now, CreatedAt: now,
	}
}

// DeliveredTo reports whether the sink named has delivered e.
func (e OutboxEvent) DeliveredTo(sink string) bool {
	for _, d := range e.Done {
		if d == sink {
			return true
		}
	}
	return false
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

// ChainHash is the entry's hash: SHA-256 over the previous entry's hash and
// every field, so editing or deleting an entry breaks the chain after it.
func (e AuditEntry) ChainHash(prev string) string {
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
type Page struct {
	Limit int
	After *Cursor
}

// Page sizes.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)
