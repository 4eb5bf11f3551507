package httpapi

import (
	_ "embed"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"healthrecord/app"
)

//go:embed openapi.json
var openAPIDoc []byte

// routes is the whole API in one place. Paths are registered with their
// trailing slash; slashes() routes the slash-less form to the same handler.
// openapi.json must list exactly these routes (a test walks the router).
func (s *server) routes() {
	r := s.mux
	r.Use(s.requestID, s.securityHeaders, s.accessLog, s.recoverer, s.slashes, s.anonRate, middleware.GetHead)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)

	// Public.
	r.Get("/", s.index)
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Get("/api/openapi.json", s.openAPI)
	r.Post("/api/users/register/", s.register)
	for _, prefix := range []string{"/api/token", "/api/users/token"} {
		r.Post(prefix+"/", s.token)
		r.Post(prefix+"/refresh/", s.refresh)
	}
	r.Post("/api/token/blacklist/", s.blacklist)
	s.mountWeb(r)

	// Everything else needs a valid access token; who may do what is the
	// app's decision.
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Get("/api/users/me/", s.me)
		r.Put("/api/users/me/password/", s.changePassword)
		r.Get("/api/doctors/", s.doctors)

		r.Route("/api/records", func(r chi.Router) {
			r.Get("/", s.listRecords)
			r.Post("/", s.createRecord)
			r.Get("/{id}/", s.getRecord)
			r.Put("/{id}/", s.updateRecord(true))
			r.Patch("/{id}/", s.updateRecord(false))
			r.Delete("/{id}/", s.deleteRecord)
			r.Get("/{id}/access-log/", s.recordAccessLog)
		})
		r.Route("/api/comments", func(r chi.Router) {
			r.Get("/", s.listComments)
			r.Post("/", s.createComment)
			r.Get("/{id}/", s.getComment)
			for _, m := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete} {
				r.MethodFunc(m, "/{id}/", s.commentsAppendOnly) // append-only: always 405
			}
		})
		r.Route("/api/notifications", func(r chi.Router) {
			r.Get("/", s.notifications)
			r.Get("/stream/", s.notificationStream)
			r.Post("/{id}/read/", s.readNotification)
		})
		r.Route("/api/admin", func(r chi.Router) {
			r.Get("/users/", s.adminUsers)
			r.Post("/users/{id}/approve/", s.adminSetUser(app.OpApprove))
			r.Post("/users/{id}/deactivate/", s.adminSetUser(app.OpDeactivate))
			r.Post("/users/{id}/activate/", s.adminSetUser(app.OpActivate))
			r.Get("/overview/", s.adminOverview)
			r.Get("/audit/", s.adminAudit)
			r.Get("/audit/verify/", s.adminVerifyAudit)
			r.Get("/outbox/", s.adminOutbox)
			r.Post("/outbox/{id}/retry/", s.adminRetryOutbox)
		})
	})
}
