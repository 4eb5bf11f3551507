// Package memstore is a ports.Store held in memory: the store the app's
// tests run on. It passes the contract suite (ports/storetest) as the
// SQLite adapter does, so a test on it shows what the real store would do.
//
// A transaction works on a copy of the tables and puts it in place on
// commit, so a rolled-back transaction leaves nothing behind; one write
// (a transaction or a single statement) runs at a time, as with SQLite's
// single writer, and reads see committed data only.
package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"healthrecord/domain"
	"healthrecord/ports"
)

// Op names a store operation as the hook sees it: "Users.Create",
// "Records.List", …, "WithinTx" when a transaction begins and "Commit"
// when it is about to commit.
type Op struct {
	Name string
	// InTx is true for operations made through a transaction's
	// repositories (and for "Commit").
	InTx bool
}

// Options configure a Store; the zero value is a working store.
type Options struct {
	// AuditKey keys the audit chain; empty: a fixed test key.
	AuditKey domain.AuditKey
	// Hook, when set, hears every operation before the store acts; an
	// error it returns is the operation's answer (for "Commit": the
	// transaction rolls back and WithinTx returns it). Tests inject
	// faults and watch what ran inside a transaction with it.
	Hook func(Op) error
}

// Store is the in-memory ports.Store. Create it with New.
type Store struct {
	auditKey domain.AuditKey
	hook     func(Op) error

	// writer admits one writer at a time (a transaction, or one
	// statement outside any); waiting for it honours the context.
	writer chan struct{}
	// mu guards committed, which is replaced whole on every commit and
	// never changed in place.
	mu        sync.RWMutex
	committed *Tables
}

// hasher is a hasher of the audit chain; one per call, as a hasher is not
// safe for concurrent use.
func (s *Store) hasher() *domain.AuditHasher { return domain.NewAuditHasher(s.auditKey) }

// testAuditKey keys the chain when no key is given.
var testAuditKey = domain.AuditKey("memstore audit key, 32 bytes long")

// New returns an empty store.
func New(o Options) *Store {
	key := o.AuditKey
	if len(key) == 0 {
		key = testAuditKey
	}
	return &Store{auditKey: key, hook: o.Hook, committed: newTables(), writer: make(chan struct{}, 1)}
}

var (
	_ ports.Store = (*Store)(nil)
	_ ports.Repos = repos{}
)

// repos are the repositories over the committed tables (tx nil) or over
// one transaction's copy.
type repos struct {
	s  *Store
	tx *txn
}

// txn is an open transaction: its own copy of the tables.
type txn struct {
	mu sync.Mutex // the closure may use its repositories from several goroutines
	t  *Tables
}

// Users implements ports.Repos.
func (s *Store) Users() ports.Users { return users{repos{s: s}} }

// Records implements ports.Repos.
func (s *Store) Records() ports.Records { return records{repos{s: s}} }

// Comments implements ports.Repos.
func (s *Store) Comments() ports.Comments { return comments{repos{s: s}} }

// Notifications implements ports.Repos.
func (s *Store) Notifications() ports.Notifications { return notifications{repos{s: s}} }

// Outbox implements ports.Repos.
func (s *Store) Outbox() ports.Outbox { return outbox{repos{s: s}} }

// Audit implements ports.Repos.
func (s *Store) Audit() ports.Audit { return audit{repos{s: s}} }

// Sessions implements ports.Repos.
func (s *Store) Sessions() ports.Sessions { return sessions{repos{s: s}} }

func (r repos) Users() ports.Users                 { return users{r} }
func (r repos) Records() ports.Records             { return records{r} }
func (r repos) Comments() ports.Comments           { return comments{r} }
func (r repos) Notifications() ports.Notifications { return notifications{r} }
func (r repos) Outbox() ports.Outbox               { return outbox{r} }
func (r repos) Audit() ports.Audit                 { return audit{r} }
func (r repos) Sessions() ports.Sessions           { return sessions{r} }

// WithinTx implements ports.Store: fn works on a copy of the tables,
// which replaces them when fn returns nil; on an error or a panic the
// copy is dropped. The repositories fn got fail once it has returned.
func (s *Store) WithinTx(ctx context.Context, fn func(tx ports.Repos) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.call(Op{Name: "WithinTx"}); err != nil {
		return err
	}
	if err := s.lockWriter(ctx); err != nil {
		return err
	}
	defer s.unlockWriter()
	s.mu.RLock()
	tx := &txn{t: s.committed.clone()}
	s.mu.RUnlock()
	defer tx.end()
	if err := fn(repos{s: s, tx: tx}); err != nil {
		return err
	}
	if err := s.call(Op{Name: "Commit", InTx: true}); err != nil {
		return err
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	s.mu.Lock()
	s.committed = tx.t
	s.mu.Unlock()
	return nil
}

// end closes the transaction to its repositories.
func (tx *txn) end() {
	tx.mu.Lock()
	tx.t = nil
	tx.mu.Unlock()
}

// byKey reads the row of a table under key; ENotFound when absent.
func byKey[K comparable, V any](ctx context.Context, r repos, op, what string, table func(*Tables) map[K]V, key K) (V, error) {
	var out V
	err := r.read(ctx, op, func(t *Tables) error {
		var ok bool
		if out, ok = table(t)[key]; !ok {
			return notFound(what, key)
		}
		return nil
	})
	return out, err
}

// lockWriter waits for the writer's turn, or for ctx to end.
func (s *Store) lockWriter(ctx context.Context) error {
	select {
	case s.writer <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) unlockWriter() { <-s.writer }

// call asks the hook about op.
func (s *Store) call(op Op) error {
	if s.hook == nil {
		return nil
	}
	return s.hook(op)
}

// errTxDone answers a repository of a transaction that has ended.
var errTxDone = errors.New("memstore: transaction already ended")

// read runs fn on the tables the repositories see: the transaction's
// copy, or the committed tables.
func (r repos) read(ctx context.Context, op string, fn func(t *Tables) error) error {
	if err := r.begin(ctx, op); err != nil {
		return err
	}
	if r.tx != nil {
		r.tx.mu.Lock()
		defer r.tx.mu.Unlock()
		if r.tx.t == nil {
			return errTxDone
		}
		return fn(r.tx.t)
	}
	r.s.mu.RLock()
	defer r.s.mu.RUnlock()
	return fn(r.s.committed)
}

// write runs fn on the transaction's copy, or, outside a transaction, on
// a copy that replaces the committed tables when fn succeeds: a failed
// statement changes nothing.
func (r repos) write(ctx context.Context, op string, fn func(t *Tables) error) error {
	if r.tx != nil {
		return r.read(ctx, op, func(t *Tables) error {
			c := t.clone()
			if err := fn(c); err != nil {
				return err
			}
			*t = *c
			return nil
		})
	}
	if err := r.begin(ctx, op); err != nil {
		return err
	}
	if err := r.s.lockWriter(ctx); err != nil {
		return err
	}
	defer r.s.unlockWriter()
	r.s.mu.RLock()
	c := r.s.committed.clone()
	r.s.mu.RUnlock()
	if err := fn(c); err != nil {
		return err
	}
	r.s.mu.Lock()
	r.s.committed = c
	r.s.mu.Unlock()
	return nil
}

func (r repos) begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.s.call(Op{Name: op, InTx: r.tx != nil})
}

// Raw gives fn the committed tables, to read them or to change them behind
// the ports' back as someone holding the database file could: tests use it
// to see what is stored, edit an audit entry or drop a sign-in. It waits
// for the writer in progress. The tables fn gets stay as they are after
// it returns (a later write changes a copy), so they may be kept to read.
func (s *Store) Raw(fn func(t *Tables)) {
	_ = s.lockWriter(context.Background()) // never canceled
	defer s.unlockWriter()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.committed.clone()
	fn(c)
	s.committed = c
}

// Tables are the store's rows. A row's slices and pointers are never
// changed in place: a change stores a new value.
type Tables struct {
	Users         map[int64]domain.User
	Records       map[int64]domain.Record // without their comments
	Comments      map[int64]domain.Comment
	Notifications map[int64]domain.Notification
	Outbox        map[int64]domain.OutboxEvent // with their deliveries
	Audit         []domain.AuditEntry          // in id order
	Sessions      map[string]domain.Session

	seq         map[string]int64 // the last id given per table, never reused
	leases      map[leaseKey]lease
	revokedSeq  map[string]int64 // per session id
	usedRefresh map[string]time.Time
	head        domain.AuditHead // the chain's last entry
	headMAC     string           // head's MAC under the key
}

// leaseKey names one delivery: an event through a sink.
type leaseKey struct {
	event int64
	sink  string
}

// lease is who holds a delivery, until when.
type lease struct {
	owner string
	until time.Time
}

func newTables() *Tables {
	return &Tables{
		Users: map[int64]domain.User{}, Records: map[int64]domain.Record{}, Comments: map[int64]domain.Comment{},
		Notifications: map[int64]domain.Notification{}, Outbox: map[int64]domain.OutboxEvent{},
		Sessions: map[string]domain.Session{}, seq: map[string]int64{}, leases: map[leaseKey]lease{},
		revokedSeq: map[string]int64{}, usedRefresh: map[string]time.Time{},
	}
}

// clone copies every table; rows are values never changed in place, so a
// shallow copy of each map is a snapshot.
func (t *Tables) clone() *Tables {
	return &Tables{
		Users: maps.Clone(t.Users), Records: maps.Clone(t.Records), Comments: maps.Clone(t.Comments),
		Notifications: maps.Clone(t.Notifications), Outbox: maps.Clone(t.Outbox), Audit: slices.Clone(t.Audit),
		Sessions: maps.Clone(t.Sessions), seq: maps.Clone(t.seq), leases: maps.Clone(t.leases),
		revokedSeq: maps.Clone(t.revokedSeq), usedRefresh: maps.Clone(t.usedRefresh), head: t.head, headMAC: t.headMAC,
	}
}

// nextID is the next id of table.
func (t *Tables) nextID(table string) int64 {
	t.seq[table]++
	return t.seq[table]
}

// Counts implements ports.Store, from the committed tables.
func (s *Store) Counts(ctx context.Context) (ports.Counts, error) {
	c := ports.Counts{
		UsersByRole:   map[domain.Role]int64{domain.RolePatient: 0, domain.RoleDoctor: 0, domain.RoleAdmin: 0},
		OutboxByState: map[string]int64{domain.OutboxPending: 0, domain.OutboxDelivered: 0, domain.OutboxDead: 0},
	}
	err := repos{s: s}.read(ctx, "Counts", func(t *Tables) error {
		for _, u := range t.Users {
			c.UsersByRole[u.Role]++
			if u.Role == domain.RoleDoctor && !u.Approved && u.Active {
				c.PendingDoctors++
			}
		}
		for _, e := range t.Outbox {
			c.OutboxByState[e.State]++
		}
		c.AuditEntries = int64(len(t.Audit))
		return nil
	})
	if err != nil {
		return ports.Counts{}, err
	}
	return c, nil
}

// stamp is a time as a store keeps it: UTC, to the nanosecond, without a
// monotonic reading.
func stamp(t time.Time) time.Time { return time.Unix(0, t.UTC().UnixNano()).UTC() }

// stampPtr stamps an optional time.
func stampPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	s := stamp(*t)
	return &s
}

// notFound is ENotFound for what names.
func notFound(what string, id any) error {
	return fmt.Errorf("memstore: %s %v: %w", what, id, domain.NotFound())
}

// pageSize is the page size to give: the default when unset.
func pageSize(p domain.Page) int {
	if p.Limit <= 0 {
		return domain.DefaultPageSize
	}
	return p.Limit
}

// newestFirst sorts items by (time desc, id desc), keeps those after the
// page's cursor and at most a page of them.
func newestFirst[T any](items []T, key func(T) (time.Time, int64), p domain.Page) []T {
	slices.SortFunc(items, func(a, b T) int {
		at, aid := key(a)
		bt, bid := key(b)
		if c := bt.Compare(at); c != 0 {
			return c
		}
		return cmp.Compare(bid, aid)
	})
	out := make([]T, 0, min(len(items), pageSize(p)))
	for _, it := range items {
		if len(out) == pageSize(p) {
			break
		}
		if p.After != nil {
			at, id := key(it)
			if c := at.Compare(stamp(p.After.CreatedAt)); c > 0 || (c == 0 && id >= p.After.ID) {
				continue
			}
		}
		out = append(out, it)
	}
	return out
}
