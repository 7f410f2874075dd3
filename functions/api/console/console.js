// Tributary's console: four pages over the stack's own JSON API, same origin. The API key is kept
// in sessionStorage (this tab's session), sent as a bearer token, never put in a URL.
"use strict";

const KEY = "tributary-api-key";
const PAGES = ["leads", "customers", "runs", "failures"];
const RUN_KINDS = ["matomo", "notion", "redrive", "rebuild", "replay", "monthly-report", "lake-maintenance",
  "latest-dates",  "deliveries", "pushes", "lake-commits"];

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text: nothing is parsed as HTML). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function table(headers, rows, numeric = []) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { scope: "col", class: numeric.includes(i) ? "number" : null }, h)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell, i) => el("td", { class: numeric.includes(i) ? "number" : null }, cell))))));
}

function say(text, bad = false) {
  const status = $("status");
  status.textContent = text;
  status.className = bad ? "status-bad" : "";
}

class Unauthorized extends Error {}

/** A call to the API with the key; a problem+json answer becomes an error with its detail. */
async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY);
  if (!key) throw new Unauthorized();
  const headers = Object.assign({ authorization: "Bearer " + key }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    sessionStorage.removeItem(KEY);
    showLogin("The API key was refused.");
    throw new Unauthorized();
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { const problem = await response.json(); detail = problem.detail || problem.title || detail; } catch (_) { /* not JSON */ }
    throw new Error(response.status + ": " + detail);
  }
  return response;
}
const json = async (path, options) => (await api(path, options)).json();

/** Runs `work`, reporting its failure in the status line. */
async function attempt(what, work) {
  try {
    say(what + "…");
    await work();
    say("");
  } catch (error) {
    if (!(error instanceof Unauthorized)) say(what + " failed: " + error.message, true);
  }
}

async function download(path, name) {
  await attempt("Downloading " + name, async () => {
    const blob = await (await api(path)).blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  });
}

// --- sign in / out --------------------------------------------------------------------------

function showLogin(message) {
  $("login").hidden = false;
  $("nav").hidden = true;
  for (const page of PAGES) $(page).hidden = true;
  if (message) say(message, true);
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  $("api-key").value = "";
  if (!key) return;
  sessionStorage.setItem(KEY, key);
  say("");
  route();
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  // Nothing read with the key stays in the page.
  for (const id of ["leads-chart", "leads-table", "funnel", "alerts", "customer", "runs-list", "tallies", "failures-list"]) {
    $(id).replaceChildren();
  }
  customerId = null;
  location.hash = "";
  showLogin("Logged out: the key is forgotten.");
});

function route() {
  if (!sessionStorage.getItem(KEY)) return showLogin();
  $("login").hidden = true;
  $("nav").hidden = false;
  const page = PAGES.includes(location.hash.slice(1)) ? location.hash.slice(1) : "leads";
  for (const name of PAGES) $(name).hidden = name !== page;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  LOADERS[page]();
}
window.addEventListener("hashchange", route);

// --- leads ----------------------------------------------------------------------------------

const DATE_COLUMNS = ["date_prise_contact", "date_reponse_prospect", "date_appel_propose", "date_appel_booke", "date_relance"];

function leadsQuery(format) {
  const form = new FormData($("leads-form"));
  const query = new URLSearchParams({ tz: form.get("tz") || "UTC" });
  for (const name of ["from", "to"]) if (form.get(name)) query.set(name, form.get(name));
  if (format) query.set("format", format);
  return "/api/v1/transformation/count_date_by_" + form.get("bucket") + "?" + query;
}

async function loadLeads() {
  await attempt("Loading the lead counts", async () => {
    const [svg, rows] = await Promise.all([(await api(leadsQuery("svg"))).text(), json(leadsQuery())]);
    const chart = new DOMParser().parseFromString(svg, "image/svg+xml").documentElement;
    $("leads-chart").replaceChildren(document.importNode(chart, true));
    const bucket = new FormData($("leads-form")).get("bucket") === "week" ? "semaine" : "mois";
    $("leads-table").replaceChildren(table([bucket, ...DATE_COLUMNS], rows.map((r) => [r[bucket], ...DATE_COLUMNS.map((c) => r[c])]), [1, 2, 3, 4, 5]));
  });
  await loadAlerts();
}

/** The time zone chosen on the Leads page. */
function zone() {
  return new FormData($("leads-form")).get("tz") || "UTC";
}

function percent(rate) {
  return rate === null || rate === undefined ? "—" : (rate * 100).toFixed(1) + " %";
}

async function loadFunnel() {
  const month = new FormData($("funnel-form")).get("month");
  if (!month) return;
  await attempt("Loading the funnel of " + month, async () => {
    const report = await json("/api/v1/reports/monthly?" + new URLSearchParams({ month, tz: zone() }));
    $("funnel").replaceChildren(
      table(["step", "leads", "from the previous step", "from contact"],
        report.funnel.map((s) => [s.step, s.leads, percent(s.rate_from_previous), percent(s.rate_from_contact)]), [1, 2, 3]));
  });
}

async function loadAlerts() {
  await attempt("Loading the alerts", async () => {
    const answer = await json("/api/v1/alerts");
    $("alerts").replaceChildren(
      el("p", { class: "muted" }, answer.alerts.length + " alert(s) as of " + answer.as_of),
      table(["lead", "rule", "what is wrong"], answer.alerts.map((a) => [a.nom + " (" + a.lead_id + ")", a.rule, a.detail])));
  });
}

$("leads-form").addEventListener("submit", (event) => { event.preventDefault(); loadLeads(); });
$("funnel-form").addEventListener("submit", (event) => { event.preventDefault(); loadFunnel(); });
$("report-xlsx").addEventListener("click", () => {
  const month = new FormData($("funnel-form")).get("month");
  if (!month) return say("Choose a month first.", true);
  download("/api/v1/reports/monthly?" + new URLSearchParams({ format: "xlsx", month, tz: zone() }), "monthly-report-" + month + ".xlsx");
});
$("alerts-xlsx").addEventListener("click", () => download("/api/v1/alerts?format=xlsx", "alerts.xlsx"));

// --- customers ------------------------------------------------------------------------------

let customerId = null;

async function findCustomer(query) {
  const path = query.includes("@")
    ? "/api/v1/customers?email=" + encodeURIComponent(query)
    : "/api/v1/customers/" + encodeURIComponent(query);
  const response = await fetch(path, { headers: { authorization: "Bearer " + sessionStorage.getItem(KEY) } });
  if (response.status === 404) return null;
  if (response.status === 401) { await api(path); return null; }
  if (!response.ok) throw new Error(response.status + ": " + response.statusText);
  return response.json();
}

function describe(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

async function showCustomer(query) {
  await attempt("Searching", async () => {
    const record = await findCustomer(query);
    if (!record) {
      customerId = null;
      $("customer").replaceChildren(el("p", {}, "No customer is known by " + query + "."));
      return;
    }
    customerId = record.id;
    const groups = {};
    for (const [field, state] of Object.entries(record.fields)) {
      const schema = field.split(".")[0];
      (groups[schema] = groups[schema] || []).push([field, describe(state.value), state.event_id, state.at]);
    }
    $("customer").replaceChildren(
      el("h3", {}, "Customer ", el("code", {}, record.id), " (version " + record.version + ")"),
      el("p", {}, "Known as: " + [...record.identities].join(", ")),
      el("p", {}, el("button", { type: "button", class: "danger", id: "rebuild", onclick: rebuild }, "Rebuild this record from its events")),
      ...Object.keys(groups).sort().map((schema) => el("section", { "aria-label": schema },
        el("h4", {}, schema), el("div", { class: "scroll" }, table(["field", "value", "set by event", "at"], groups[schema])))),
      el("h4", {}, "Audit trail"),
      el("ol", { class: "timeline", id: "audit" }),
      el("p", {}, el("button", { type: "button", id: "older", hidden: true }, "Older entries")));
    await loadAudit(null);
  });
}

function auditLine(entry) {
  const what = entry.kind === "integration" && entry.integration
    ? "push to " + entry.integration.integration + ": " + entry.integration.outcome + " (" + entry.integration.attempts + " attempt(s))"
    : entry.kind + " " + entry.event_type + " from " + entry.source + (entry.changes.length ? ": " + entry.changes.map((c) => c.field).join(", ") : "") +
      (entry.requested_by ? " (asked by " + entry.requested_by + ")" : "");
  return el("li", {}, el("strong", {}, entry.processed_at), " — version " + entry.version + " — " + what, el("br"), el("span", { class: "muted" }, "event " + entry.event_id));
}

async function loadAudit(cursor) {
  const query = new URLSearchParams({ limit: "20" });
  if (cursor) query.set("cursor", cursor);
  const page = await json("/api/v1/customers/" + encodeURIComponent(customerId) + "/audit?" + query);
  $("audit").append(...page.items.map(auditLine));
  const older = $("older");
  older.hidden = !page.next_cursor;
  older.onclick = () => attempt("Loading older entries", () => loadAudit(page.next_cursor));
}

async function rebuild() {
  if (!customerId || !confirm("Rebuild customer " + customerId + " from its events with today's rules?")) return;
  await attempt("Queuing the rebuild", async () => {
    await api("/api/v1/customers/" + encodeURIComponent(customerId) + "/rebuild", { method: "POST" });
  });
  if (!$("status").classList.contains("status-bad")) {
    say("Rebuild queued: the record is rewritten if today's rules make it differ (see Runs, kind rebuild).");
  }
}

$("customer-form").addEventListener("submit", (event) => {
  event.preventDefault();
  showCustomer(new FormData(event.target).get("query").trim());
});

// --- runs -----------------------------------------------------------------------------------

function duration(run) {
  if (!run.ended_at) return "running";
  return ((Date.parse(run.ended_at) - Date.parse(run.started_at)) / 1000).toFixed(1) + " s";
}

function outcome(run) {
  const status = run.outcome.status;
  const mark = status === "failed" ? "✗ " : status === "completed" ? "✓ " : "";
  return el("span", { class: status === "failed" ? "status-bad" : status === "completed" ? "status-good" : null },
    mark + status.replaceAll("_", " ") + (run.outcome.message ? ": " + run.outcome.message : ""));
}

async function loadRuns() {
  const form = new FormData($("runs-form"));
  const query = new URLSearchParams();
  if (form.get("kind")) query.set("kind", form.get("kind"));
  if (form.get("since")) query.set("since", new Date(form.get("since")).toISOString());
  await attempt("Loading the runs", async () => {
    const history = await json("/api/v1/runs?" + query);
    $("runs-list").replaceChildren(table(["job", "scope", "started", "duration", "status", "records", "rejected", "asked by"],
      history.runs.map((r) => [r.job, r.scope, r.started_at, duration(r), outcome(r), r.records, r.rejected, r.requested_by || ""]), [3, 5, 6]));
    $("tallies").replaceChildren(
      history.truncated ? el("p", { class: "status-bad" }, "Too many to show: the oldest hour is left out; choose a later 'since'.") : "",
      table(["hour", "kind", "name", "outcome", "count", "rows"],
        history.tallies.map((t) => [t.hour, t.kind, t.name, t.outcome, t.count, t.records || ""]), [4, 5]));
  });
}

for (const kind of RUN_KINDS) $("runs-kind").append(el("option", { value: kind }, kind));
$("runs-form").addEventListener("submit", (event) => { event.preventDefault(); loadRuns(); });

// --- failures -------------------------------------------------------------------------------

async function loadFailures() {
  await attempt("Loading the failure queues", async () => {
    const listing = await json("/api/v1/failures?limit=100");
    $("failures-list").replaceChildren(...listing.queues.map(queueSection));
  });
}

function queueSection(queue) {
  const age = queue.oldest_age_seconds === undefined ? "" : ", oldest " + queue.oldest_age_seconds + " s";
  const rows = queue.messages.map((m) => [
    el("input", { type: "checkbox", value: m.id, "aria-label": "select message " + m.id }),
    m.reason, m.event_type || "", m.customer || "", m.first_failed_at || "", m.redrives]);
  const section = el("section", { class: "queue", "data-queue": queue.queue, "aria-label": queue.queue },
    el("h3", {}, queue.queue, " — ", el("span", { class: queue.depth > 0 ? "status-bad" : "status-good" },
      queue.depth > 0 ? queue.depth + " message(s) waiting" + age : "empty")));
  if (queue.messages.length) {
    section.append(
      el("div", { class: "scroll" }, table(["", "reason", "event type", "customer", "first failed", "re-drives"], rows, [5])),
      el("p", {},
        el("button", { type: "button", onclick: () => redrive(queue.queue, section, false) }, "Re-drive selected"), " ",
        el("button", { type: "button", class: "danger", onclick: () => redrive(queue.queue, section, true) }, "Re-drive all")),
      el("p", { class: "outcome", role: "status" }));
  }
  return section;
}

async function redrive(queue, section, all) {
  const ids = [...section.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value);
  if (!all && !ids.length) return say("Select messages first.", true);
  const what = all ? "every message of " + queue : ids.length + " message(s) of " + queue;
  if (!confirm("Re-drive " + what + " back to where it failed?")) return;
  await attempt("Re-driving", async () => {
    const result = await json("/api/v1/failures/" + encodeURIComponent(queue) + "/redrive", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(all ? { all: true } : { ids }),
    });
    const text = "Re-drive done: " + result.redriven + " re-driven, " + result.failed.length + " failed, " +
      result.not_found.length + " not found, " + result.not_reached.length + " not reached, " +
      result.left.length + " left with nothing to send" + (result.more ? "; more left: run it again" : "") + ".";
    await loadFailures();
    const outcome = document.querySelector(`section[data-queue="${CSS.escape(queue)}"] .outcome`);
    if (outcome) outcome.textContent = text;
    else $("failures-list").prepend(el("p", { class: "outcome", role: "status", "data-queue": queue }, queue + ": " + text));
  });
}

$("failures-refresh").addEventListener("click", loadFailures);

const LOADERS = { leads: loadLeads, customers: () => {}, runs: loadRuns, failures: loadFailures };
route();
