// Package ports declares the interfaces the application needs from the
// outside world. Each method documents the domain error codes it returns;
// any other error is an internal failure.
package ports

import (
	"context"
	"errors"
	"time"

	"healthrecord/domain"
)

// Clock tells the time; tests pass a fixed one.
type Clock interface {
	Now() time.Time
}

// PasswordHasher makes and checks slow salted password hashes. It bounds
// how many hashes run at once, so a burst of sign-ins cannot exhaust memory;
// waiting for a slot honours ctx.
type PasswordHasher interface {
	Hash(ctx context.Context, password string) (string, error)
	// Verify reports whether password matches hash. A malformed hash is an
	// error, not a mismatch.
	Verify(ctx context.Context, hash, password string) (bool, error)
}

// Token types, as the token_type claim spells them.
const (
	AccessToken  = "access"
	RefreshToken = "refresh"
)

// TokenClaims are what a signed token carries.
type TokenClaims struct {
	Type      string // AccessToken or RefreshToken
	UserID    int64
	Role      domain.Role
	SessionID string // the sign-in (refresh family) the token belongs to
	JTI       string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// TokenIssuer signs and verifies tokens with server-held keys and a fixed
// algorithm.
type TokenIssuer interface {
	// Issue signs c. JTI, IssuedAt and ExpiresAt must be set by the caller.
	Issue(c TokenClaims) (string, error)
	// Verify checks signature, algorithm, expiry, not-before, required claims
	// and that the token is of type want. Any failure is EUnauthorized.
	Verify(token string, want string, now time.Time) (TokenClaims, error)
}

// Mailer sends email. An error that IsPermanent is a refusal of this
// message that retrying will not change (an SMTP 5xx reply to it); any
// other error is transient.
type Mailer interface {
	Send(ctx context.Context, m domain.Email) error
}

// PermanentError marks a delivery failure that retrying will not change.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// DeliveryObserver hears the outcome of every delivery attempt (a metrics
// adapter counts them). sinceCommit is the time from the event's commit to
// the attempt's end; it is the commit-to-delivery time when outcome is
// domain.OutcomeDelivered. It must not block.
type DeliveryObserver interface {
	ObserveDelivery(sink, outcome string, sinceCommit time.Duration)
}

// UserFilter narrows an account list; nil fields do not filter.
type UserFilter struct {
	Role     *domain.Role
	Approved *bool
	Active   *bool
	// Search keeps usernames containing it, ASCII letters in either case.
	Search string
}

// Users stores accounts.
type Users interface {
	// Create stores u and sets its ID. EInvalid (username field) when the
	// username is taken: usernames are compared after Unicode NFKC
	// normalisation and case folding.
	Create(ctx context.Context, u *domain.User) error
	// ByID returns ENotFound when absent.
	ByID(ctx context.Context, id int64) (domain.User, error)
	// ByUsername finds the account whose username compares equal to
	// username, as Create compares them. ENotFound when absent.
	ByUsername(ctx context.Context, username string) (domain.User, error)
	// Update saves email, approved, active and password hash. ENotFound.
	Update(ctx context.Context, u domain.User) error
	// List returns accounts newest first.
	List(ctx context.Context, f UserFilter, p domain.Page) ([]domain.User, error)
}

// RecordFilter selects records: the actor's scope (the one visibility
// rule, domain.ScopeOf), so lists are filtered by actor in SQL. Exactly one
// of PatientID or DoctorID is set.
type RecordFilter = domain.RecordScope

// Records stores health records. Records returned carry their comments,
// oldest first.
type Records interface {
	// Create stores r and sets its ID.
	Create(ctx context.Context, r *domain.Record) error
	// Get returns ENotFound when absent.
	Get(ctx context.Context, id int64) (domain.Record, error)
	// Update saves title, content, doctor and updated_at. ENotFound.
	Update(ctx context.Context, r domain.Record) error
	// Delete removes the record and its comments. ENotFound.
	Delete(ctx context.Context, id int64) error
	// List returns matching records newest first.
	List(ctx context.Context, f RecordFilter, p domain.Page) ([]domain.Record, error)
	// StoredBytes is the UTF-8 size of the patient's records (title and
	// content) and of the comments on them, for the storage quota.
	StoredBytes(ctx context.Context, patientID int64) (int64, error)
}

// CommentFilter selects the comments on the records Records selects (the
// actor's scope, always set by the app: a comment is visible exactly when
// its record is), on one record when RecordID is not 0.
type CommentFilter struct {
	Records  RecordFilter
	RecordID int64
}

// Comments stores clinical comments. There is no update or delete.
type Comments interface {
	// Create stores c and sets its ID.
	Create(ctx context.Context, c *domain.Comment) error
	// Get returns ENotFound when absent.
	Get(ctx context.Context, id int64) (domain.Comment, error)
	// List returns matching comments newest first.
	List(ctx context.Context, f CommentFilter, p domain.Page) ([]domain.Comment, error)
}

// Notifications stores in-API notifications.
type Notifications interface {
	// Create stores n unless a notification for n.EventID exists already,
	// and reports whether it stored one; n.ID is set either way.
	Create(ctx context.Context, n *domain.Notification) (bool, error)
	// List returns the user's notifications newest first.
	List(ctx context.Context, userID int64, p domain.Page) ([]domain.Notification, error)
	// After returns at most limit of the user's notifications with an id
	// above afterID, in id order: what a live stream has not sent yet.
	After(ctx context.Context, userID, afterID int64, limit int) ([]domain.Notification, error)
	// MarkRead sets read_at (once) on the user's notification id and
	// returns it. ENotFound when absent or another user's.
	MarkRead(ctx context.Context, userID, id int64, now time.Time) (domain.Notification, error)
}

// OutboxFilter narrows the outbox list; empty fields do not filter. With
// Sink, State is the state of that sink's delivery; without, the event's.
type OutboxFilter struct {
	State string
	Sink  string
}

// Outbox stores events to deliver, each with one delivery per sink. Add is
// used inside the assignment's transaction; the rest serve the delivery
// use cases and the admin. An event's summary (state, attempts,
// last_error, next_attempt_at, delivered_at) follows its deliveries: dead
// when one is dead, else pending when one is pending, else delivered.
type Outbox interface {
	// Add stores e with a pending delivery per e.Deliveries and sets the
	// ids.
	Add(ctx context.Context, e *domain.OutboxEvent) error
	// Claim leases up to limit pending deliveries through sink due at now
	// to owner until now+lease, oldest due first; deliveries leased to
	// another owner whose lease has not run out are skipped, so two
	// dispatchers never run the same attempt. Each event returned carries
	// the claimed delivery alone in Deliveries.
	Claim(ctx context.Context, sink, owner string, now time.Time, lease time.Duration, limit int) ([]domain.OutboxEvent, error)
	// Record stores the results of attempts on deliveries leased to owner,
	// each counting one attempt and releasing the lease, all in one write.
	// Results for deliveries owner no longer holds are skipped (another
	// dispatcher has them now); it returns how many were stored.
	Record(ctx context.Context, owner string, results []domain.DeliveryResult) (int, error)
	// Release gives back owner's leases on the events' deliveries through
	// sink without counting an attempt (shutdown).
	Release(ctx context.Context, owner, sink string, ids []int64) error
	// Get returns the event with all its deliveries. ENotFound.
	Get(ctx context.Context, id int64) (domain.OutboxEvent, error)
	// List returns events, with their deliveries, newest first.
	List(ctx context.Context, f OutboxFilter, p domain.Page) ([]domain.OutboxEvent, error)
	// Retry puts a dead event's dead deliveries back to pending, due at
	// now, with their attempts reset and their age counted from now.
	// ENotFound; EConflict when the event is not dead.
	Retry(ctx context.Context, id int64, now time.Time) (domain.OutboxEvent, error)
}

// AuditFilter narrows the audit trail; zero fields do not filter.
type AuditFilter struct {
	ActorID   int64
	RecordID  int64
	PatientID int64
	Action    string
}

// Audit is the append-only audit trail, a chain keyed under a key the
// adapter holds (kept outside the database).
type Audit interface {
	// Append stores entries in order, setting each one's ID, PrevHash and
	// Hash so that it chains to the entry before it, and moves the keyed
	// head.
	Append(ctx context.Context, entries ...domain.AuditEntry) error
	// List returns entries newest first.
	List(ctx context.Context, f AuditFilter, p domain.Page) ([]domain.AuditEntry, error)
	// Head returns the chain's last entry as the head records it (zero for
	// an empty chain), without verifying it.
	Head(ctx context.Context) (domain.AuditHead, error)
	// Verify walks the whole chain under the key: ids without gaps, each
	// link, each hash, and the head's MAC. since, when not nil, is a head
	// kept earlier that must still be in the chain. A deleted entry shows
	// as a break at the entry after it; a truncated tail at the head, or
	// at the first entry missing since the head kept.
	Verify(ctx context.Context, since *domain.AuditHead) (domain.AuditCheck, error)
}

// RevokedSession is a sign-in that was revoked, when, and the revocation's
// sequence number.
type RevokedSession struct {
	ID        string
	RevokedAt time.Time
	// Seq increases with every committed revocation (several sign-ins
	// revoked together may share one), in commit order.
	Seq int64
}

// Sessions stores sign-ins and the refresh tokens already used.
type Sessions interface {
	// Create stores s.
	Create(ctx context.Context, s domain.Session) error
	// Get returns ENotFound when absent.
	Get(ctx context.Context, id string) (domain.Session, error)
	// Revoke revokes one sign-in (idempotent). ENotFound when absent.
	Revoke(ctx context.Context, id string, now time.Time) error
	// RevokeUser revokes every live sign-in of the user except keep (""
	// keeps none).
	RevokeUser(ctx context.Context, userID int64, keep string, now time.Time) error
	// RevokedAfter lists sign-ins whose revocation is numbered above
	// afterSeq and dated at or after notBefore, in sequence order. A
	// poller passing the highest Seq it saw misses nothing, however long a
	// revoking write took to commit.
	RevokedAfter(ctx context.Context, afterSeq int64, notBefore time.Time) ([]RevokedSession, error)
	// UseRefresh records that the refresh token jti was presented. It
	// reports false when it had been presented before: a reuse.
	UseRefresh(ctx context.Context, jti, sessionID string, expiresAt, now time.Time) (bool, error)
}

// Repos are the repositories, bound either to the database (each call on
// its own) or to one transaction (the unit of work WithinTx hands out).
type Repos interface {
	Users() Users
	Records() Records
	Comments() Comments
	Notifications() Notifications
	Outbox() Outbox
	Audit() Audit
	Sessions() Sessions
}

// Store is the database: repositories for single reads, and transactions.
type Store interface {
	Repos
	// WithinTx runs fn in one write transaction: committed when fn returns
	// nil (the commit error is returned), rolled back otherwise. Writes
	// that must happen together, such as an assignment and its outbox
	// event, go in one call.
	WithinTx(ctx context.Context, fn func(tx Repos) error) error
	// Counts totals accounts, outbox events and audit entries, for the
	// admin's overview, from one snapshot.
	Counts(ctx context.Context) (Counts, error)
}

// Counts are the store's totals. Every role and every outbox state has a
// key, zero when there is none.
type Counts struct {
	UsersByRole map[domain.Role]int64
	// PendingDoctors are active doctors not yet approved.
	PendingDoctors int64
	OutboxByState  map[string]int64
	AuditEntries   int64
}
