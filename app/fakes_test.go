package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// memDB is an in-memory database behind every fake repository. A
// transaction snapshots it and puts the snapshot back when the closure
// fails (or when CommitErr is set), so rollback is observable.
type memDB struct {
	mu   sync.Mutex
	txMu sync.Mutex // one write transaction at a time, as SQLite

	nextID        int64
	users         map[int64]domain.User
	records       map[int64]domain.Record
	comments      map[int64]domain.Comment
	notifications map[int64]domain.Notification
	outbox        map[int64]domain.OutboxEvent
	audit         []domain.AuditEntry
	sessions      map[string]domain.Session
	usedRefresh   map[string]bool

	// outboxInTx and auditInTx say whether each write happened inside
	// WithinTx (by outbox id, and by audit position).
	outboxInTx map[int64]bool
	auditInTx  []bool

	// Fail, when set, may answer an operation ("Users.Create", "WithinTx",
	// …) with an error instead of the store.
	Fail func(op string) error
	// CommitErr, when set, makes WithinTx roll back after fn succeeded and
	// return it, as a failed commit would.
	CommitErr error
	// txs counts transactions begun.
	txs int
	// revokedSeq numbers revocations, as a store's sequence (never rolled
	// back: a gap is harmless).
	revokedSeq map[string]int64
	revokeSeq  int64
}

func newMemDB() *memDB {
	return &memDB{
		users: map[int64]domain.User{}, records: map[int64]domain.Record{}, comments: map[int64]domain.Comment{},
		notifications: map[int64]domain.Notification{}, outbox: map[int64]domain.OutboxEvent{},
		sessions: map[string]domain.Session{}, usedRefresh: map[string]bool{}, outboxInTx: map[int64]bool{},
		revokedSeq: map[string]int64{},
	}
}

// snapshot is a copy of every table, to restore on rollback.
type snapshot struct {
	nextID        int64
	users         map[int64]domain.User
	records       map[int64]domain.Record
	comments      map[int64]domain.Comment
	notifications map[int64]domain.Notification
	outbox        map[int64]domain.OutboxEvent
	audit         []domain.AuditEntry
	sessions      map[string]domain.Session
	usedRefresh   map[string]bool
	outboxInTx    map[int64]bool
	auditInTx     []bool
}

func (db *memDB) snapshot() snapshot {
	db.mu.Lock()
	defer db.mu.Unlock()
	return snapshot{
		nextID: db.nextID, users: maps.Clone(db.users), records: maps.Clone(db.records),
		comments: maps.Clone(db.comments), notifications: maps.Clone(db.notifications),
		outbox: maps.Clone(db.outbox), audit: slices.Clone(db.audit), sessions: maps.Clone(db.sessions),
		usedRefresh: maps.Clone(db.usedRefresh), outboxInTx: maps.Clone(db.outboxInTx), auditInTx: slices.Clone(db.auditInTx),
	}
}

func (db *memDB) restore(s snapshot) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.nextID, db.users, db.records, db.comments, db.notifications = s.nextID, s.users, s.records, s.comments, s.notifications
	db.outbox, db.audit, db.sessions, db.usedRefresh = s.outbox, s.audit, s.sessions, s.usedRefresh
	db.outboxInTx, db.auditInTx = s.outboxInTx, s.auditInTx
}

// fail consults Fail for op; the caller holds no lock.
func (db *memDB) fail(op string) error {
	if db.Fail == nil {
		return nil
	}
	return db.Fail(op)
}

func (db *memDB) id() int64 { db.nextID++; return db.nextID }

// failOn returns a Fail function answering err for the operations named.
func failOn(err error, ops ...string) func(string) error {
	return func(op string) error {
		if slices.Contains(ops, op) {
			return err
		}
		return nil
	}
}

// failTimes returns a Fail function answering err for the first n calls
// of the operations named, and nil after.
func failTimes(n int, err error, ops ...string) func(string) error {
	var mu sync.Mutex
	return func(op string) error {
		mu.Lock()
		defer mu.Unlock()
		if n > 0 && slices.Contains(ops, op) {
			n--
			return err
		}
		return nil
	}
}

// page is the newest-first, cursor-after, limit-bounded slice of items.
func page[T any](items []T, key func(T) domain.Cursor, p domain.Page) []T {
	slices.SortFunc(items, func(a, b T) int {
		ka, kb := key(a), key(b)
		if c := kb.CreatedAt.Compare(ka.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(kb.ID, ka.ID)
	})
	var out []T
	for _, it := range items {
		k := key(it)
		if p.After != nil && (k.CreatedAt.After(p.After.CreatedAt) ||
			(k.CreatedAt.Equal(p.After.CreatedAt) && k.ID >= p.After.ID)) {
			continue
		}
		if p.Limit > 0 && len(out) == p.Limit {
			break
		}
		out = append(out, it)
	}
	return out
}

// fakeStore is the ports.Store over a memDB; fakeTx the same repositories
// marked as inside a transaction.
type fakeStore struct{ db *memDB }

type fakeTx struct{ db *memDB }

var (
	_ ports.Store         = (*fakeStore)(nil)
	_ ports.Repos         = (*fakeTx)(nil)
	_ ports.Users         = (*fakeUsers)(nil)
	_ ports.Records       = (*fakeRecords)(nil)
	_ ports.Comments      = (*fakeComments)(nil)
	_ ports.Notifications = (*fakeNotifications)(nil)
	_ ports.Outbox        = (*fakeOutbox)(nil)
	_ ports.Audit         = (*fakeAudit)(nil)
	_ ports.Sessions      = (*fakeSessions)(nil)
)

func (s *fakeStore) Users() ports.Users                 { return &fakeUsers{s.db} }
func (s *fakeStore) Records() ports.Records             { return &fakeRecords{s.db} }
func (s *fakeStore) Comments() ports.Comments           { return &fakeComments{s.db} }
func (s *fakeStore) Notifications() ports.Notifications { return &fakeNotifications{s.db} }
func (s *fakeStore) Outbox() ports.Outbox               { return &fakeOutbox{s.db, false} }
func (s *fakeStore) Audit() ports.Audit                 { return &fakeAudit{s.db, false} }
func (s *fakeStore) Sessions() ports.Sessions           { return &fakeSessions{s.db} }

func (t *fakeTx) Users() ports.Users                 { return &fakeUsers{t.db} }
func (t *fakeTx) Records() ports.Records             { return &fakeRecords{t.db} }
func (t *fakeTx) Comments() ports.Comments           { return &fakeComments{t.db} }
func (t *fakeTx) Notifications() ports.Notifications { return &fakeNotifications{t.db} }
func (t *fakeTx) Outbox() ports.Outbox               { return &fakeOutbox{t.db, true} }
func (t *fakeTx) Audit() ports.Audit                 { return &fakeAudit{t.db, true} }
func (t *fakeTx) Sessions() ports.Sessions           { return &fakeSessions{t.db} }

func (s *fakeStore) Counts(context.Context) (ports.Counts, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	c := ports.Counts{
		UsersByRole:   map[domain.Role]int64{domain.RolePatient: 0, domain.RoleDoctor: 0, domain.RoleAdmin: 0},
		OutboxByState: map[string]int64{domain.OutboxPending: 0, domain.OutboxDelivered: 0, domain.OutboxDead: 0},
		AuditEntries:  int64(len(s.db.audit)),
	}
	for _, u := range s.db.users {
		c.UsersByRole[u.Role]++
		if u.Role == domain.RoleDoctor && !u.Approved && u.Active {
			c.PendingDoctors++
		}
	}
	for _, e := range s.db.outbox {
		c.OutboxByState[e.State]++
	}
	return c, nil
}

func (s *fakeStore) WithinTx(ctx context.Context, fn func(tx ports.Repos) error) error {
	s.db.txMu.Lock()
	defer s.db.txMu.Unlock()
	if err := s.db.fail("WithinTx"); err != nil {
		return err
	}
	s.db.mu.Lock()
	s.db.txs++
	s.db.mu.Unlock()
	before := s.db.snapshot()
	err := fn(&fakeTx{s.db})
	if err == nil {
		err = s.db.CommitErr
	}
	if err != nil {
		s.db.restore(before)
	}
	return err
}

// fakeUsers implements ports.Users.
type fakeUsers struct{ db *memDB }

func (r *fakeUsers) Create(_ context.Context, u *domain.User) error {
	if err := r.db.fail("Users.Create"); err != nil {
		return err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	// Compared as the app's default username key does.
	for _, o := range r.db.users {
		if strings.EqualFold(o.Username, u.Username) {
			return domain.UsernameTaken()
		}
	}
	u.ID = r.db.id()
	r.db.users[u.ID] = *u
	return nil
}

func (r *fakeUsers) ByID(_ context.Context, id int64) (domain.User, error) {
	if err := r.db.fail("Users.ByID"); err != nil {
		return domain.User{}, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	u, ok := r.db.users[id]
	if !ok {
		return domain.User{}, domain.NotFound()
	}
	return u, nil
}

func (r *fakeUsers) ByUsername(_ context.Context, username string) (domain.User, error) {
	if err := r.db.fail("Users.ByUsername"); err != nil {
		return domain.User{}, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	for _, u := range r.db.users {
		if strings.EqualFold(u.Username, username) {
			return u, nil
		}
	}
	return domain.User{}, domain.NotFound()
}

func (r *fakeUsers) Update(_ context.Context, u domain.User) error {
	if err := r.db.fail("Users.Update"); err != nil {
		return err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	old, ok := r.db.users[u.ID]
	if !ok {
		return domain.NotFound()
	}
	old.Email, old.Approved, old.Active, old.PasswordHash = u.Email, u.Approved, u.Active, u.PasswordHash
	r.db.users[u.ID] = old
	return nil
}

func (r *fakeUsers) List(_ context.Context, f ports.UserFilter, p domain.Page) ([]domain.User, error) {
	if err := r.db.fail("Users.List"); err != nil {
		return nil, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	var out []domain.User
	for _, u := range r.db.users {
		if (f.Role == nil || u.Role == *f.Role) && (f.Approved == nil || u.Approved == *f.Approved) &&
			(f.Active == nil || u.Active == *f.Active) &&
			(f.Search == "" || strings.Contains(asciiLower(u.Username), asciiLower(f.Search))) {
			out = append(out, u)
		}
	}
	return page(out, userCursor, p), nil
}

// fakeRecords implements ports.Records; records carry their comments.
type fakeRecords struct{ db *memDB }

func (r *fakeRecords) Create(_ context.Context, rec *domain.Record) error {
	if err := r.db.fail("Records.Create"); err != nil {
		return err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	rec.ID = r.db.id()
	stored := *rec
	stored.Comments = nil
	r.db.records[rec.ID] = stored
	return nil
}

// withComments adds the record's comments, oldest first; caller holds mu.
func (db *memDB) withComments(rec domain.Record) domain.Record {
	rec.Comments = []domain.Comment{}
	for _, c := range db.comments {
		if c.RecordID == rec.ID {
			rec.Comments = append(rec.Comments, c)
		}
	}
	slices.SortFunc(rec.Comments, func(a, b domain.Comment) int { return cmp.Compare(a.ID, b.ID) })
	return rec
}

func (r *fakeRecords) Get(_ context.Context, id int64) (domain.Record, error) {
	if err := r.db.fail("Records.Get"); err != nil {
		return domain.Record{}, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	rec, ok := r.db.records[id]
	if !ok {
		return domain.Record{}, domain.NotFound()
	}
	return r.db.withComments(rec), nil
}

func (r *fakeRecords) Update(_ context.Context, rec domain.Record) error {
	if err := r.db.fail("Records.Update"); err != nil {
		return err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	old, ok := r.db.records[rec.ID]
	if !ok {
		return domain.NotFound()
	}
	old.Title, old.Content, old.DoctorID, old.UpdatedAt = rec.Title, rec.Content, rec.DoctorID, rec.UpdatedAt
	r.db.records[rec.ID] = old
	return nil
}

func (r *fakeRecords) Delete(_ context.Context, id int64) error {
	if err := r.db.fail("Records.Delete"); err != nil {
		return err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	if _, ok := r.db.records[id]; !ok {
		return domain.NotFound()
	}
	delete(r.db.records, id)
	maps.DeleteFunc(r.db.comments, func(_ int64, c domain.Comment) bool { return c.RecordID == id })
	return nil
}

func (r *fakeRecords) StoredBytes(_ context.Context, patientID int64) (int64, error) {
	if err := r.db.fail("Records.StoredBytes"); err != nil {
		return 0, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	var n int64
	for _, rec := range r.db.records {
		if rec.PatientID != patientID {
			continue
		}
		n += int64(len(rec.Title) + len(rec.Content))
		for _, c := range r.db.comments {
			if c.RecordID == rec.ID {
				n += int64(len(c.Text))
			}
		}
	}
	return n, nil
}

func (r *fakeRecords) List(_ context.Context, f ports.RecordFilter, p domain.Page) ([]domain.Record, error) {
	if err := r.db.fail("Records.List"); err != nil {
		return nil, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	var out []domain.Record
	for _, rec := range r.db.records {
		if (f.PatientID == 0 || rec.PatientID == f.PatientID) && (f.DoctorID == 0 || rec.DoctorID == f.DoctorID) {
			out = append(out, r.db.withComments(rec))
		}
	}
	return page(out, recordCursor, p), nil
}

// fakeComments implements ports.Comments.
type fakeComments struct{ db *memDB }

func (r *fakeComments) Create(_ context.Context, c *domain.Comment) error {
	if err := r.db.fail("Comments.Create"); err != nil {
		return err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	c.ID = r.db.id()
	r.db.comments[c.ID] = *c
	return nil
}

func (r *fakeComments) Get(_ context.Context, id int64) (domain.Comment, error) {
	if err := r.db.fail("Comments.Get"); err != nil {
		return domain.Comment{}, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	c, ok := r.db.comments[id]
	if !ok {
		return domain.Comment{}, domain.NotFound()
	}
	return c, nil
}

func (r *fakeComments) List(_ context.Context, f ports.CommentFilter, p domain.Page) ([]domain.Comment, error) {
	if err := r.db.fail("Comments.List"); err != nil {
		return nil, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	var out []domain.Comment
	for _, c := range r.db.comments {
		if f.Records.Contains(r.db.records[c.RecordID]) && (f.RecordID == 0 || c.RecordID == f.RecordID) {
			out = append(out, c)
		}
	}
	return page(out, commentCursor, p), nil
}

// fakeNotifications implements ports.Notifications, one per event.
type fakeNotifications struct{ db *memDB }

func (r *fakeNotifications) Create(_ context.Context, n *domain.Notification) (bool, error) {
	if err := r.db.fail("Notifications.Create"); err != nil {
		return false, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	for _, o := range r.db.notifications {
		if o.EventID == n.EventID {
			n.ID = o.ID
			return false, nil
		}
	}
	n.ID = r.db.id()
	r.db.notifications[n.ID] = *n
	return true, nil
}

func notificationCursor(n domain.Notification) domain.Cursor {
	return domain.Cursor{CreatedAt: n.CreatedAt, ID: n.ID}
}

func (r *fakeNotifications) List(_ context.Context, userID int64, p domain.Page) ([]domain.Notification, error) {
	if err := r.db.fail("Notifications.List"); err != nil {
		return nil, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	var out []domain.Notification
	for _, n := range r.db.notifications {
		if n.UserID == userID {
			out = append(out, n)
		}
	}
	return page(out, notificationCursor, p), nil
}

func (r *fakeNotifications) After(_ context.Context, userID, afterID int64, limit int) ([]domain.Notification, error) {
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	out := []domain.Notification{}
	for _, n := range r.db.notifications {
		if n.UserID == userID && n.ID > afterID {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b domain.Notification) int { return cmp.Compare(a.ID, b.ID) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (r *fakeNotifications) MarkRead(_ context.Context, userID, id int64, now time.Time) (domain.Notification, error) {
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	n, ok := r.db.notifications[id]
	if !ok || n.UserID != userID {
		return domain.Notification{}, domain.NotFound()
	}
	if n.ReadAt == nil {
		at := now.UTC()
		n.ReadAt = &at
		r.db.notifications[id] = n
	}
	return n, nil
}

// fakeOutbox implements ports.Outbox; the dispatcher's methods are not
// used by the app and answer an error.
type fakeOutbox struct {
	db   *memDB
	inTx bool
}

var errNotForApp = errors.New("fake: not used by the app")

func (r *fakeOutbox) Add(_ context.Context, e *domain.OutboxEvent) error {
	if err := r.db.fail("Outbox.Add"); err != nil {
		return err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	e.ID = r.db.id()
	r.db.outbox[e.ID] = *e
	r.db.outboxInTx[e.ID] = r.inTx
	return nil
}

// Delivery is tested against the real store (adapters/outbox); the fake
// serves the request use cases only.
func (r *fakeOutbox) Claim(context.Context, string, string, time.Time, time.Duration, int) ([]domain.OutboxEvent, error) {
	return nil, errNotForApp
}
func (r *fakeOutbox) Record(context.Context, string, []domain.DeliveryResult) (int, error) {
	return 0, errNotForApp
}
func (r *fakeOutbox) Release(context.Context, string, string, []int64) error { return errNotForApp }

func (r *fakeOutbox) Get(_ context.Context, id int64) (domain.OutboxEvent, error) {
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	e, ok := r.db.outbox[id]
	if !ok {
		return domain.OutboxEvent{}, domain.NotFound()
	}
	return e, nil
}

func (r *fakeOutbox) List(_ context.Context, f ports.OutboxFilter, p domain.Page) ([]domain.OutboxEvent, error) {
	state := f.State
	if err := r.db.fail("Outbox.List"); err != nil {
		return nil, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	var out []domain.OutboxEvent
	for _, e := range r.db.outbox {
		if state == "" || e.State == state {
			out = append(out, e)
		}
	}
	return page(out, func(e domain.OutboxEvent) domain.Cursor { return domain.Cursor{CreatedAt: e.CreatedAt, ID: e.ID} }, p), nil
}

func (r *fakeOutbox) Retry(_ context.Context, id int64, now time.Time) (domain.OutboxEvent, error) {
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	e, ok := r.db.outbox[id]
	if !ok {
		return domain.OutboxEvent{}, domain.NotFound()
	}
	if e.State != domain.OutboxDead {
		return domain.OutboxEvent{}, domain.Errorf(domain.EConflict, "event %d is not dead", id)
	}
	e.State, e.Attempts, e.NextAttemptAt = domain.OutboxPending, 0, now.UTC()
	r.db.outbox[id] = e
	return e, nil
}

// fakeAudit implements ports.Audit with the hash chain.
type fakeAudit struct {
	db   *memDB
	inTx bool
}

func (r *fakeAudit) Append(_ context.Context, entries ...domain.AuditEntry) error {
	if err := r.db.fail("Audit.Append"); err != nil {
		return err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	for _, e := range entries {
		prev := ""
		if n := len(r.db.audit); n > 0 {
			prev = r.db.audit[n-1].Hash
		}
		e.ID = int64(len(r.db.audit) + 1)
		e.PrevHash, e.Hash = prev, domain.NewAuditHasher(fakeAuditKey).Entry(e, prev)
		r.db.audit = append(r.db.audit, e)
		r.db.auditInTx = append(r.db.auditInTx, r.inTx)
	}
	return nil
}

func (r *fakeAudit) List(_ context.Context, f ports.AuditFilter, p domain.Page) ([]domain.AuditEntry, error) {
	if err := r.db.fail("Audit.List"); err != nil {
		return nil, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	var out []domain.AuditEntry
	for _, e := range r.db.audit {
		if (f.ActorID == 0 || e.ActorID == f.ActorID) && (f.RecordID == 0 || e.RecordID == f.RecordID) &&
			(f.PatientID == 0 || e.PatientID == f.PatientID) && (f.Action == "" || e.Action == f.Action) {
			out = append(out, e)
		}
	}
	return page(out, auditCursor, p), nil
}

// fakeAuditKey keys the fake's chain.
var fakeAuditKey = domain.AuditKey("fake audit key, 32 bytes or more")

func (r *fakeAudit) Head(context.Context) (domain.AuditHead, error) {
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	if n := len(r.db.audit); n > 0 {
		return domain.AuditHead{ID: r.db.audit[n-1].ID, Hash: r.db.audit[n-1].Hash}, nil
	}
	return domain.AuditHead{}, nil
}

func (r *fakeAudit) Verify(_ context.Context, since *domain.AuditHead) (domain.AuditCheck, error) {
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	h := domain.NewAuditHasher(fakeAuditKey)
	c := domain.AuditCheck{Entries: int64(len(r.db.audit))}
	prev, found := "", since == nil
	for _, e := range r.db.audit {
		if e.PrevHash != prev || e.Hash != h.Entry(e, prev) {
			c.FirstBroken = e.ID
			return c, nil
		}
		found = found || (e.ID == since.ID && e.Hash == since.Hash)
		prev = e.Hash
	}
	if !found {
		c.FirstBroken = min(since.ID, c.Entries+1)
	}
	return c, nil
}

// fakeSessions implements ports.Sessions.
type fakeSessions struct{ db *memDB }

func (r *fakeSessions) Create(_ context.Context, s domain.Session) error {
	if err := r.db.fail("Sessions.Create"); err != nil {
		return err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	r.db.sessions[s.ID] = s
	return nil
}

func (r *fakeSessions) Get(_ context.Context, id string) (domain.Session, error) {
	if err := r.db.fail("Sessions.Get"); err != nil {
		return domain.Session{}, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	s, ok := r.db.sessions[id]
	if !ok {
		return domain.Session{}, domain.NotFound()
	}
	return s, nil
}

// revoke marks s revoked at now unless it already is; caller holds mu.
func (db *memDB) revoke(s domain.Session, now time.Time) {
	if s.RevokedAt == nil {
		at := now.UTC()
		s.RevokedAt = &at
		db.sessions[s.ID] = s
		db.revokeSeq++
		db.revokedSeq[s.ID] = db.revokeSeq
	}
}

func (r *fakeSessions) Revoke(_ context.Context, id string, now time.Time) error {
	if err := r.db.fail("Sessions.Revoke"); err != nil {
		return err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	s, ok := r.db.sessions[id]
	if !ok {
		return domain.NotFound()
	}
	r.db.revoke(s, now)
	return nil
}

func (r *fakeSessions) RevokeUser(_ context.Context, userID int64, keep string, now time.Time) error {
	if err := r.db.fail("Sessions.RevokeUser"); err != nil {
		return err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	for _, s := range r.db.sessions {
		if s.UserID == userID && s.ID != keep {
			r.db.revoke(s, now)
		}
	}
	return nil
}

func (r *fakeSessions) RevokedAfter(_ context.Context, afterSeq int64, notBefore time.Time) ([]ports.RevokedSession, error) {
	if err := r.db.fail("Sessions.RevokedAfter"); err != nil {
		return nil, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	var out []ports.RevokedSession
	for _, s := range r.db.sessions {
		if seq := r.db.revokedSeq[s.ID]; s.RevokedAt != nil && seq > afterSeq && !s.RevokedAt.Before(notBefore) {
			out = append(out, ports.RevokedSession{ID: s.ID, RevokedAt: *s.RevokedAt, Seq: seq})
		}
	}
	slices.SortFunc(out, func(a, b ports.RevokedSession) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

func (r *fakeSessions) UseRefresh(_ context.Context, jti, _ string, _, _ time.Time) (bool, error) {
	if err := r.db.fail("Sessions.UseRefresh"); err != nil {
		return false, err
	}
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	if r.db.usedRefresh[jti] {
		return false, nil
	}
	r.db.usedRefresh[jti] = true
	return true, nil
}

// fakeTokens is a ports.TokenIssuer whose tokens are opaque names for
// claims it keeps in memory.
type fakeTokens struct {
	mu     sync.Mutex
	issued map[string]ports.TokenClaims
	// IssueErr, when set, may fail Issue for the claims given.
	IssueErr func(c ports.TokenClaims) error
}

var _ ports.TokenIssuer = (*fakeTokens)(nil)

func (f *fakeTokens) Issue(c ports.TokenClaims) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.IssueErr != nil {
		if err := f.IssueErr(c); err != nil {
			return "", err
		}
	}
	if c.JTI == "" || c.IssuedAt.IsZero() || c.ExpiresAt.IsZero() {
		return "", errors.New("fake: claims incomplete")
	}
	tok := fmt.Sprintf("%s-token-%d", c.Type, len(f.issued)+1)
	f.issued[tok] = c
	return tok, nil
}

func (f *fakeTokens) Verify(token, want string, now time.Time) (ports.TokenClaims, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.issued[token]
	if !ok || c.Type != want || !now.Before(c.ExpiresAt) {
		return ports.TokenClaims{}, domain.TokenNotValid()
	}
	return c, nil
}

// claims returns what token carries, for assertions.
func (f *fakeTokens) claims(t *testing.T, token string) ports.TokenClaims {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.issued[token]
	require.True(t, ok, "token %q was not issued", token)
	return c
}

// fakeHasher is a ports.PasswordHasher that "hashes" by prefixing, and
// records every call so tests can see a hash was checked.
type fakeHasher struct {
	mu       sync.Mutex
	hashed   []string
	verified []string // the hashes Verify was given
	// HashErr and VerifyErr, when set, fail the call.
	HashErr   error
	VerifyErr error
}

var _ ports.PasswordHasher = (*fakeHasher)(nil)

const fakeHashPrefix = "fakehash$"

func (h *fakeHasher) Hash(_ context.Context, password string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.HashErr != nil {
		return "", h.HashErr
	}
	h.hashed = append(h.hashed, password)
	return fakeHashPrefix + password, nil
}

func (h *fakeHasher) Verify(_ context.Context, hash, password string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.verified = append(h.verified, hash)
	if h.VerifyErr != nil {
		return false, h.VerifyErr
	}
	if !strings.HasPrefix(hash, fakeHashPrefix) {
		return false, errors.New("fake: malformed hash")
	}
	return hash == fakeHashPrefix+password, nil
}

func (h *fakeHasher) verifiedHashes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.verified)
}

// fakeClock is a ports.Clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

var _ ports.Clock = (*fakeClock)(nil)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeMailer is a ports.Mailer with a function field.
type fakeMailer struct {
	send func(ctx context.Context, m domain.Email) error
}

var _ ports.Mailer = (*fakeMailer)(nil)

func (m *fakeMailer) Send(ctx context.Context, e domain.Email) error { return m.send(ctx, e) }

// counterRandom returns distinct bytes on every call, deterministically.
func counterRandom() func(int) []byte {
	var mu sync.Mutex
	var n uint64
	return func(size int) []byte {
		mu.Lock()
		defer mu.Unlock()
		n++
		b := make([]byte, size)
		for i := 0; i < 8 && i < size; i++ {
			b[size-1-i] = byte(n >> (8 * i))
		}
		return b
	}
}

// asciiLower lowers ASCII letters only, as SQLite's LIKE compares them.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
