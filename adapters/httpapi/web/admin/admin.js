// The admin console. It talks only to this server's JSON API. The tokens
// live in this closure and nowhere else (no localStorage, no cookies), so
// closing the tab ends the session and there is nothing for another site
// to ride on. Every value from the API reaches the page through
// textContent, never as HTML.
"use strict";

(function () {
  const $ = (sel) => document.querySelector(sel);
  let tokens = null; // {access, refresh} while signed in
  let me = null;

  // ---- messages -------------------------------------------------------

  function say(text, kind) {
    const m = $("#message");
    m.textContent = text;
    m.className = "message" + (kind === "info" ? " info" : "");
    m.hidden = !text;
  }

  // describe turns an API error body into words: DRF's {"detail"} or
  // {"field": ["message"]}.
  function describe(status, body) {
    if (body && typeof body === "object") {
      if (typeof body.detail === "string") return body.detail;
      const parts = [];
      for (const [field, msgs] of Object.entries(body)) {
        parts.push(field + ": " + (Array.isArray(msgs) ? msgs.join(" ") : String(msgs)));
      }
      if (parts.length) return parts.join("; ");
    }
    return "The server answered " + status + ".";
  }

  class APIError extends Error {
    constructor(status, body) {
      super(describe(status, body));
      this.status = status;
      this.body = body;
    }
  }

  // ---- the API --------------------------------------------------------

  async function send(method, path, body, access) {
    const headers = { Accept: "application/json" };
    if (access) headers.Authorization = "Bearer " + access;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit", cache: "no-store", redirect: "error",
      });
    } catch (e) {
      throw new APIError(0, { detail: "The server could not be reached. Check the connection and try again." });
    }
    let data = null;
    const text = await resp.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    return { status: resp.status, ok: resp.ok, data, link: resp.headers.get("Link") };
  }

  // refreshing is shared, so calls that fail together refresh once (a
  // refresh token works only once).
  let refreshing = null;
  function refresh() {
    if (!refreshing) {
      const old = tokens;
      refreshing = send("POST", "/api/token/refresh/", { refresh: old.refresh }).then((r) => {
        if (!r.ok) throw new APIError(r.status, r.data);
        if (tokens === old) tokens = { access: r.data.access, refresh: r.data.refresh };
      }).finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  // expiring tells whether an access token is in the last tenth of its
  // life by this browser's clock, so it is refreshed before a call rather
  // than after a refusal. A clock that disagrees with the server's is
  // covered by the refresh on 401 below.
  function expiring(token) {
    try {
      const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(b64));
      const life = (claims.exp - claims.iat) * 1000;
      return claims.exp * 1000 - Date.now() < life / 10;
    } catch (e) {
      return false;
    }
  }

  // api calls the API as the signed-in admin, refreshing the access token
  // when it is about to expire, or once when the server says it has. A
  // sign-in that cannot be refreshed ends.
  async function api(method, path, body) {
    if (!tokens) throw new APIError(401, { detail: "You are signed out." });
    if (expiring(tokens.access)) {
      try {
        await refresh();
      } catch (e) {
        endSession("Your sign-in has ended. Please sign in again.");
        throw new APIError(401, { detail: "Your sign-in has ended. Please sign in again." });
      }
    }
    let r = await send(method, path, body, tokens.access);
    if (r.status === 401 && tokens) {
      try {
        await refresh();
      } catch (e) {
        endSession("Your sign-in has ended. Please sign in again.");
        throw new APIError(401, { detail: "Your sign-in has ended. Please sign in again." });
      }
      r = await send(method, path, body, tokens.access);
    }
    if (!r.ok) throw new APIError(r.status, r.data);
    return r;
  }

  // nextPath keeps a Link header's next page on this origin: only its path
  // and query are used.
  function nextPath(link) {
    if (!link) return null;
    const m = /<([^>]+)>\s*;\s*rel="next"/.exec(link);
    if (!m) return null;
    const u = new URL(m[1], location.href);
    return u.pathname + u.search;
  }

  // ---- signing in and out --------------------------------------------

  async function signIn(ev) {
    ev.preventDefault();
    const username = $("#signin-username").value.trim();
    const password = $("#signin-password").value;
    if (!username || !password) {
      say("Enter your username and password.");
      return;
    }
    const button = $("#signin-submit");
    button.disabled = true;
    say("");
    try {
      const r = await send("POST", "/api/token/", { username, password });
      if (!r.ok) throw new APIError(r.status, r.data);
      tokens = { access: r.data.access, refresh: r.data.refresh };
      const who = await api("GET", "/api/users/me/");
      if (who.data.role !== "ADMIN") {
        // Not for them: close the sign-in at once so no token is left.
        await revoke();
        $("#signin-password").value = "";
        say("This console is for administrators. You were signed out; use your usual app instead.");
        return;
      }
      me = who.data;
      $("#signin-password").value = "";
      showApp();
    } catch (e) {
      tokens = null;
      say(e.message);
    } finally {
      button.disabled = false;
    }
  }

  // revoke blacklists the refresh token (which also stops its access
  // tokens) and forgets both.
  async function revoke() {
    const t = tokens;
    tokens = null;
    me = null;
    if (t) {
      try { await send("POST", "/api/token/blacklist/", { refresh: t.refresh }); } catch (e) { /* gone either way */ }
    }
  }

  function endSession(message) {
    tokens = null;
    me = null;
    showSignIn();
    say(message);
  }

  async function signOut() {
    await revoke();
    showSignIn();
    say("You are signed out.", "info");
  }

  function showSignIn() {
    $("#app-view").hidden = true;
    $("#who").hidden = true;
    $("#signin-view").hidden = false;
    $("#signin-username").focus();
  }

  function showApp() {
    $("#signin-view").hidden = true;
    $("#app-view").hidden = false;
    $("#who").hidden = false;
    $("#who-name").textContent = "Signed in as " + me.username;
    route();
  }

  // ---- pages ------------------------------------------------------------

  const pages = ["overview", "accounts", "outbox", "audit"];

  function route() {
    if (!tokens) return;
    const name = pages.includes(location.hash.slice(1)) ? location.hash.slice(1) : "overview";
    for (const p of pages) {
      $("#page-" + p).hidden = p !== name;
      const tab = document.querySelector('.tabs a[data-page="' + p + '"]');
      if (p === name) tab.setAttribute("aria-current", "page"); else tab.removeAttribute("aria-current");
    }
    say("");
    loaders[name]();
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "—" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function emptyRow(tbody, cols, text) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(tr, text);
    td.colSpan = cols;
    tbody.appendChild(tr);
  }

  function when(s) {
    if (!s) return "—";
    return s.replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", "");
  }

  function uptime(startedAt) {
    let s = Math.max(0, Math.floor((Date.now() - Date.parse(startedAt)) / 1000));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60);
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + m + " min";
    return m + " min";
  }

  // confirm asks in a modal dialog; resolves true when confirmed.
  function confirmAction(text, okLabel) {
    const dlg = $("#confirm");
    $("#confirm-text").textContent = text;
    $("#confirm-ok").textContent = okLabel;
    return new Promise((resolve) => {
      const done = (answer) => {
        $("#confirm-ok").removeEventListener("click", ok);
        $("#confirm-cancel").removeEventListener("click", cancel);
        dlg.removeEventListener("cancel", cancel);
        if (dlg.open) dlg.close();
        resolve(answer);
      };
      const ok = () => done(true);
      const cancel = () => done(false);
      $("#confirm-ok").addEventListener("click", ok);
      $("#confirm-cancel").addEventListener("click", cancel);
      dlg.addEventListener("cancel", cancel);
      dlg.showModal();
      $("#confirm-cancel").focus();
    });
  }

  async function verifyChain(target) {
    const el = $(target);
    el.className = "chain";
    el.textContent = "Verifying…";
    try {
      const r = await api("GET", "/api/admin/audit/verify/");
      if (r.data.ok) {
        el.className = "chain ok";
        el.textContent = "Chain OK: " + r.data.entries + " entries verified.";
      } else {
        el.className = "chain bad";
        el.textContent = "Chain BROKEN at entry " + r.data.first_broken + " (" + r.data.entries + " entries). The trail was altered outside the server.";
      }
    } catch (e) {
      el.textContent = "";
      say(e.message);
    }
  }

  // A list page: filters from a form, a table body, and paging through
  // the Link header.
  function listPage(opts) {
    const section = $("#page-" + opts.name);
    const form = section.querySelector("form.filters");
    const tbody = section.querySelector("tbody");
    const nextBtn = section.querySelector("[data-next]");
    const firstBtn = section.querySelector("[data-first]");
    let next = null;
    let current = null;

    function firstPath() {
      const q = new URLSearchParams();
      for (const el of form.elements) {
        if (el.name && el.value.trim() !== "") q.set(el.name, el.value.trim());
      }
      q.set("limit", String(opts.limit || 25));
      return opts.path + "?" + q.toString();
    }

    async function load(path) {
      current = path;
      try {
        const r = await api("GET", path);
        tbody.replaceChildren();
        if (!r.data.length) emptyRow(tbody, opts.cols(), "Nothing matches.");
        for (const item of r.data) {
          const tr = opts.row(item, reload);
          // Each cell names its column, for the stacked layout of narrow screens.
          const heads = [...section.querySelectorAll("thead th")].map((th) => th.textContent);
          tr.querySelectorAll("td").forEach((td, i) => { td.dataset.label = heads[i] || ""; });
          tbody.appendChild(tr);
        }
        next = nextPath(r.link);
        nextBtn.disabled = !next;
        firstBtn.disabled = path === firstPath();
      } catch (e) {
        say(e.message);
      }
    }
    function reload() { return load(current || firstPath()); }

    form.addEventListener("submit", (ev) => { ev.preventDefault(); say(""); load(firstPath()); });
    nextBtn.addEventListener("click", () => { if (next) load(next); });
    firstBtn.addEventListener("click", () => load(firstPath()));
    return { load: () => load(firstPath()), form };
  }

  function actionButton(label, cls, handler) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (cls) b.className = cls;
    b.addEventListener("click", handler);
    return b;
  }

  const accounts = listPage({
    name: "accounts",
    path: "/api/admin/users/",
    cols: () => 7,
    row(u, reload) {
      const tr = document.createElement("tr");
      cell(tr, u.id, "num");
      cell(tr, u.username);
      cell(tr, u.email);
      cell(tr, u.role);
      cell(tr, u.role === "DOCTOR" ? (u.approved ? "yes" : "awaiting") : "—");
      cell(tr, u.is_active ? "yes" : "no");
      const td = cell(tr, "");
      td.textContent = "";
      const box = document.createElement("div");
      box.className = "row-actions";
      const act = (verb, label, question, cls) => actionButton(label, cls, async () => {
        if (!(await confirmAction(question, label))) return;
        try {
          await api("POST", "/api/admin/users/" + u.id + "/" + verb + "/");
          say(u.username + ": " + verb + "d.", "info");
          await reload();
        } catch (e) { say(e.message); }
      });
      if (u.role === "DOCTOR" && !u.approved) {
        box.appendChild(act("approve", "Approve", "Approve doctor " + u.username + "? Patients will be able to assign records to them."));
      }
      if (u.is_active) {
        if (!me || u.id !== me.id) {
          box.appendChild(act("deactivate", "Deactivate", "Deactivate " + u.username + "? Every sign-in of theirs stops at once.", "danger"));
        }
      } else {
        box.appendChild(act("activate", "Activate", "Activate " + u.username + "? They will be able to sign in again."));
      }
      box.querySelectorAll("button").forEach((b) => b.setAttribute("aria-label", b.textContent + " " + u.username));
      td.appendChild(box);
      return tr;
    },
  });

  // The outbox table shows each event's progress per sink (deliveries).
  let outboxColumns = null;
  function outboxHead(sample) {
    const cols = [["id", "ID"], ["kind", "Kind"], ["record", "Record"]];
    cols.push(["sink", "Sinks"]);
    cols.push(["state", "State"], ["attempts", "Attempts"], ["last_error", "Last error"],
      ["next_attempt_at", "Next attempt (UTC)"], ["created_at", "Created (UTC)"], ["delivered_at", "Delivered (UTC)"], ["", "Actions"]);
    const key = cols.map((c) => c[0]).join(",");
    if (key !== outboxColumns) {
      outboxColumns = key;
      const tr = $("#outbox-table thead tr");
      tr.replaceChildren();
      for (const [, label] of cols) {
        const th = document.createElement("th");
        th.scope = "col";
        th.textContent = label;
        tr.appendChild(th);
      }
    }
    return cols;
  }
  function sinkText(e) {
    if (!Array.isArray(e.deliveries)) return null;
    return e.deliveries.map((d) => d.sink + ": " + d.state + (d.attempts ? " (" + d.attempts + " attempt" + (d.attempts === 1 ? "" : "s") + ")" : "")).join(", ");
  }

  const outbox = listPage({
    name: "outbox",
    path: "/api/admin/outbox/",
    cols: () => (outboxColumns ? outboxColumns.split(",").length : 10),
    row(e, reload) {
      const cols = outboxHead(e);
      const tr = document.createElement("tr");
      for (const [k] of cols) {
        switch (k) {
          case "": {
            const td = cell(tr, "");
            td.textContent = "";
            if (e.state === "dead") {
              const b = actionButton("Retry", "", async () => {
                if (!(await confirmAction("Retry event " + e.id + "? It goes back to pending and is delivered again.", "Retry"))) return;
                try {
                  await api("POST", "/api/admin/outbox/" + e.id + "/retry/");
                  say("Event " + e.id + " is pending again.", "info");
                  await reload();
                } catch (err) { say(err.message); }
              });
              b.setAttribute("aria-label", "Retry event " + e.id);
              td.appendChild(b);
            }
            break;
          }
          case "sink": cell(tr, sinkText(e)); break;
          case "last_error": cell(tr, e.last_error, e.last_error ? "err" : ""); break;
          case "next_attempt_at": case "created_at": case "delivered_at": cell(tr, when(e[k])); break;
          case "id": case "record": case "attempts": cell(tr, e[k], "num"); break;
          default: cell(tr, e[k]);
        }
      }
      return tr;
    },
  });
  outboxHead(null);

  const audit = listPage({
    name: "audit",
    path: "/api/admin/audit/",
    limit: 50,
    cols: () => 9,
    row(a) {
      const tr = document.createElement("tr");
      cell(tr, a.id, "num");
      cell(tr, when(a.at));
      cell(tr, a.actor, "num");
      cell(tr, a.actor_role);
      cell(tr, a.action);
      cell(tr, a.record, "num");
      cell(tr, a.patient, "num");
      cell(tr, a.outcome);
      cell(tr, a.remote_addr);
      return tr;
    },
  });

  async function loadOverview() {
    try {
      const r = await api("GET", "/api/admin/overview/");
      const o = r.data;
      $("#ov-patients").textContent = o.users.PATIENT;
      $("#ov-doctors").textContent = o.users.DOCTOR;
      $("#ov-admins").textContent = o.users.ADMIN;
      $("#ov-pending").textContent = o.pending_doctors;
      $("#ov-pending-events").textContent = o.outbox.pending;
      $("#ov-delivered").textContent = o.outbox.delivered;
      $("#ov-dead").textContent = o.outbox.dead;
      $("#ov-audit").textContent = o.audit_entries;
      $("#ov-version").textContent = o.version;
      $("#ov-uptime").textContent = uptime(o.started_at);
      $("#ov-uptime").title = "since " + o.started_at;
    } catch (e) {
      say(e.message);
    }
  }

  const loaders = { overview: loadOverview, accounts: accounts.load, outbox: outbox.load, audit: audit.load };

  // ---- wiring -------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("#signin-form").addEventListener("submit", signIn);
    $("#signout").addEventListener("click", signOut);
    $("#ov-verify").addEventListener("click", () => verifyChain("#ov-chain"));
    $("#audit-verify").addEventListener("click", () => verifyChain("#audit-chain"));
    $("#ov-pending-link").addEventListener("click", () => {
      accounts.form.elements.role.value = "DOCTOR";
      accounts.form.elements.approved.value = "false";
      accounts.form.elements.is_active.value = "true";
    });
    $("#ov-dead-link").addEventListener("click", () => { outbox.form.elements.state.value = "dead"; });
    window.addEventListener("hashchange", route);
    showSignIn();
  });
})();
