// Package ports declares the interfaces the application needs from the
// outside world. Each method documents the domain error codes it returns;
// any other error is an internal failure.
package ports

import (
	"context"
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

// Mailer sends email. Errors are delivery failures, retried by the caller.
type Mailer interface {
	Send(ctx context.Context, m domain.Email) error
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
	// username is taken.
	Create(ctx context.Context, u *domain.User) error
	// ByID returns ENotFound when absent.
	ByID(ctx context.Context, id int64) (domain.User, error)
	// ByUsername returns ENotFound when absent.
	ByUsername(ctx context.Context, username string) (domain.User, error)
	// Update saves email, approved, active and password hash. ENotFound.
	Update(ctx context.Context, u domain.User) error
	// List returns accounts newest first.
	List(ctx context.Context, f UserFilter, p domain.Page) ([]domain.User, error)
}

// RecordFilter selects records; exactly one of PatientID or DoctorID is set
// by the app, so lists are filtered by actor in SQL.
type RecordFilter struct {
	PatientID int64
	DoctorID  int64
}

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
}

// CommentFilter selects comments; zero fields do not filter. The app always
// sets DoctorID or PatientID (the record's owner).
type CommentFilter struct {
	DoctorID  int64
	PatientID int64
	RecordID  int64
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
	// MarkRead sets read_at (once) on the user's notification id and
	// returns it. ENotFound when absent or another user's.
	MarkRead(ctx context.Context, userID, id int64, now time.Time) (domain.Notification, error)
}

// Outbox stores events to deliver. Add is used inside the assignment's
// transaction; the rest serve the dispatcher and the admin.
type Outbox interface {
	// Add stores e and sets its ID.
	Add(ctx context.Context, e *domain.OutboxEvent) error
	// Claim leases up to limit pending events due at now to owner until
	// now+lease, oldest first; events leased to another owner whose lease
	// has not run out are skipped, so two dispatchers never run the same
	// attempt.
	Claim(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]domain.OutboxEvent, error)
	// MarkSinkDone records that sink delivered event id. EConflict when
	// owner no longer holds the lease.
	MarkSinkDone(ctx context.Context, owner string, id int64, sink string) error
	// Delivered marks the event delivered and releases it. EConflict when
	// owner no longer holds the lease.
	Delivered(ctx context.Context, owner string, id int64, now time.Time) error
	// Failed counts an attempt, keeps errMsg, and either schedules the next
	// attempt at next or, with dead, sets the event aside. EConflict when
	// owner no longer holds the lease.
	Failed(ctx context.Context, owner string, id int64, errMsg string, next time.Time, dead bool) error
	// Release gives back a lease without counting an attempt (shutdown).
	Release(ctx context.Context, owner string, id int64) error
	// Get returns ENotFound when absent.
	Get(ctx context.Context, id int64) (domain.OutboxEvent, error)
	// List returns events newest first; state "" means all.
	List(ctx context.Context, state string, p domain.Page) ([]domain.OutboxEvent, error)
	// Retry puts a dead event back to pending, due at now, with its attempts
	// reset. ENotFound; EConflict when it is not dead.
	Retry(ctx context.Context, id int64, now time.Time) (domain.OutboxEvent, error)
}

// AuditFilter narrows the audit trail; zero fields do not filter.
type AuditFilter struct {
	ActorID   int64
	RecordID  int64
	PatientID int64
	Action    string
}

// Audit is the append-only, hash-chained audit trail.
type Audit interface {
	// Append stores entries in order, setting each one's ID, PrevHash and
	// Hash so that it chains to the entry before it.
	Append(ctx context.Context, entries ...domain.AuditEntry) error
	// List returns entries newest first.
	List(ctx context.Context, f AuditFilter, p domain.Page) ([]domain.AuditEntry, error)
	// Verify walks the whole chain and returns the id of the first entry
	// whose hash or link does not match (0 when intact). A deleted entry
	// shows as a broken link at the entry after it (or a missing tail, see
	// the adapter).
	Verify(ctx context.Context) (brokenID int64, err error)
}

// RevokedSession is a sign-in that was revoked, and when.
type RevokedSession struct {
	ID        string
	RevokedAt time.Time
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
	// RevokedSince lists sign-ins revoked at or after since, oldest first.
	RevokedSince(ctx context.Context, since time.Time) ([]RevokedSession, error)
	// UseRefresh records that the refresh token jti was presented. It
	// reports false when it had been presented before: a reuse.
	UseRefresh(ctx context.Context, jti, sessionID string, expiresAt, now time.Time) (bool, error)
}

// Repos are the repositories, bound either to the database (each call on
// its own) or to one transaction.
type Repos interface {
	Users() Users
	Records() Records
	Comments() Comments
	Notifications() Notifications
	Outbox() Outbox
	Audit() Audit
	Sessions() Sessions
}

// Tx is a unit of work: repositories bound to one transaction.
type Tx interface {
	Repos
}

// Store is the database: repositories for single reads, and transactions.
type Store interface {
	Repos
	// WithinTx runs fn in one write transaction: committed when fn returns
	// nil (the commit error is returned), rolled back otherwise. Writes
	// that must happen together, such as an assignment and its outbox
	// event, go in one call.
	WithinTx(ctx context.Context, fn func(tx Tx) error) error
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

// Sink delivers an outbox event one way (an in-API notification, an
// email). Delivering the same event again must be harmless.
type Sink interface {
	Name() string
	Deliver(ctx context.Context, e domain.OutboxEvent) error
}
