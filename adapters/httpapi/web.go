package httpapi

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
)

// web holds the browser side: the API reference (docs/, over the vendored
// Swagger UI) and the admin console (admin/). Plain files, no build step.
//
//go:embed web
var webFS embed.FS

// The pages' policies. Scripts come only from this server, never inline
// and never eval'd; the pages talk only to this server; nothing frames
// them. Swagger UI draws its icons from data: URIs in its stylesheet.
const (
	docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	adminCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
}

// staticSite serves the files of one embedded directory, and index.html
// at its root, under one policy. Only files that exist are served: no
// directory listings, no redirects.
type staticSite struct {
	prefix string // the URL path it is mounted at, with its slash
	csp    string
	files  map[string]asset // by path below prefix; "" is index.html
	// notFound answers a name that is not a file, as the API does.
	notFound http.HandlerFunc
}

func newStaticSite(prefix, dir, csp string, extra map[string]string) *staticSite {
	s := &staticSite{prefix: prefix, csp: csp, files: map[string]asset{}}
	add := func(name, file string) {
		b, err := fs.ReadFile(webFS, file)
		if err != nil {
			panic("httpapi: embedded asset missing: " + file) // a build mistake, caught by every test
		}
		ct := mime.TypeByExtension(path.Ext(file))
		if ct == "" {
			ct = "text/plain; charset=utf-8"
		}
		s.files[name] = asset{body: b, contentType: ct}
	}
	entries, err := fs.ReadDir(webFS, dir)
	if err != nil {
		panic("httpapi: embedded directory missing: " + dir)
	}
	for _, e := range entries {
		if !e.IsDir() {
			add(e.Name(), dir+"/"+e.Name())
		}
	}
	s.files[""] = s.files["index.html"]
	for name, file := range extra {
		add(name, file)
	}
	return s
}

func (s *staticSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(canonicalPath(routePath(r)), s.prefix)
	a, ok := s.files[name]
	if !ok {
		s.notFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", s.csp)
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
}

// isAssetPath reports whether p names a file of a static site, which is
// served as named, without the trailing slash API paths get.
func isAssetPath(p string) bool {
	return (strings.HasPrefix(p, "/admin/") || strings.HasPrefix(p, "/api/docs/")) && path.Ext(p) != ""
}

// mountWeb routes the docs page and the console. Their files are not API
// operations, so they sit under "/*" patterns that the OpenAPI test skips;
// the pages themselves are documented.
func (s *server) mountWeb(r chi.Router) {
	vendor := "web/vendor/swagger-ui-dist/"
	docs := newStaticSite("/api/docs/", "web/docs", docsCSP, map[string]string{
		"swagger-ui-bundle.js": vendor + "swagger-ui-bundle.js",
		"swagger-ui.css":       vendor + "swagger-ui.css",
		"favicon-32x32.png":    vendor + "favicon-32x32.png",
	})
	admin := newStaticSite("/admin/", "web/admin", adminCSP, nil)
	docs.notFound, admin.notFound = s.notFound, s.notFound
	r.Get("/api/docs/", docs.ServeHTTP)
	r.Get("/api/docs/*", docs.ServeHTTP)
	r.Get("/admin/", admin.ServeHTTP)
	r.Get("/admin/*", admin.ServeHTTP)
}

// index is the API's front door: where its reference and document are.
func (s *server) index(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{
		"name": "healthrecord", "version": s.cfg.Version,
		"docs": "/api/docs/", "openapi": "/api/openapi.json",
	})
}

// buildVersion is the module version the binary was built from, for a
// server whose wiring gives none.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
