// The fleet overview: every service and its instances, up or down, last scrape, a goroutine sparkline per
// instance and scrape errors in words. Scrape targets come with health; services that only push profiles
// are found through their stored series.

import { api, fleet, isAbort } from "./api.js";
import { formatDateTime } from "./format.js";
import { renderHeader } from "./header.js";
import { ago, selectorOf } from "./labels.js";
import { sparkline } from "./sparkline.js";
import { UrlState } from "./state.js";
import { parseTimeMs } from "./time.js";

const REFRESH_MS = 15_000;
const state = new UrlState({ range: "now-1h" });
const $ = (id) => document.getElementById(id);
const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

renderHeader();

const STATUS_TEXT = { up: "up", down: "down", paused: "paused", waiting: "not scraped yet", push: "pushes" };

/** One instance's state from its scrape targets (if any). */
function instanceStatus(targets) {
  if (!targets.length) return "push";
  if (targets.every((t) => t.paused)) return "paused";
  const active = targets.filter((t) => !t.paused);
  if (active.some((t) => t.up === false)) return "down";
  if (active.every((t) => t.up === true)) return "up";
  return "waiting";
}

/** Scrape errors as sentences: "cpu: connection refused (3 failures in a row)". */
function scrapeErrors(targets) {
  const out = [];
  for (const t of targets) {
    for (const [kind, h] of Object.entries(t.health || {})) {
      if (!h.last_error || h.up !== false) continue;
      const times = h.consecutive_failures > 1 ? ` (${h.consecutive_failures} failures in a row)` : "";
      out.push(`${kind}: ${h.last_error}${times}`);
    }
  }
  return out;
}

function lastScrapeMs(targets) {
  let last = NaN;
  for (const t of targets) {
    for (const h of Object.values(t.health || {})) {
      const ms = h.last_scrape ? Date.parse(h.last_scrape) : NaN;
      if (!Number.isNaN(ms) && (Number.isNaN(last) || ms > last)) last = ms;
    }
  }
  return last;
}

/** service → instance → {targets, types, points}: targets, stored series and goroutine counts joined. */
function buildFleet(targets, series, goroutines) {
  const services = new Map();
  const instanceOf = (service, instance) => {
    if (!services.has(service)) services.set(service, new Map());
    const instances = services.get(service);
    if (!instances.has(instance)) instances.set(instance, { instance, targets: [], types: new Set(), points: null });
    return instances.get(instance);
  };
  for (const t of targets) instanceOf(t.service, t.labels.instance ?? t.instance).targets.push(t);
  for (const s of series) instanceOf(s.labels.service ?? "", s.labels.instance ?? "").types.add(s.type);
  for (const g of goroutines) {
    const entry = instanceOf(g.labels.service ?? "", g.labels.instance ?? "");
    entry.points = (entry.points || []).concat(g.points).sort((a, b) => a[0] - b[0]);
  }
  return services;
}

function link(href, text, title) {
  const a = el("a", "chip-link", text);
  a.href = href;
  if (title) a.title = title;
  return a;
}

function viewLinks(labels, service) {
  const q = encodeURIComponent(selectorOf(labels));
  const nav = el("nav", "view-links");
  nav.setAttribute("aria-label", `Views of ${Object.values(labels).join(" ")}`);
  nav.append(
    link(`/explore?query=${q}`, "Explore", "CPU flame graph and top functions"),
    link(`/goroutines?query=${q}`, "Goroutines", "Goroutine counts over time"),
    link(`/diff?query=${q}`, "Diff", "Compare two time ranges"),
    link(`/targets?service=${encodeURIComponent(service)}`, "Targets", "Scrape targets and their health"),
  );
  return nav;
}

function renderInstance(service, entry, fromMs, toMs) {
  const row = el("tr", "instance");
  const status = instanceStatus(entry.targets);
  row.dataset.instance = entry.instance;
  row.dataset.status = status;
  const statusCell = el("td", "status");
  statusCell.append(el("span", `dot ${status}`), el("span", "status-text", STATUS_TEXT[status]));
  const name = el("td", "instance-name");
  const labels = { service };
  if (entry.instance) labels.instance = entry.instance;
  const a = el("a", "mono", entry.instance || "(no instance label)");
  a.href = `/explore?query=${encodeURIComponent(selectorOf(labels))}`;
  name.append(a);
  const types = [...new Set([...entry.types, ...entry.targets.flatMap((t) => t.profiles.filter((p) => p.enabled).map((p) => p.type))])];
  if (types.length) name.append(el("div", "types", types.sort().join(" · ")));
  const last = el("td", "last-scrape");
  const lastMs = lastScrapeMs(entry.targets);
  if (!Number.isNaN(lastMs)) {
    last.textContent = ago(lastMs);
    last.title = formatDateTime(lastMs);
  } else if (!entry.targets.length && entry.points && entry.points.length) {
    const pushedMs = entry.points[entry.points.length - 1][0] * 1000; // the step of its last goroutine profile
    last.textContent = `pushed, ${ago(pushedMs)}`;
    last.title = `goroutine profiles pushed; the last one in the step from ${formatDateTime(pushedMs)}`;
  } else {
    last.textContent = entry.targets.length ? "never" : "pushed";
    last.classList.add("muted");
  }
  const spark = el("td", "spark");
  const points = entry.points || [];
  spark.append(sparkline(points, fromMs, toMs, { label: `goroutines of ${entry.instance || service}` }));
  spark.append(el("span", "spark-value", points.length ? Math.round(points[points.length - 1][1]).toLocaleString("en-US") : "–"));
  const errors = el("td", "errors");
  const messages = scrapeErrors(entry.targets);
  for (const m of messages) errors.append(el("div", "scrape-error", m));
  if (!messages.length) errors.append(el("span", "muted", entry.targets.length ? "no errors" : ""));
  row.append(statusCell, name, last, spark, errors);
  return row;
}

function renderService(service, instances, fromMs, toMs) {
  const card = el("section", "panel service");
  card.dataset.service = service;
  const head = el("div", "panel-head");
  const title = el("h2", "", service || "(no service label)");
  const entries = [...instances.values()].sort((a, b) => a.instance.localeCompare(b.instance));
  const down = entries.filter((e) => instanceStatus(e.targets) === "down").length;
  const meta = el(
    "span",
    `panel-meta service-health ${down ? "bad" : "ok"}`,
    `${entries.length} instance${entries.length === 1 ? "" : "s"}${down ? ` · ${down} down` : ""}`,
  );
  head.append(title, meta, el("span", "spacer"), viewLinks({ service }, service));
  const table = el("table", "instances");
  const thead = table.createTHead().insertRow();
  for (const h of ["Status", "Instance", "Last scrape", "Goroutines", "Scrape errors"]) thead.append(el("th", "", h));
  const body = table.createTBody();
  for (const e of entries) body.append(renderInstance(service, e, fromMs, toMs));
  const wrap = el("div", "panel-body");
  wrap.append(table);
  card.append(head, wrap);
  return card;
}

function verdict(services) {
  const all = [...services.values()].flatMap((m) => [...m.values()]);
  const down = [];
  for (const [service, m] of services) for (const e of m.values()) if (instanceStatus(e.targets) === "down") down.push(`${service} ${e.instance}`);
  const box = $("verdict");
  box.className = `verdict ${down.length ? "bad" : "ok"}`;
  if (!all.length) {
    box.textContent = "No services yet: add a scrape target on the Targets page, or push profiles to POST /api/v1/ingest.";
    box.className = "verdict";
  } else if (down.length) {
    box.textContent = `${down.length} of ${all.length} instances down: ${down.join(", ")}.`;
  } else {
    box.textContent = `${services.size} service${services.size === 1 ? "" : "s"}, ${all.length} instance${all.length === 1 ? "" : "s"}: nothing is down.`;
  }
}

let controller = null;

async function load() {
  const s = state.get();
  $("range").value = s.range;
  if (controller) controller.abort();
  controller = new AbortController();
  const { signal } = controller;
  document.body.classList.add("is-loading");
  const now = Date.now();
  const fromMs = parseTimeMs(s.range, now);
  const results = await Promise.allSettled([
    fleet.targets({ signal }),
    fleet.series({}, { signal }),
    api.timeseries({ type: "goroutine", from: s.range, to: "now", group_by: "service,instance" }, { signal }),
  ]);
  if (signal.aborted) return;
  const failures = results.filter((r) => r.status === "rejected" && !isAbort(r.reason));
  const what = ["targets", "series", "goroutine counts"];
  const messages = results.map((r, k) => (r.status === "rejected" ? `${what[k]}: ${r.reason.message}` : "")).filter(Boolean);
  $("error").hidden = !failures.length;
  $("error-message").textContent = messages.join("\n");
  const value = (k, key) => (results[k].status === "fulfilled" ? results[k].value[key] : []);
  const services = buildFleet(value(0, "targets"), value(1, "series"), value(2, "series"));
  const container = $("services");
  const names = [...services.keys()].sort();
  container.replaceChildren(...names.map((n) => renderService(n, services.get(n), fromMs, now)));
  if (failures.length === results.length) {
    container.replaceChildren(el("p", "empty-note", "Nothing to show: the server did not answer (see the message above)."));
    $("verdict").textContent = "The fleet's state is unknown.";
    $("verdict").className = "verdict bad";
  } else {
    verdict(services);
  }
  document.body.classList.remove("is-loading");
}

$("range").addEventListener("change", () => state.set({ range: $("range").value }, { push: true }));
$("refresh").addEventListener("click", () => load());
state.subscribe(() => load());
setInterval(() => {
  if (document.visibilityState === "visible") load();
}, REFRESH_MS);
load();
