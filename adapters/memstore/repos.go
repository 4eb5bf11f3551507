package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"healthrecord/domain"
	"healthrecord/internal/username"
	"healthrecord/ports"
)

// users implements ports.Users; usernames compare by username.Key, as
// the SQLite adapter's unique key does.
type users struct{ r repos }

func (u users) Create(ctx context.Context, user *domain.User) error {
	return u.r.write(ctx, "Users.Create", func(t *Tables) error {
		key := username.Key(user.Username)
		for _, o := range t.Users {
			if username.Key(o.Username) == key {
				return domain.UsernameTaken()
			}
		}
		user.ID = t.nextID("users")
		stored := *user
		stored.CreatedAt = stamp(user.CreatedAt)
		t.Users[user.ID] = stored
		return nil
	})
}

func (u users) ByID(ctx context.Context, id int64) (domain.User, error) {
	return byKey(ctx, u.r, "Users.ByID", "user", func(t *Tables) map[int64]domain.User { return t.Users }, id)
}

func (u users) ByUsername(ctx context.Context, name string) (domain.User, error) {
	var out domain.User
	err := u.r.read(ctx, "Users.ByUsername", func(t *Tables) error {
		key := username.Key(name)
		for _, o := range t.Users {
			if username.Key(o.Username) == key {
				out = o
				return nil
			}
		}
		return notFound("user", name)
	})
	return out, err
}

func (u users) Update(ctx context.Context, user domain.User) error {
	return u.r.write(ctx, "Users.Update", func(t *Tables) error {
		old, ok := t.Users[user.ID]
		if !ok {
			return notFound("user", user.ID)
		}
		old.Email, old.Approved, old.Active, old.PasswordHash = user.Email, user.Approved, user.Active, user.PasswordHash
		t.Users[user.ID] = old
		return nil
	})
}

func (u users) List(ctx context.Context, f ports.UserFilter, p domain.Page) ([]domain.User, error) {
	var out []domain.User
	err := u.r.read(ctx, "Users.List", func(t *Tables) error {
		for _, o := range t.Users {
			if (f.Role == nil || o.Role == *f.Role) && (f.Approved == nil || o.Approved == *f.Approved) &&
				(f.Active == nil || o.Active == *f.Active) &&
				(f.Search == "" || strings.Contains(asciiLower(o.Username), asciiLower(f.Search))) {
				out = append(out, o)
			}
		}
		out = newestFirst(out, func(u domain.User) (time.Time, int64) { return u.CreatedAt, u.ID }, p)
		return nil
	})
	return out, err
}

// references refuses a write naming a user that does not exist, as the
// schema's foreign keys do; 0 names nobody.
func (t *Tables) references(what string, userIDs ...int64) error {
	for _, id := range userIDs {
		if _, ok := t.Users[id]; !ok && id != 0 {
			return fmt.Errorf("memstore: %s: no user %d", what, id)
		}
	}
	return nil
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

// records implements ports.Records.
type records struct{ r repos }

// errNoRecordFilter refuses an unfiltered list, as the SQLite adapter
// does: a forgotten filter must not show every record.
var errNoRecordFilter = errors.New("memstore: record list needs a patient or a doctor")

func (rs records) Create(ctx context.Context, rec *domain.Record) error {
	return rs.r.write(ctx, "Records.Create", func(t *Tables) error {
		if err := t.references("create record", rec.PatientID, rec.DoctorID); err != nil {
			return err
		}
		rec.ID = t.nextID("records")
		stored := *rec
		stored.Comments, stored.CreatedAt, stored.UpdatedAt = nil, stamp(rec.CreatedAt), stamp(rec.UpdatedAt)
		t.Records[rec.ID] = stored
		return nil
	})
}

// withComments is rec with its comments, oldest first.
func (t *Tables) withComments(rec domain.Record) domain.Record {
	rec.Comments = []domain.Comment{}
	for _, c := range t.Comments {
		if c.RecordID == rec.ID {
			rec.Comments = append(rec.Comments, c)
		}
	}
	slices.SortFunc(rec.Comments, func(a, b domain.Comment) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return rec
}

func (rs records) Get(ctx context.Context, id int64) (domain.Record, error) {
	var out domain.Record
	err := rs.r.read(ctx, "Records.Get", func(t *Tables) error {
		rec, ok := t.Records[id]
		if !ok {
			return notFound("record", id)
		}
		out = t.withComments(rec)
		return nil
	})
	return out, err
}

func (rs records) Update(ctx context.Context, rec domain.Record) error {
	return rs.r.write(ctx, "Records.Update", func(t *Tables) error {
		old, ok := t.Records[rec.ID]
		if !ok {
			return notFound("record", rec.ID)
		}
		if err := t.references("update record", rec.DoctorID); err != nil {
			return err
		}
		old.Title, old.Content, old.DoctorID, old.UpdatedAt = rec.Title, rec.Content, rec.DoctorID, stamp(rec.UpdatedAt)
		t.Records[rec.ID] = old
		return nil
	})
}

func (rs records) Delete(ctx context.Context, id int64) error {
	return rs.r.write(ctx, "Records.Delete", func(t *Tables) error {
		if _, ok := t.Records[id]; !ok {
			return notFound("record", id)
		}
		delete(t.Records, id)
		for cid, c := range t.Comments {
			if c.RecordID == id {
				delete(t.Comments, cid)
			}
		}
		return nil
	})
}

func (rs records) List(ctx context.Context, f ports.RecordFilter, p domain.Page) ([]domain.Record, error) {
	if f.PatientID == 0 && f.DoctorID == 0 {
		return nil, errNoRecordFilter
	}
	var out []domain.Record
	err := rs.r.read(ctx, "Records.List", func(t *Tables) error {
		for _, rec := range t.Records {
			if (f.PatientID == 0 || rec.PatientID == f.PatientID) && (f.DoctorID == 0 || rec.DoctorID == f.DoctorID) {
				out = append(out, rec)
			}
		}
		out = newestFirst(out, func(r domain.Record) (time.Time, int64) { return r.CreatedAt, r.ID }, p)
		for i := range out {
			out[i] = t.withComments(out[i])
		}
		return nil
	})
	return out, err
}

func (rs records) StoredBytes(ctx context.Context, patientID int64) (int64, error) {
	var n int64
	err := rs.r.read(ctx, "Records.StoredBytes", func(t *Tables) error {
		if _, ok := t.Users[patientID]; !ok {
			return notFound("user", patientID)
		}
		for _, rec := range t.Records {
			if rec.PatientID == patientID {
				n += int64(len(rec.Title) + len(rec.Content))
			}
		}
		for _, c := range t.Comments {
			if t.Records[c.RecordID].PatientID == patientID {
				n += int64(len(c.Text))
			}
		}
		return nil
	})
	return n, err
}

// comments implements ports.Comments.
type comments struct{ r repos }

// errNoCommentScope refuses a list without the actor's scope.
var errNoCommentScope = errors.New("memstore: comment list needs a patient or a doctor")

func (cs comments) Create(ctx context.Context, c *domain.Comment) error {
	return cs.r.write(ctx, "Comments.Create", func(t *Tables) error {
		if _, ok := t.Records[c.RecordID]; !ok {
			return fmt.Errorf("memstore: create comment: no record %d", c.RecordID)
		}
		if err := t.references("create comment", c.DoctorID); err != nil {
			return err
		}
		c.ID = t.nextID("comments")
		stored := *c
		stored.CreatedAt = stamp(c.CreatedAt)
		t.Comments[c.ID] = stored
		return nil
	})
}

func (cs comments) Get(ctx context.Context, id int64) (domain.Comment, error) {
	return byKey(ctx, cs.r, "Comments.Get", "comment", func(t *Tables) map[int64]domain.Comment { return t.Comments }, id)
}

// List keeps the comments whose record is in the scope now: a comment is
// visible exactly when its record is.
func (cs comments) List(ctx context.Context, f ports.CommentFilter, p domain.Page) ([]domain.Comment, error) {
	if f.Records.PatientID == 0 && f.Records.DoctorID == 0 {
		return nil, errNoCommentScope
	}
	var out []domain.Comment
	err := cs.r.read(ctx, "Comments.List", func(t *Tables) error {
		for _, c := range t.Comments {
			rec, ok := t.Records[c.RecordID]
			if ok && f.Records.Contains(rec) && (f.RecordID == 0 || c.RecordID == f.RecordID) {
				out = append(out, c)
			}
		}
		out = newestFirst(out, func(c domain.Comment) (time.Time, int64) { return c.CreatedAt, c.ID }, p)
		return nil
	})
	return out, err
}

// notifications implements ports.Notifications, one per event.
type notifications struct{ r repos }

func (ns notifications) Create(ctx context.Context, n *domain.Notification) (bool, error) {
	created := false
	err := ns.r.write(ctx, "Notifications.Create", func(t *Tables) error {
		for _, o := range t.Notifications {
			if o.EventID == n.EventID {
				n.ID = o.ID
				return nil
			}
		}
		if err := t.references("create notification", n.UserID); err != nil {
			return err
		}
		n.ID, created = t.nextID("notifications"), true
		stored := *n
		stored.CreatedAt, stored.ReadAt = stamp(n.CreatedAt), stampPtr(n.ReadAt)
		t.Notifications[n.ID] = stored
		return nil
	})
	return created, err
}

func (ns notifications) List(ctx context.Context, userID int64, p domain.Page) ([]domain.Notification, error) {
	var out []domain.Notification
	err := ns.r.read(ctx, "Notifications.List", func(t *Tables) error {
		for _, n := range t.Notifications {
			if n.UserID == userID {
				out = append(out, n)
			}
		}
		out = newestFirst(out, func(n domain.Notification) (time.Time, int64) { return n.CreatedAt, n.ID }, p)
		return nil
	})
	return out, err
}

func (ns notifications) After(ctx context.Context, userID, afterID int64, limit int) ([]domain.Notification, error) {
	out := []domain.Notification{}
	err := ns.r.read(ctx, "Notifications.After", func(t *Tables) error {
		for _, n := range t.Notifications {
			if n.UserID == userID && n.ID > afterID {
				out = append(out, n)
			}
		}
		slices.SortFunc(out, func(a, b domain.Notification) int { return cmp.Compare(a.ID, b.ID) })
		out = out[:min(len(out), max(limit, 0))]
		return nil
	})
	return out, err
}

func (ns notifications) MarkRead(ctx context.Context, userID, id int64, now time.Time) (domain.Notification, error) {
	var out domain.Notification
	err := ns.r.write(ctx, "Notifications.MarkRead", func(t *Tables) error {
		n, ok := t.Notifications[id]
		if !ok || n.UserID != userID {
			return notFound("notification", id)
		}
		if n.ReadAt == nil {
			n.ReadAt = stampPtr(&now)
			t.Notifications[id] = n
		}
		out = n
		return nil
	})
	return out, err
}

// sessions implements ports.Sessions.
type sessions struct{ r repos }

func (ss sessions) Create(ctx context.Context, s domain.Session) error {
	return ss.r.write(ctx, "Sessions.Create", func(t *Tables) error {
		if _, ok := t.Sessions[s.ID]; ok {
			return fmt.Errorf("memstore: create session: %q exists", s.ID)
		}
		if err := t.references("create session", s.UserID); err != nil {
			return err
		}
		s.CreatedAt, s.ExpiresAt, s.RevokedAt = stamp(s.CreatedAt), stamp(s.ExpiresAt), stampPtr(s.RevokedAt)
		t.Sessions[s.ID] = s
		return nil
	})
}

func (ss sessions) Get(ctx context.Context, id string) (domain.Session, error) {
	return byKey(ctx, ss.r, "Sessions.Get", "session", func(t *Tables) map[string]domain.Session { return t.Sessions }, id)
}

// revoke revokes s at now under the revocation number seq, unless it is
// revoked already.
func (t *Tables) revoke(s domain.Session, now time.Time, seq int64) {
	if s.RevokedAt != nil {
		return
	}
	s.RevokedAt = stampPtr(&now)
	t.Sessions[s.ID] = s
	t.revokedSeq[s.ID] = seq
}

// nextRevokedSeq numbers a revocation: one above the highest so far, so
// numbers follow commit order.
func (t *Tables) nextRevokedSeq() int64 {
	var top int64
	for _, n := range t.revokedSeq {
		top = max(top, n)
	}
	return top + 1
}

func (ss sessions) Revoke(ctx context.Context, id string, now time.Time) error {
	return ss.r.write(ctx, "Sessions.Revoke", func(t *Tables) error {
		s, ok := t.Sessions[id]
		if !ok {
			return notFound("session", id)
		}
		t.revoke(s, now, t.nextRevokedSeq())
		return nil
	})
}

// RevokeUser revokes the user's live sign-ins (an expired one needs no
// revoking), all under one revocation number.
func (ss sessions) RevokeUser(ctx context.Context, userID int64, keep string, now time.Time) error {
	return ss.r.write(ctx, "Sessions.RevokeUser", func(t *Tables) error {
		seq := t.nextRevokedSeq()
		for _, s := range t.Sessions {
			if s.UserID == userID && s.ID != keep && s.ExpiresAt.After(stamp(now)) {
				t.revoke(s, now, seq)
			}
		}
		return nil
	})
}

func (ss sessions) RevokedAfter(ctx context.Context, afterSeq int64, notBefore time.Time) ([]ports.RevokedSession, error) {
	out := []ports.RevokedSession{}
	err := ss.r.read(ctx, "Sessions.RevokedAfter", func(t *Tables) error {
		for id, seq := range t.revokedSeq {
			s, ok := t.Sessions[id]
			if ok && s.RevokedAt != nil && seq > afterSeq && !s.RevokedAt.Before(stamp(notBefore)) {
				out = append(out, ports.RevokedSession{ID: id, RevokedAt: *s.RevokedAt, Seq: seq})
			}
		}
		slices.SortFunc(out, func(a, b ports.RevokedSession) int {
			if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		return nil
	})
	return out, err
}

// UseRefresh first forgets refresh tokens that have expired, as the
// SQLite adapter does.
func (ss sessions) UseRefresh(ctx context.Context, jti, _ string, expiresAt, now time.Time) (bool, error) {
	fresh := false
	err := ss.r.write(ctx, "Sessions.UseRefresh", func(t *Tables) error {
		for k, exp := range t.usedRefresh {
			if exp.Before(stamp(now)) {
				delete(t.usedRefresh, k)
			}
		}
		if _, used := t.usedRefresh[jti]; used {
			return nil
		}
		t.usedRefresh[jti], fresh = stamp(expiresAt), true
		return nil
	})
	return fresh, err
}

// maxErrLen bounds a stored delivery error, as the SQLite adapter does.
const maxErrLen = 2000

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
