package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// testAdmin holds the store to what the admin console reads: totals and
// the filters of its lists.
func testAdmin(t *testing.T, open Opener) {
	t.Run("empty_store_has_every_key", func(t *testing.T) {
		s := open(t)
		c, err := s.Counts(ctx(t))
		require.NoError(t, err)
		assert.Equal(t, ports.Counts{
			UsersByRole:   map[domain.Role]int64{domain.RolePatient: 0, domain.RoleDoctor: 0, domain.RoleAdmin: 0},
			OutboxByState: map[string]int64{domain.OutboxPending: 0, domain.OutboxDelivered: 0, domain.OutboxDead: 0},
		}, c)
	})

	// An empty answer is an empty list, never nil: encoded, it must read
	// [] and not null.
	t.Run("empty_lists_are_not_nil", func(t *testing.T) {
		s := open(t)
		p := mustPatient(t, s, "p")
		pg := domain.Page{Limit: 10}
		none := ports.RecordFilter{PatientID: p.ID}
		check := func(name string, got any, err error) {
			t.Helper()
			require.NoError(t, err, name)
			assert.NotNil(t, got, name)
			assert.Empty(t, got, name)
		}
		role := domain.RoleDoctor
		users, err := s.Users().List(ctx(t), ports.UserFilter{Role: &role}, pg)
		check("users", users, err)
		recs, err := s.Records().List(ctx(t), none, pg)
		check("records", recs, err)
		cs, err := s.Comments().List(ctx(t), ports.CommentFilter{Records: none}, pg)
		check("comments", cs, err)
		ns, err := s.Notifications().List(ctx(t), p.ID, pg)
		check("notifications", ns, err)
		after, err := s.Notifications().After(ctx(t), p.ID, 0, 10)
		check("notifications after", after, err)
		evs, err := s.Outbox().List(ctx(t), ports.OutboxFilter{}, pg)
		check("outbox", evs, err)
		claimed, err := s.Outbox().Claim(ctx(t), inApp, "A", t0, time.Minute, 10)
		check("claimed", claimed, err)
		es, err := s.Audit().List(ctx(t), ports.AuditFilter{}, pg)
		check("audit", es, err)
		revoked, err := s.Sessions().RevokedAfter(ctx(t), 0, t0)
		check("revoked", revoked, err)
	})

	t.Run("totals", func(t *testing.T) {
		s, r := outboxFixture(t, open) // one patient, one approved doctor
		mustUser(t, s, "admin", domain.RoleAdmin)
		for i, active := range []bool{true, true, false} {
			u := domain.User{
				Username: "new" + string(rune('a'+i)), Email: "n@example.com", Role: domain.RoleDoctor,
				Active: active, PasswordHash: "$argon2id$fake", CreatedAt: t0,
			}
			require.NoError(t, s.Users().Create(ctx(t), &u))
		}
		dead, done := mustEvent(t, s, r, at(1)), mustEvent(t, s, r, at(2))
		mustEvent(t, s, r, at(3))
		for _, sink := range []string{inApp, email} {
			claimed, err := s.Outbox().Claim(ctx(t), sink, "A", at(10), time.Minute, 2)
			require.NoError(t, err)
			require.Len(t, claimed, 2)
		}
		mustRecordResults(t, s, "A", 4,
			result(dead.ID, inApp, domain.OutcomeDelivered, "", at(10), time.Time{}),
			result(dead.ID, email, domain.OutcomeDead, "550 No such mailbox", at(10), time.Time{}),
			result(done.ID, inApp, domain.OutcomeDelivered, "", at(10), time.Time{}),
			result(done.ID, email, domain.OutcomeDelivered, "", at(10), time.Time{}))
		require.NoError(t, s.Audit().Append(ctx(t), entry(1, r.ID, r.PatientID, at(4)), entry(2, 0, 0, at(5))))

		c, err := s.Counts(ctx(t))
		require.NoError(t, err)
		assert.Equal(t, ports.Counts{
			UsersByRole:    map[domain.Role]int64{domain.RolePatient: 1, domain.RoleDoctor: 4, domain.RoleAdmin: 1},
			PendingDoctors: 2, // the deactivated one waits for nobody
			OutboxByState:  map[string]int64{domain.OutboxPending: 1, domain.OutboxDelivered: 1, domain.OutboxDead: 1},
			AuditEntries:   2,
		}, c)
	})

	t.Run("user_search_is_literal_and_ascii_case_blind", func(t *testing.T) {
		s := open(t)
		for _, name := range []string{"Alice", "malice_1", "bob", "al%x"} {
			mustPatient(t, s, name)
		}
		names := func(search string) []string {
			got, err := s.Users().List(ctx(t), ports.UserFilter{Search: search}, domain.Page{Limit: 10})
			require.NoError(t, err)
			var out []string
			for _, u := range got {
				out = append(out, u.Username)
			}
			return out
		}
		assert.ElementsMatch(t, []string{"Alice", "malice_1"}, names("ALI"))
		assert.ElementsMatch(t, []string{"malice_1"}, names("e_"))
		assert.ElementsMatch(t, []string{"al%x"}, names("%"))
		assert.Empty(t, names("zed"))
	})

	t.Run("audit_filters_by_action", func(t *testing.T) {
		s := open(t)
		read, list := entry(1, 10, 100, at(1)), entry(1, 10, 100, at(2))
		list.Action = domain.ActionRecordList
		require.NoError(t, s.Audit().Append(ctx(t), read, list))
		got, err := s.Audit().List(ctx(t), ports.AuditFilter{Action: domain.ActionRecordList}, domain.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, domain.ActionRecordList, got[0].Action)
	})
}
