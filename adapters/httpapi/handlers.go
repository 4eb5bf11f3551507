package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"healthrecord/app"
	"healthrecord/domain"
	"healthrecord/ports"
)

// pathID reads the {id} of the URL; anything but a positive integer is a
// path that does not exist, as Django's <int:pk> would have it.
func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id < 1 {
		return 0, domain.NotFound()
	}
	return id, nil
}

// --- accounts and tokens ---

func (s *server) register(w http.ResponseWriter, r *http.Request) {
	if wait, err := s.rates.allowRegister(r.Context(), remoteAddr(r), time.Now()); s.throttled(w, r, wait, err) {
		return
	}
	reg, err := s.decodeRegistration(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.app.Register(r.Context(), reg, remoteAddr(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toUser(u, false))
}

type tokenPairView struct {
	Refresh string `json:"refresh"`
	Access  string `json:"access"`
}

func (s *server) token(w http.ResponseWriter, r *http.Request) {
	in, err := s.decodeStrings(w, r, "username", "password")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pair, err := s.app.SignIn(r.Context(), in[0], in[1], remoteAddr(r))
	s.cfg.Observer.ObserveSignIn(signInOutcome(err))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tokenPairView{Refresh: pair.Refresh, Access: pair.Access})
}

// signInOutcome names a sign-in's result for metrics.
func signInOutcome(err error) string {
	switch domain.ErrorCode(err) {
	case "":
		return "ok"
	case domain.EThrottled:
		return "throttled"
	case domain.EUnauthorized:
		return "denied"
	}
	return "error"
}

func (s *server) refresh(w http.ResponseWriter, r *http.Request) {
	in, err := s.decodeStrings(w, r, "refresh")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pair, err := s.app.Refresh(r.Context(), in[0])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tokenPairView{Refresh: pair.Refresh, Access: pair.Access})
}

func (s *server) blacklist(w http.ResponseWriter, r *http.Request) {
	in, err := s.decodeStrings(w, r, "refresh")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.app.Blacklist(r.Context(), in[0]); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *server) me(w http.ResponseWriter, r *http.Request) {
	u, err := s.app.Me(r.Context(), actorOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toUser(u, false))
}

func (s *server) changePassword(w http.ResponseWriter, r *http.Request) {
	in, err := s.decodeStrings(w, r, "old_password", "new_password")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.app.ChangePassword(r.Context(), actorOf(r), in[0], in[1]); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *server) doctors(w http.ResponseWriter, r *http.Request) {
	s.list(w, r, nil, func(ctx context.Context, a domain.Actor, p domain.Page) (any, *domain.Cursor, error) {
		items, next, err := s.app.Doctors(ctx, a, p)
		return mapList(items, func(u domain.User) doctorView {
			return doctorView{ID: u.ID, Username: u.Username}
		}), next, err
	})
}

// list answers a list endpoint: the page and the filters (read by filters,
// nil when there are none) are checked before the use case runs; page
// calls it and returns the body to write (a mapList slice or a jsonBody).
func (s *server) list(w http.ResponseWriter, r *http.Request, filters func(q *query),
	page func(ctx context.Context, a domain.Actor, p domain.Page) (any, *domain.Cursor, error)) {
	q := newQuery(r)
	p := q.page()
	if filters != nil {
		filters(q)
	}
	if err := q.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	body, next, err := page(r.Context(), actorOf(r), p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeList(w, r, body, next)
}

// --- records ---

func (s *server) listRecords(w http.ResponseWriter, r *http.Request) {
	s.list(w, r, nil, func(ctx context.Context, a domain.Actor, p domain.Page) (any, *domain.Cursor, error) {
		items, next, err := s.app.ListRecords(ctx, a, p)
		return recordsBody(items), next, err
	})
}

func (s *server) createRecord(w http.ResponseWriter, r *http.Request) {
	c, err := s.decodeRecordChange(w, r, true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rec, err := s.app.CreateRecord(r.Context(), actorOf(r), c)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, recordBody(rec))
}

func (s *server) getRecord(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rec, err := s.app.GetRecord(r.Context(), actorOf(r), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, recordBody(rec))
}

// updateRecord serves PUT (full) and PATCH (partial).
func (s *server) updateRecord(full bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		c, err := s.decodeRecordChange(w, r, full)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		rec, err := s.app.UpdateRecord(r.Context(), actorOf(r), id, c, full)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, recordBody(rec))
	}
}

func (s *server) deleteRecord(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.app.DeleteRecord(r.Context(), actorOf(r), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) recordAccessLog(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.list(w, r, nil, func(ctx context.Context, a domain.Actor, p domain.Page) (any, *domain.Cursor, error) {
		items, next, err := s.app.AccessLog(ctx, a, id, p)
		return mapList(items, toAudit), next, err
	})
}

// --- comments ---

func (s *server) listComments(w http.ResponseWriter, r *http.Request) {
	var recordID int64
	s.list(w, r, func(q *query) { recordID = q.id("record") },
		func(ctx context.Context, a domain.Actor, p domain.Page) (any, *domain.Cursor, error) {
			items, next, err := s.app.ListComments(ctx, a, recordID, p)
			return commentsBody(items), next, err
		})
}

func (s *server) createComment(w http.ResponseWriter, r *http.Request) {
	in, err := s.decodeComment(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.app.CreateComment(r.Context(), actorOf(r), in.RecordID, in.Text)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, commentBody(c))
}

func (s *server) getComment(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.app.GetComment(r.Context(), actorOf(r), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, commentBody(c))
}

// commentsAppendOnly answers PUT, PATCH and DELETE on a comment: routed
// explicitly so the API document lists them, refused like any other
// method the path does not serve.
func (s *server) commentsAppendOnly(w http.ResponseWriter, r *http.Request) {
	s.refuseMethod(w, r, []string{http.MethodGet, http.MethodHead})
}

// --- notifications ---

func (s *server) notifications(w http.ResponseWriter, r *http.Request) {
	s.list(w, r, nil, func(ctx context.Context, a domain.Actor, p domain.Page) (any, *domain.Cursor, error) {
		items, next, err := s.app.Notifications(ctx, a, p)
		return mapList(items, toNotification), next, err
	})
}

func (s *server) readNotification(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	n, err := s.app.MarkNotificationRead(r.Context(), actorOf(r), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toNotification(n))
}

// --- admin ---

func (s *server) adminUsers(w http.ResponseWriter, r *http.Request) {
	var f ports.UserFilter
	s.list(w, r, func(q *query) {
		if role := q.choice("role", string(domain.RolePatient), string(domain.RoleDoctor), string(domain.RoleAdmin)); role != "" {
			rl, _ := domain.ParseRole(role) // one of the choices
			f.Role = &rl
		}
		f.Approved = q.boolean("approved")
		f.Active = q.boolean("is_active")
		f.Search = q.text("search", 150)
	}, func(ctx context.Context, a domain.Actor, p domain.Page) (any, *domain.Cursor, error) {
		items, next, err := s.app.AdminUsers(ctx, a, f, p)
		return mapList(items, func(u domain.User) userView { return toUser(u, true) }), next, err
	})
}

func (s *server) adminSetUser(op app.UserOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		u, err := s.app.AdminSetUser(r.Context(), actorOf(r), id, op)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toUser(u, true))
	}
}

func (s *server) adminAudit(w http.ResponseWriter, r *http.Request) {
	var f ports.AuditFilter
	s.list(w, r, func(q *query) {
		f = ports.AuditFilter{ActorID: q.id("actor"), RecordID: q.id("record"), PatientID: q.id("patient"),
			Action: q.choice("action", domain.AuditActions...)}
	}, func(ctx context.Context, a domain.Actor, p domain.Page) (any, *domain.Cursor, error) {
		items, next, err := s.app.AdminAudit(ctx, a, f, p)
		return mapList(items, toAudit), next, err
	})
}

// adminOverview answers the console's first page: the store's totals and
// this process's version and start.
func (s *server) adminOverview(w http.ResponseWriter, r *http.Request) {
	c, err := s.app.AdminOverview(r.Context(), actorOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	users := map[string]int64{}
	for role, n := range c.UsersByRole {
		users[string(role)] = n
	}
	writeJSON(w, http.StatusOK, overviewView{
		Users: users, PendingDoctors: c.PendingDoctors, Outbox: c.OutboxByState,
		AuditEntries: c.AuditEntries, Version: s.cfg.Version, StartedAt: timeJSON(s.cfg.StartedAt),
	})
}

// adminVerifyAudit is `healthrecord audit verify` for the console.
func (s *server) adminVerifyAudit(w http.ResponseWriter, r *http.Request) {
	c, err := s.app.AdminVerifyAudit(r.Context(), actorOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, auditCheckView{OK: c.OK(), Entries: c.Entries, FirstBroken: optID(c.FirstBroken)})
}

func (s *server) adminOutbox(w http.ResponseWriter, r *http.Request) {
	var f ports.OutboxFilter
	s.list(w, r, func(q *query) {
		f = ports.OutboxFilter{
			State: q.choice("state", domain.OutboxPending, domain.OutboxDelivered, domain.OutboxDead),
			Sink:  q.choice("sink", domain.SinkNotification, domain.SinkEmail),
		}
	}, func(ctx context.Context, a domain.Actor, p domain.Page) (any, *domain.Cursor, error) {
		items, next, err := s.app.AdminOutbox(ctx, a, f, p)
		return mapList(items, toOutbox), next, err
	})
}

func (s *server) adminRetryOutbox(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ev, err := s.app.AdminRetryOutbox(r.Context(), actorOf(r), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toOutbox(ev))
}

// --- operations ---

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			s.logger(r).Warn("not ready", "err", err.Error())
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) openAPI(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, rawJSON(openAPIDoc))
}
