// Package storetest is the contract suite every ports.Store adapter must
// pass, so that a second database adapter is a matter of passing it.
package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// Opener returns a new, empty store, ready for use: each adapter prepares
// its own (the SQLite test opens and migrates a file; the suite knows no
// schema). It owns its cleanup.
type Opener func(t *testing.T) ports.Store

// Run runs the whole contract suite against the stores open returns; each
// subtest gets a store of its own.
func Run(t *testing.T, open Opener) {
	t.Run("Users", func(t *testing.T) { testUsers(t, open) })
	t.Run("Records", func(t *testing.T) { testRecords(t, open) })
	t.Run("Comments", func(t *testing.T) { testComments(t, open) })
	t.Run("Notifications", func(t *testing.T) { testNotifications(t, open) })
	t.Run("Outbox", func(t *testing.T) { testOutbox(t, open) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, open) })
	t.Run("Tx", func(t *testing.T) { testTx(t, open) })
	t.Run("Admin", func(t *testing.T) { testAdmin(t, open) })
}

// t0 is the suite's clock: fixed, UTC, with nanoseconds that must survive.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// at is t0 plus n seconds.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

// ctx is the suite's context.
func ctx(t *testing.T) context.Context { return t.Context() }

// mustUser creates an active, approved account named name.
func mustUser(t *testing.T, r ports.Repos, name string, role domain.Role) domain.User {
	t.Helper()
	u := domain.User{
		Username: name, Email: name + "@example.com", Role: role, Approved: true, Active: true,
		PasswordHash: "$argon2id$fake", CreatedAt: t0,
	}
	require.NoError(t, r.Users().Create(ctx(t), &u))
	require.NotZero(t, u.ID)
	return u
}

// mustPatient and mustDoctor read like the domain.
func mustPatient(t *testing.T, r ports.Repos, name string) domain.User {
	t.Helper()
	return mustUser(t, r, name, domain.RolePatient)
}

func mustDoctor(t *testing.T, r ports.Repos, name string) domain.User {
	t.Helper()
	return mustUser(t, r, name, domain.RoleDoctor)
}

// mustRecord creates a record of patient (assigned to doctor, 0: none)
// created at when.
func mustRecord(t *testing.T, r ports.Repos, patient, doctor int64, when time.Time) domain.Record {
	t.Helper()
	rec := domain.Record{
		PatientID: patient, DoctorID: doctor, Title: fmt.Sprintf("title %d", when.UnixNano()),
		Content: "content ✓", CreatedAt: when, UpdatedAt: when,
	}
	require.NoError(t, r.Records().Create(ctx(t), &rec))
	require.NotZero(t, rec.ID)
	return rec
}

// mustComment adds doctor's comment on record at when.
func mustComment(t *testing.T, r ports.Repos, record, doctor int64, when time.Time) domain.Comment {
	t.Helper()
	c := domain.Comment{RecordID: record, DoctorID: doctor, Text: "looks fine", CreatedAt: when}
	require.NoError(t, r.Comments().Create(ctx(t), &c))
	require.NotZero(t, c.ID)
	return c
}

// mustEvent adds an assignment event for rec, due at due, for both sinks.
func mustEvent(t *testing.T, r ports.Repos, rec domain.Record, due time.Time) domain.OutboxEvent {
	t.Helper()
	e := domain.NewAssignmentEvent(rec, due, domain.SinkNotification, domain.SinkEmail)
	require.NoError(t, r.Outbox().Add(ctx(t), &e))
	require.NotZero(t, e.ID)
	return e
}

// requireCode asserts err carries the domain code.
func requireCode(t *testing.T, code domain.Code, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, domain.ErrorCode(err), "error: %v", err)
}

// requireSameTime compares instants (location and monotonic reading aside).
func requireSameTime(t *testing.T, want, got time.Time) {
	t.Helper()
	require.True(t, want.Equal(got), "want %s, got %s", want, got)
}

// cursorOf is the keyset cursor after an item.
func cursorOf(createdAt time.Time, id int64) *domain.Cursor {
	return &domain.Cursor{CreatedAt: createdAt, ID: id}
}

// walk reads every page of size n through list and returns the ids in order.
func walk[T any](t *testing.T, n int, list func(p domain.Page) ([]T, error), key func(T) (time.Time, int64)) []int64 {
	t.Helper()
	var ids []int64
	p := domain.Page{Limit: n}
	for range 100 {
		page, err := list(p)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), n)
		for _, it := range page {
			_, id := key(it)
			ids = append(ids, id)
		}
		if len(page) < n {
			return ids
		}
		p.After = cursorOf(key(page[len(page)-1]))
	}
	t.Fatal("pagination did not end")
	return nil
}

// newestFirst sorts ids by (time desc, id desc), the lists' order.
func newestFirst(items map[int64]time.Time) []int64 {
	ids := make([]int64, 0, len(items))
	for id := range items {
		ids = append(ids, id)
	}
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && before(items[ids[j]], ids[j], items[ids[j-1]], ids[j-1]); j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
	return ids
}

// before reports whether (a, aid) comes first newest-first.
func before(a time.Time, aid int64, b time.Time, bid int64) bool {
	if !a.Equal(b) {
		return a.After(b)
	}
	return aid > bid
}

// ids lists the ids of items.
func ids[T any](items []T, id func(T) int64) []int64 {
	out := []int64{}
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}
