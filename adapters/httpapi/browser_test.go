package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/httpapi"
	"healthrecord/app"
	"healthrecord/domain"
)

// browser is one headless Chromium tab on a test server, recording what
// the page did: its console and every request it sent.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // the server's origin

	mu       sync.Mutex
	refusals []string // paths whose 4xx the test provoked on purpose
	console  []chromedp.ConsoleMessage
	requests []network.EventRequestWillBeSent
}

// chromiumPath finds Debian's Chromium (or another Chrome). In CI a
// missing browser fails the test: only a developer's machine may skip.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium on PATH, and CI=true: install it (apt-get install -y chromium); .ci/run does")
	}
	t.Skip("no Chromium on PATH (apt-get install -y chromium): skipping the browser tests outside CI")
	return ""
}

// newBrowser starts a fresh headless Chromium (own profile, no network
// beyond the test server, nothing phoned home) on a 1280×900 window.
func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	exe := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, base: base}

	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)), "start Chromium")
	// Every page records the policy violations it meets (an eval, an
	// inline script or style, a foreign origin), for checkClean.
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__csp = []; document.addEventListener("securitypolicyviolation",
			(e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`,
	})
	require.NoError(t, err)
	console := chromedp.Console(ctx)
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range requests {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.requests = append(b.requests, ev)
			b.mu.Unlock()
		}
	}()
	return b
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, steps...))
}

// waitFor polls a JavaScript condition until it holds (10 s at most).
func (b *browser) waitFor(cond string) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(10*time.Second)))
	require.NoError(b.t, err, "waiting for %s", cond)
}

func (b *browser) eval(expr string, v any) {
	b.t.Helper()
	raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[json.RawMessage](expr))
	require.NoError(b.t, err, expr)
	require.NoError(b.t, json.Unmarshal(raw, v), expr)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.CSS(sel)))
	require.NoError(b.t, err, sel)
	return strings.TrimSpace(s)
}

// fill types value into a field, as a user would, after clearing it.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	b.choose(sel, "")
	if value != "" {
		b.do(chromedp.SendKeys(chromedp.CSS(sel), value))
	}
}

// choose sets a field's value (a select's option) and tells the page.
func (b *browser) choose(sel, value string) {
	b.t.Helper()
	var ok bool
	b.eval(`(() => { const el = document.querySelector(`+jsString(sel)+`); if (!el) return false;
		el.value = `+jsString(value)+`; el.dispatchEvent(new Event("input", {bubbles: true}));
		el.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`, &ok)
	require.True(b.t, ok, "no %s", sel)
}

// screenshot saves the page as a PNG under the test's temp dir and
// returns its path.
func (b *browser) screenshot(dir, name string) string {
	b.t.Helper()
	return b.capture(dir, name, chromedp.FullScreenshot(100))
}

// viewShot saves only what the window shows: the small pictures the
// README uses.
func (b *browser) viewShot(dir, name string) string {
	b.t.Helper()
	return b.capture(dir, name, chromedp.CaptureScreenshot())
}

func (b *browser) capture(dir, name string, shot chromedp.Action[[]byte]) string {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, shot)
	require.NoError(b.t, err)
	p := filepath.Join(dir, name+".png")
	require.NoError(b.t, os.WriteFile(p, png, 0o644))
	b.t.Logf("screenshot %s (%d KB)", p, len(png)/1024)
	return p
}

// checkClean asserts the page logged no error, threw nothing, and sent no
// request to another origin.
func (b *browser) checkClean() {
	b.t.Helper()
	var violations []string
	b.eval(`window.__csp`, &violations)
	assert.Empty(b.t, violations, "Content-Security-Policy violations")
	time.Sleep(200 * time.Millisecond) // let the last events arrive
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		if m.Source == "network" && b.provoked(m.URL) {
			continue // Chromium logs every refused request; this one was the test's
		}
		if m.Type == chromedp.ConsoleError || m.IsException() {
			b.t.Errorf("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line)
		}
	}
	require.NotEmpty(b.t, b.requests)
	for _, r := range b.requests {
		u, err := url.Parse(r.Request.URL)
		require.NoError(b.t, err)
		if u.Scheme == "data" {
			continue // an image inlined in a stylesheet: nothing leaves the page
		}
		assert.Equal(b.t, b.base, u.Scheme+"://"+u.Host, "request to another origin: %s", r.Request.URL)
	}
}

// expectRefusal says the page will get a 4xx on path, on purpose.
func (b *browser) expectRefusal(path string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refusals = append(b.refusals, path)
}

// refused counts the refused requests to path the page logged.
func (b *browser) refused(path string) int {
	b.t.Helper()
	time.Sleep(200 * time.Millisecond) // let the last events arrive
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, m := range b.console {
		if u, err := url.Parse(m.URL); err == nil && m.Source == "network" && u.Path == path {
			n++
		}
	}
	return n
}

// provoked reports whether a refused request was one the test asked for;
// b.mu is held.
func (b *browser) provoked(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	for _, p := range b.refusals {
		if u.Path == p {
			return true
		}
	}
	return false
}

// responseBodies are the bodies of the page's answered requests whose URL
// path is path, oldest first.
func (b *browser) responseBodies(path string) []string {
	b.t.Helper()
	b.mu.Lock()
	var ids []network.RequestID
	for _, r := range b.requests {
		if u, _ := url.Parse(r.Request.URL); u != nil && u.Path == path && r.Request.Method == "POST" {
			ids = append(ids, r.RequestID)
		}
	}
	b.mu.Unlock()
	var out []string
	for _, id := range ids {
		res, err := chromedp.Call(b.ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id})
		require.NoError(b.t, err)
		out = append(out, string(res.Body))
	}
	return out
}

// requireRefreshDead proves a token pair handed to the page no longer
// works: its refresh token is refused by the server.
func requireRefreshDead(t *testing.T, e *env, pairJSON string) {
	t.Helper()
	var pair struct{ Refresh string }
	require.NoError(t, json.Unmarshal([]byte(pairJSON), &pair))
	require.NotEmpty(t, pair.Refresh)
	r := e.send(t, "POST", "/api/token/refresh/", "", map[string]string{"refresh": pair.Refresh})
	assertJSON(t, r, 401, `{"detail": "Token is invalid or expired", "code": "token_not_valid"}`)
}

func assertJSON(t *testing.T, r resp, status int, body string) {
	t.Helper()
	require.Equal(t, status, r.Status, r.String())
	assert.JSONEq(t, body, string(r.Body))
}

// TestBrowser_AdminConsole drives the console in Chromium, as an
// administrator would, against the real server and a SQLite file.
func TestBrowser_AdminConsole(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.mustAdmin(t)
	p1, p2 := e.mustPatient(t), e.mustPatient(t)
	d1 := e.mustDoctor(t, true)
	pending := e.mustDoctor(t, false)
	// Two events still pending, as an outage of the relay leaves them.
	rec1 := e.mustRecord(t, p1, 0)
	e.mustPendingEvent(t, rec1, d1.ID) // outbox event 1
	rec2 := e.mustRecord(t, p2, 0)
	e.mustPendingEvent(t, rec2, d1.ID) // outbox event 2
	require.Equal(t, 200, e.send(t, "GET", "/api/records/"+itoa(rec1.ID)+"/", p1.Token, nil).Status)

	// One event dies as a refused email would: 550 from the relay.
	now := time.Now().UTC()
	// (This stack sends no email, so the event's one delivery stands in.)
	sink := domain.SinkNotification
	claimed, err := e.db.Outbox().Claim(ctx, sink, "test", now, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	dead := claimed[0].ID
	_, err = e.db.Outbox().Record(ctx, "test", []domain.DeliveryResult{
		{EventID: dead, Sink: sink, Outcome: domain.OutcomeDead, Error: "smtp: 550 5.1.1 No such mailbox", At: now}})
	require.NoError(t, err)
	require.NoError(t, e.db.Outbox().Release(ctx, "test", sink, []int64{claimed[1].ID}))

	shots := shotDir(t)
	b := newBrowser(t, e.srv.URL)
	b.do(chromedp.Navigate(e.srv.URL + "/admin/"))
	b.do(chromedp.WaitVisible(chromedp.CSS("#signin-username")))
	b.screenshot(shots, "01-signin")

	// step runs one part of the walk as a subtest; the browser's helpers
	// report to it.
	step := func(name string, fn func(t *testing.T)) {
		t.Run(name, func(st *testing.T) {
			b.t = st
			defer func() { b.t = t }()
			fn(st)
		})
	}

	signIn := func(u user) {
		b.fill("#signin-username", u.Name)
		b.fill("#signin-password", u.Password)
		b.do(chromedp.Click(chromedp.CSS("#signin-submit")))
	}

	step("a wrong password is told in words", func(t *testing.T) {
		b.expectRefusal("/api/token/")
		signIn(user{Name: admin.Name, Password: "not-the-password"})
		b.waitFor(`document.querySelector("#message").textContent === "No active account found with the given credentials"`)
		b.screenshot(shots, "01-wrong-password")
	})

	step("a patient is refused and keeps no token", func(t *testing.T) {
		signIn(p1)
		b.waitFor(`document.querySelector("#message").textContent.includes("for administrators")`)
		b.waitFor(`!document.querySelector("#app-view").checkVisibility() && document.querySelector("#signin-view").checkVisibility()`)
		bodies := b.responseBodies("/api/token/")
		require.Len(t, bodies, 2) // the wrong password's refusal, then the patient's pair
		b.waitFor(`performance.getEntriesByName(location.origin + "/api/token/blacklist/").length === 1`)
		requireRefreshDead(t, e, bodies[1])
		var stored struct{ Local, Session int }
		var cookie string
		b.eval(`({Local: localStorage.length, Session: sessionStorage.length})`, &stored)
		b.eval(`document.cookie`, &cookie)
		assert.Zero(t, stored.Local+stored.Session, "nothing kept in web storage")
		assert.Empty(t, cookie)
		b.screenshot(shots, "02-patient-refused")
	})

	step("admin signs in and sees the overview", func(t *testing.T) {
		signIn(admin)
		b.waitFor(`document.querySelector("#page-overview").checkVisibility() && document.querySelector("#ov-version").textContent !== "–"`)
		b.waitFor(`!document.querySelector("#signin-view").checkVisibility()`)
		c, err := e.app.AdminOverview(ctx, domain.Actor{ID: admin.ID, Role: domain.RoleAdmin})
		require.NoError(t, err)
		got := map[string]string{}
		for _, id := range []string{"ov-patients", "ov-doctors", "ov-admins", "ov-pending", "ov-pending-events", "ov-delivered", "ov-dead", "ov-audit"} {
			got[id] = b.text("#" + id)
		}
		assert.Equal(t, map[string]string{
			"ov-patients": "2", "ov-doctors": "2", "ov-admins": "1", "ov-pending": "1",
			"ov-pending-events": "1", "ov-delivered": "0", "ov-dead": "1",
			"ov-audit": fmt.Sprint(c.AuditEntries),
		}, got)
		assert.NotEmpty(t, b.text("#ov-uptime"))
		b.do(chromedp.Click(chromedp.CSS("#ov-verify")))
		b.waitFor(`document.querySelector("#ov-chain").textContent.startsWith("Chain OK")`)
		b.screenshot(shots, "03-overview")
		b.do(chromedp.EmulateViewport(1100, 560))
		b.viewShot(shots, "03-overview-top")
		b.do(chromedp.EmulateViewport(1280, 900))
	})

	step("approve a doctor, deactivate and activate a patient", func(t *testing.T) {
		b.do(chromedp.Click(chromedp.CSS("#ov-pending-link")))
		b.waitFor(`document.querySelector("#page-accounts").checkVisibility() && document.querySelectorAll("#accounts-table tbody tr").length === 1`)
		assert.Equal(t, pending.Name, b.text("#accounts-table tbody tr td:nth-child(2)"))
		b.do(chromedp.Click(chromedp.CSS(`#accounts-table button[aria-label="Approve ` + pending.Name + `"]`)))
		b.waitFor(`document.querySelector("#confirm").open`)
		b.screenshot(shots, "04-accounts-confirm")
		b.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
		b.waitFor(`document.querySelector("#message").textContent.includes("approved")`)
		b.waitFor(`document.querySelectorAll("#accounts-table tbody tr.empty").length === 1`) // no longer awaiting

		r := e.send(t, "GET", "/api/doctors/", p1.Token, nil)
		require.Equal(t, 200, r.Status)
		var names []string
		for _, d := range r.List(t) {
			names = append(names, d["username"].(string))
		}
		assert.Contains(t, names, pending.Name)

		// Search by username, all accounts.
		b.choose("#acc-role", "")
		b.choose("#acc-approved", "")
		b.choose("#acc-active", "")
		b.fill("#acc-search", strings.ToUpper(p2.Name))
		b.do(chromedp.Click(chromedp.CSS("#accounts-filter button[type=submit]")))
		b.waitFor(`document.querySelectorAll("#accounts-table tbody tr").length === 1 && document.querySelector("#accounts-table tbody td:nth-child(2)")?.textContent === ` + jsString(p2.Name))

		// Deactivate (the account's sign-ins stop at once), then activate.
		b.do(chromedp.Click(chromedp.CSS(`#accounts-table button[aria-label="Deactivate ` + p2.Name + `"]`)))
		b.waitFor(`document.querySelector("#confirm").open`)
		b.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
		b.waitFor(`document.querySelector("#accounts-table tbody td:nth-child(6)")?.textContent === "no"`)
		assertJSON(t, e.send(t, "GET", "/api/users/me/", p2.Token, nil), 401,
			`{"detail": "Given token not valid for any token type", "code": "token_not_valid"}`)
		b.do(chromedp.Click(chromedp.CSS(`#accounts-table button[aria-label="Activate ` + p2.Name + `"]`)))
		b.waitFor(`document.querySelector("#confirm").open`)
		b.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
		b.waitFor(`document.querySelector("#accounts-table tbody td:nth-child(6)")?.textContent === "yes"`)

		b.fill("#acc-search", "")
		b.do(chromedp.Click(chromedp.CSS("#accounts-filter button[type=submit]")))
		b.waitFor(`document.querySelectorAll("#accounts-table tbody tr").length === 5`)
		b.screenshot(shots, "05-accounts")
	})

	step("page through accounts with the Link header", func(t *testing.T) {
		// 24 more patients, straight into the store: 26 in all, one more
		// than the console's page of 25.
		for i := range 24 {
			u := domain.User{
				Username: fmt.Sprintf("bulk%02d", i), Email: "bulk@example.com", Role: domain.RolePatient,
				Active: true, Approved: true, PasswordHash: "$argon2id$unused", CreatedAt: time.Now().UTC(),
			}
			require.NoError(t, e.db.Users().Create(ctx, &u))
		}
		b.choose("#acc-role", "PATIENT")
		b.do(chromedp.Click(chromedp.CSS("#accounts-filter button[type=submit]")))
		rows := `document.querySelectorAll("#accounts-table tbody tr").length`
		b.waitFor(rows + ` === 25 && !document.querySelector("#page-accounts [data-next]").disabled`)
		b.do(chromedp.Click(chromedp.CSS("#page-accounts [data-next]")))
		b.waitFor(rows + ` === 1 && document.querySelector("#page-accounts [data-next]").disabled`)
		b.do(chromedp.Click(chromedp.CSS("#page-accounts [data-first]")))
		b.waitFor(rows + ` === 25`)
		b.choose("#acc-role", "")
	})

	step("retry a dead event", func(t *testing.T) {
		b.do(chromedp.Navigate(e.srv.URL + "/admin/#outbox"))
		// A navigation to the same document only changes the hash.
		b.waitFor(`document.querySelector("#page-outbox").checkVisibility()`)
		b.choose("#ob-state", "dead")
		b.do(chromedp.Click(chromedp.CSS("#outbox-filter button[type=submit]")))
		b.waitFor(`document.querySelectorAll("#outbox-table tbody tr").length === 1 && document.querySelector("#outbox-table tbody td")?.textContent === "` + itoa(dead) + `"`)
		assert.Contains(t, b.text("#outbox-table tbody"), "550 5.1.1 No such mailbox")
		b.screenshot(shots, "06-outbox-dead")
		b.do(chromedp.Click(chromedp.CSS(`#outbox-table button[aria-label="Retry event ` + itoa(dead) + `"]`)))
		b.waitFor(`document.querySelector("#confirm").open`)
		b.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
		b.waitFor(`document.querySelector("#message").textContent.includes("pending again")`)
		ev, err := e.db.Outbox().Get(ctx, dead)
		require.NoError(t, err)
		assert.Equal(t, domain.OutboxPending, ev.State)
		b.choose("#ob-state", "")
		b.do(chromedp.Click(chromedp.CSS("#outbox-filter button[type=submit]")))
		b.waitFor(`document.querySelectorAll("#outbox-table tbody tr").length === 2`)
		b.screenshot(shots, "07-outbox")
	})

	step("filter the audit by action and verify the chain", func(t *testing.T) {
		b.do(chromedp.Click(chromedp.CSS(`.tabs a[data-page="audit"]`)))
		b.waitFor(`document.querySelector("#page-audit").checkVisibility() && document.querySelectorAll("#audit-table tbody tr").length > 1`)
		b.fill("#au-action", "record.read")
		b.do(chromedp.Click(chromedp.CSS("#audit-filter button[type=submit]")))
		b.waitFor(`[...document.querySelectorAll("#audit-table tbody td:nth-child(5)")].every(td => td.textContent === "record.read")`)
		var actions []string
		b.eval(`[...document.querySelectorAll("#audit-table tbody td:nth-child(5)")].map(td => td.textContent)`, &actions)
		assert.Equal(t, []string{"record.read"}, actions, "the one read seeded")
		b.do(chromedp.Click(chromedp.CSS("#audit-verify")))
		b.waitFor(`document.querySelector("#audit-chain").textContent.startsWith("Chain OK")`)
		b.screenshot(shots, "08-audit")
	})

	step("every control is labelled and reachable", func(t *testing.T) {
		var unlabelled []string
		b.eval(`[...document.querySelectorAll("input, select, button, a[href]")].filter(el => {
			if (!el.checkVisibility()) return false;
			const name = el.getAttribute("aria-label") || (el.labels && el.labels.length && el.labels[0].textContent.trim()) || el.textContent.trim();
			return !name || el.tabIndex < 0;
		}).map(el => el.outerHTML.slice(0, 80))`, &unlabelled)
		assert.Empty(t, unlabelled)
	})

	step("usable at 360 px", func(t *testing.T) {
		b.do(chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile))
		for _, page := range []string{"overview", "accounts", "outbox", "audit"} {
			b.do(chromedp.Click(chromedp.CSS(`.tabs a[data-page="` + page + `"]`)))
			b.waitFor(`document.querySelector("#page-` + page + `").checkVisibility()`)
			time.Sleep(300 * time.Millisecond) // the list's answer
			var width int
			b.eval(`document.documentElement.scrollWidth`, &width)
			assert.LessOrEqual(t, width, 360, "%s scrolls sideways at 360 px", page)
			b.screenshot(shots, "09-narrow-"+page)
		}
		b.do(chromedp.EmulateViewport(1280, 900))
	})

	step("sign-out blacklists the refresh token", func(t *testing.T) {
		b.do(chromedp.Click(chromedp.CSS("#signout")))
		b.waitFor(`document.querySelector("#signin-view").checkVisibility() && document.querySelector("#message").textContent.includes("signed out")`)
		bodies := b.responseBodies("/api/token/")
		require.Len(t, bodies, 3)
		requireRefreshDead(t, e, bodies[2])
	})

	b.checkClean()
	copyScreenshot(t, filepath.Join(shots, "03-overview-top.png"), "console-overview.png")
}

// TestBrowser_APIDocs loads the reference in Chromium: no console error,
// every operation of the document listed, and a try-it with a bearer
// token answered by the server.
func TestBrowser_APIDocs(t *testing.T) {
	e := newEnv(t)
	p := e.mustPatient(t)

	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	e.send(t, "GET", "/api/openapi.json", "", nil).JSON(t, &doc)
	var ops []string
	for _, item := range doc.Paths {
		for m, raw := range item {
			if m == "parameters" {
				continue
			}
			var op struct{ OperationID string }
			require.NoError(t, json.Unmarshal(raw, &op))
			ops = append(ops, op.OperationID)
		}
	}

	shots := shotDir(t)
	b := newBrowser(t, e.srv.URL)
	b.do(chromedp.Navigate(e.srv.URL + "/api/docs/"))
	b.waitFor(`document.querySelectorAll(".opblock").length > 0`)
	var shown []string
	b.eval(`[...document.querySelectorAll(".opblock .opblock-summary-operation-id")].map(el => el.textContent.trim())`, &shown)
	assert.ElementsMatch(t, ops, shown, "every operation of the document is listed")
	b.screenshot(shots, "docs")
	b.do(chromedp.EmulateViewport(1100, 640))
	b.eval(`window.scrollTo(0, document.querySelector(".scheme-container").offsetTop - 44), true`, new(bool))
	b.viewShot(shots, "docs-top")
	b.do(chromedp.EmulateViewport(1280, 900))

	// Authorize with an access token, then try GET /api/users/me/.
	b.do(chromedp.Click(chromedp.CSS(".btn.authorize")))
	b.do(chromedp.WaitVisible(chromedp.CSS(".auth-container input")))
	b.do(chromedp.SendKeys(chromedp.CSS(".auth-container input"), p.Token))
	b.do(chromedp.Click(chromedp.CSS(".auth-btn-wrapper .authorize")))
	b.do(chromedp.Click(chromedp.CSS(".btn-done")))
	op := `#operations-accounts-getCurrentUser`
	b.do(chromedp.Click(chromedp.CSS(op + " .opblock-summary-control")))
	b.do(chromedp.Click(chromedp.CSS(op + " .try-out__btn")))
	b.do(chromedp.Click(chromedp.CSS(op + " .execute")))
	live := op + " .live-responses-table tbody"
	b.waitFor(`document.querySelector("` + live + ` .response-col_status") !== null`)
	assert.Equal(t, "200", b.text(live+" .response-col_status"))
	assert.Contains(t, b.text(live+" .response-col_description"), `"username": "`+p.Name+`"`)
	b.screenshot(shots, "docs-try-it")

	b.checkClean()
	copyScreenshot(t, filepath.Join(shots, "docs-top.png"), "api-docs.png")
}

// shotDir is where a test's screenshots go: the test's temp dir, or a
// directory of its name under HEALTHRECORD_SCREENSHOT_DIR, to keep them
// for a look after the run.
func shotDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("HEALTHRECORD_SCREENSHOT_DIR")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, t.Name())
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// copyScreenshot refreshes the README's image when HEALTHRECORD_SCREENSHOTS
// names the docs/img directory; the tests never write into the tree
// otherwise.
func copyScreenshot(t *testing.T, from, name string) {
	t.Helper()
	dir := os.Getenv("HEALTHRECORD_SCREENSHOTS")
	if dir == "" {
		return
	}
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestBrowser_AdminConsole_RefreshesExpiredAccess: when the access token
// expires the console refreshes it and carries on, twice in a row, so it
// keeps the rotated refresh token each time. With the browser's clock
// right it refreshes before the call; with a clock an hour behind the
// server's it learns from the 401 and refreshes then.
func TestBrowser_AdminConsole_RefreshesExpiredAccess(t *testing.T) {
	for name, clockScript := range map[string]string{
		"clock agrees":       "",
		"clock an hour slow": `{ const real = Date.now; Date.now = () => real() - 3600e3; }`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(_ *httpapi.Config, a *app.Config) { a.AccessTTL = 3 * time.Second })
			admin := e.mustAdmin(t)
			e.mustPatient(t)

			b := newBrowser(t, e.srv.URL)
			if clockScript != "" {
				_, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument,
					page.AddScriptToEvaluateOnNewDocumentParams{Source: clockScript})
				require.NoError(t, err)
				b.expectRefusal("/api/admin/users/") // the 401 it learns from
			}
			b.do(chromedp.Navigate(e.srv.URL + "/admin/"))
			b.do(chromedp.WaitVisible(chromedp.CSS("#signin-username")))
			b.fill("#signin-username", admin.Name)
			b.fill("#signin-password", admin.Password)
			b.do(chromedp.Click(chromedp.CSS("#signin-submit")))
			b.waitFor(`document.querySelector("#ov-patients").textContent === "1"`)

			pairs := b.responseBodies("/api/token/")
			for round := 1; round <= 2; round++ {
				// Wait until the page's access token is refused by the server.
				var pair struct{ Access string }
				require.NoError(t, json.Unmarshal([]byte(pairs[len(pairs)-1]), &pair))
				require.Eventually(t, func() bool {
					return e.send(t, "GET", "/api/users/me/", pair.Access, nil).Status == 401
				}, 10*time.Second, 100*time.Millisecond, "the access token expires")

				b.eval(`document.querySelector("#accounts-table tbody").replaceChildren(), true`, new(bool))
				if round == 1 {
					b.do(chromedp.Click(chromedp.CSS(`.tabs a[data-page="accounts"]`)))
				} else {
					b.do(chromedp.Click(chromedp.CSS("#accounts-filter button[type=submit]")))
				}
				b.waitFor(`document.querySelectorAll("#accounts-table tbody tr:not(.empty)").length === 2`)
				assert.Empty(t, b.text("#message"), "no error shown after a refresh")
				pairs = b.responseBodies("/api/token/refresh/")
				require.Len(t, pairs, round, "one refresh per expiry")
			}
			if clockScript != "" {
				assert.Equal(t, 2, b.refused("/api/admin/users/"), "each refresh followed a 401")
			}
			b.checkClean()
		})
	}
}
