// The fleet overview: every instance in one table, down ones first, sortable by any column (and by any label,
// as an extra column), filterable by words and name=value, a page at a time. One request feeds it,
// GET /api/v1/fleet (status, labels, errors and newest goroutine count per instance), so a thousand instances
// paint at once; the goroutine sparklines are asked for the shown page only, in one timeseries request.

import { api, fleet, isAbort, readJSON } from "./api.js";
import { $, el, latestLoad, showBanner } from "./dom.js";
import { renderHeader } from "./header.js";
import { quote, selectorOf } from "./labels.js";
import { sparkline } from "./sparkline.js";
import { UrlState } from "./state.js";
import { ago, apiTime, formatDateTime, formatUtc, parseTimeMs, PRESETS } from "./time.js";

const REFRESH_MS = 15_000;
const STATUS_ORDER = ["down", "waiting", "up", "paused", "push"];
const STATUS_TEXT = { up: "up", down: "down", paused: "paused", waiting: "not scraped yet", push: "pushes" };
const state = new UrlState({ range: "now-1h", q: "", status: "", sort: "status", order: "asc", page: "1", size: "50", label: "" });
const integer = new Intl.NumberFormat("en-US");

renderHeader();
for (const p of PRESETS.filter((p) => !p.from.endsWith("30d"))) $("range").append(new Option(p.label.replace("Last ", ""), p.from));

/** When the instance was last heard of: its newest scrape, or for one that only pushes its newest profile. */
const lastMs = (r) => Date.parse(r.last_scrape || r.last_profile || "") || 0;

/** A label of a row by name: service, instance and status are labels here too. */
function labelOf(r, name) {
  if (name === "status") return r.status;
  if (name === "service") return r.service;
  if (name === "instance") return r.instance;
  return r.labels[name] ?? "";
}

const COLUMNS = {
  status: { label: "Status", value: (r) => STATUS_ORDER.indexOf(r.status), first: "asc" },
  service: { label: "Service", value: (r) => r.service, first: "asc" },
  instance: { label: "Instance", value: (r) => r.instance, first: "asc" },
  last: { label: "Last scrape", value: lastMs, first: "desc" },
  goroutines: { label: "Goroutines", value: (r) => r.goroutines ?? -1, first: "desc" },
  errors: { label: "Scrape errors", value: (r) => r.errors.length, first: "desc" },
};

// ------------------------------------------------------------------ filter and sort

/**
 * `checkout env=prod version!=1.4 timeout`: name=value and name!=value match a label exactly, other words
 * match any service, instance, status, label value or error, ignoring case. Every term must match.
 */
export function parseFilter(text) {
  return (text || "")
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((term) => {
      const m = /^([a-zA-Z_][a-zA-Z0-9_]*)(!=|=)(.*)$/.exec(term);
      if (m) return { name: m[1], negate: m[2] === "!=", value: m[3].replace(/^"(.*)"$/, "$1") };
      return { word: term.toLowerCase() };
    });
}

function matches(r, terms) {
  return terms.every((t) => {
    if (t.word !== undefined) return r.haystack.includes(t.word);
    return (labelOf(r, t.name) === t.value) !== t.negate;
  });
}

function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortRows(rows, s) {
  const column = s.sort.startsWith("label:") ? { value: (r) => labelOf(r, s.sort.slice(6)) } : COLUMNS[s.sort] || COLUMNS.status;
  const sign = s.order === "desc" ? -1 : 1;
  const status = COLUMNS.status.value;
  return [...rows].sort(
    (a, b) =>
      sign * compare(column.value(a), column.value(b)) ||
      compare(status(a), status(b)) ||
      compare(a.service, b.service) ||
      compare(a.instance, b.instance),
  );
}

// ------------------------------------------------------------------ rendering

let rows = []; // every instance, as the API answered, each with its haystack
let labelNames = [];

function renderHead(s) {
  const cells = [];
  const sortable = (key, label) => {
    const th = el("th", `col-${key.replace(":", "-")}`);
    const button = el("button", "sort", label);
    button.type = "button";
    button.dataset.sort = key;
    const on = s.sort === key;
    th.setAttribute("aria-sort", on ? (s.order === "desc" ? "descending" : "ascending") : "none");
    button.title = `Sort by ${label.toLowerCase()}; click again to reverse`;
    button.addEventListener("click", () => {
      const first = (COLUMNS[key] || { first: "asc" }).first;
      const order = on ? (s.order === "asc" ? "desc" : "asc") : first;
      state.set({ sort: key, order, page: "1" }, { push: true });
    });
    th.append(button);
    cells.push(th);
  };
  sortable("status", "Status");
  sortable("service", "Service");
  sortable("instance", "Instance");
  if (s.label) sortable(`label:${s.label}`, s.label);
  cells.push(el("th", "col-labels", "Labels"));
  sortable("last", "Last scrape");
  sortable("goroutines", "Goroutines");
  sortable("errors", "Scrape errors");
  cells.push(el("th", "col-views", "Views"));
  $("fleet-head").replaceChildren(...cells);
}

function link(href, text, title) {
  const a = el("a", "chip-link", text);
  a.href = href;
  if (title) a.title = title;
  return a;
}

function viewLinks(r) {
  const labels = { service: r.service };
  if (r.instance) labels.instance = r.instance;
  const q = encodeURIComponent(selectorOf(labels));
  const nav = el("nav", "view-links");
  nav.setAttribute("aria-label", `Views of ${r.service} ${r.instance}`);
  nav.append(
    link(`/explore?query=${q}`, "Explore", "CPU flame graph and top functions of this instance"),
    link(`/goroutines?query=${q}`, "Goroutines", "Goroutine counts over time"),
    link(`/diff?query=${q}`, "Diff", "Compare two time ranges"),
    link(`/targets?service=${encodeURIComponent(r.service)}`, "Targets", "Scrape targets of the service and their health"),
  );
  return nav;
}

function renderRow(r, s) {
  const tr = el("tr", "instance");
  tr.dataset.service = r.service;
  tr.dataset.instance = r.instance;
  tr.dataset.status = r.status;
  const status = el("td", "status");
  status.append(el("span", `dot ${r.status}`), el("span", "status-text", STATUS_TEXT[r.status]));
  const service = el("td", "service-name");
  const filterLink = el("a", "mono", r.service || "(no service label)");
  filterLink.href = `?${new URLSearchParams({ q: `service=${r.service}` })}`;
  filterLink.title = `Show only ${r.service}`;
  filterLink.addEventListener("click", (e) => {
    e.preventDefault();
    state.set({ q: `service=${r.service}`, page: "1" }, { push: true });
  });
  service.append(filterLink);
  const name = el("td", "instance-name");
  const a = el("a", "mono", r.instance || "(no instance label)");
  a.href = `/explore?query=${encodeURIComponent(selectorOf(r.instance ? { service: r.service, instance: r.instance } : { service: r.service }))}`;
  name.append(a);
  if (r.kinds.length) name.append(el("div", "types", r.kinds.join(" · ")));
  const cells = [status, service, name];
  if (s.label) cells.push(el("td", "label-value mono", labelOf(r, s.label)));
  const labels = el("td", "labels");
  for (const [k, v] of Object.entries(r.labels)) if (k !== "service" && k !== "instance") labels.append(el("span", "chip mono", `${k}=${v}`));
  const last = el("td", "last-scrape");
  if (r.last_scrape) last.append(apiTime(r.last_scrape, ago(Date.parse(r.last_scrape))));
  else if (r.last_profile) last.append(apiTime(r.last_profile, `pushed, ${ago(Date.parse(r.last_profile))}`));
  else {
    last.textContent = r.targets.length ? "never" : "pushed";
    last.classList.add("muted");
  }
  const spark = el("td", "spark");
  spark.append(el("span", "spark-slot"));
  const count = el("span", "spark-value", r.goroutines === null ? "–" : integer.format(r.goroutines));
  if (r.goroutines_at) {
    const at = Date.parse(r.goroutines_at);
    count.title = `goroutines in the newest goroutine profile, ${formatDateTime(at)} (${formatUtc(at)})`;
  }
  spark.append(count);
  const errors = el("td", "errors");
  for (const m of r.errors) errors.append(el("div", "scrape-error", m));
  if (!r.errors.length) errors.append(el("span", "muted", r.targets.length ? "no errors" : ""));
  const views = el("td", "views");
  views.append(viewLinks(r));
  tr.append(...cells, labels, last, spark, errors, views);
  return tr;
}

function verdict(statuses, all, services) {
  const box = $("verdict");
  const down = rows.filter((r) => r.status === "down");
  if (!all) {
    box.textContent = "No services yet: add a scrape target on the Targets page, or push profiles to POST /api/v1/ingest.";
    box.className = "verdict";
    return;
  }
  box.className = `verdict ${down.length ? "bad" : "ok"}`;
  if (down.length) {
    const named = down.slice(0, 5).map((r) => `${r.service} ${r.instance}`);
    const more = down.length > named.length ? ` and ${integer.format(down.length - named.length)} more` : "";
    box.textContent = `${integer.format(down.length)} of ${integer.format(all)} instances down: ${named.join(", ")}${more}.`;
  } else {
    box.textContent = `${integer.format(services)} service${services === 1 ? "" : "s"}, ${integer.format(all)} instance${all === 1 ? "" : "s"}: nothing is down.`;
  }
  box.title = Object.entries(statuses)
    .map(([k, n]) => `${STATUS_TEXT[k]}: ${n}`)
    .join(" · ");
}

let painted = false;

/** Filter, sort and draw the current page of the table; then ask for its sparklines. */
function render() {
  const s = state.get();
  syncControls(s);
  renderHead(s);
  const shown = sortRows(rows.filter((r) => (!s.status || r.status === s.status) && matches(r, parseFilter(s.q))), s);
  const size = Math.max(1, Number(s.size) || 50);
  const pages = Math.max(1, Math.ceil(shown.length / size));
  const page = Math.min(Math.max(1, Number(s.page) || 1), pages);
  const slice = shown.slice((page - 1) * size, page * size);
  $("fleet-rows").replaceChildren(...slice.map((r) => renderRow(r, s)));
  const empty = $("fleet-empty");
  empty.hidden = slice.length > 0;
  empty.textContent = rows.length ? "No instance matches the filter." : "No instances yet.";
  $("page-info").textContent = shown.length
    ? `${integer.format((page - 1) * size + 1)}–${integer.format((page - 1) * size + slice.length)} of ${integer.format(shown.length)}`
    : "0 of 0";
  $("prev").disabled = page <= 1;
  $("next").disabled = page >= pages;
  $("prev").dataset.page = String(page - 1);
  $("next").dataset.page = String(page + 1);
  const filtered = shown.length !== rows.length ? ` · ${integer.format(shown.length)} match` : "";
  $("fleet-meta").textContent = `${integer.format(rows.length)} instances${filtered}`;
  if (!painted) {
    painted = true;
    requestAnimationFrame(() => {
      window.__stackyard = { ...(window.__stackyard || {}), overview: { firstPaintMs: performance.now(), rows: rows.length } };
    });
  }
  loadSparklines(slice, s);
}

function syncControls(s) {
  if (document.activeElement !== $("filter")) $("filter").value = s.q;
  $("status").value = s.status;
  $("page-size").value = s.size;
  $("range").value = s.range;
  const select = $("label-column");
  const names = [...new Set([...labelNames, ...(s.label ? [s.label] : [])])];
  if (select.options.length !== names.length + 1) {
    select.replaceChildren(new Option("none", ""), ...names.map((n) => new Option(n, n)));
  }
  select.value = s.label;
}

// ------------------------------------------------------------------ data

const escapeRegex = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
let sparkController = null;

/** The goroutine line of every shown instance: one timeseries request for the page. */
async function loadSparklines(slice, s) {
  if (sparkController) sparkController.abort();
  sparkController = new AbortController();
  const { signal } = sparkController;
  const wanted = slice.filter((r) => r.instance && r.kinds.includes("goroutine"));
  const slots = new Map([...$("fleet-rows").querySelectorAll("tr.instance")].map((tr) => [`${tr.dataset.service}\n${tr.dataset.instance}`, tr]));
  const now = Date.now();
  const fromMs = parseTimeMs(s.range, now);
  const draw = (tr, points) => {
    const slot = tr.querySelector(".spark-slot");
    if (slot) slot.replaceChildren(sparkline(points, fromMs, now, { label: `goroutines of ${tr.dataset.instance}` }));
  };
  if (!wanted.length) {
    for (const tr of slots.values()) draw(tr, []);
    return;
  }
  const services = [...new Set(wanted.map((r) => r.service))];
  const query = `{service=~${quote(services.map(escapeRegex).join("|"))}, instance=~${quote(wanted.map((r) => escapeRegex(r.instance)).join("|"))}}`;
  let lines = [];
  try {
    const ts = await api.timeseries({ type: "goroutine", query, from: s.range, to: "now", group_by: "service,instance" }, { signal });
    lines = ts.series;
  } catch (err) {
    if (isAbort(err)) return;
    for (const tr of slots.values()) tr.querySelector(".spark-slot")?.replaceChildren(el("span", "muted", "no trend"));
    return;
  }
  const byKey = new Map(lines.map((l) => [`${l.labels.service ?? ""}\n${l.labels.instance ?? ""}`, l.points]));
  for (const [key, tr] of slots) draw(tr, byKey.get(key) || []);
}

/** The fleet's answer, drawn; asked again on refresh and every few seconds (a newer ask drops an older one). */
const load = latestLoad(async (signal) => {
  try {
    // the first answer comes from the request index.html started before this module loaded
    const early = window.__fleetRequest;
    window.__fleetRequest = null;
    const answer = early ? await readJSON(early, "/api/v1/fleet") : await fleet.instances({ signal });
    rows = answer.instances.map((r) => ({
      ...r,
      haystack: [r.service, r.instance, r.status, STATUS_TEXT[r.status], ...Object.values(r.labels), ...r.errors].join("\n").toLowerCase(),
    }));
    const names = new Set();
    for (const r of rows) for (const k of Object.keys(r.labels)) if (k !== "service" && k !== "instance") names.add(k);
    labelNames = [...names].sort();
    showBanner(null);
    verdict(answer.statuses, rows.length, answer.services);
    render();
  } catch (err) {
    if (isAbort(err)) return;
    showBanner(err);
    $("verdict").textContent = "The fleet's state is unknown.";
    $("verdict").className = "verdict bad";
    if (!rows.length) {
      $("fleet-rows").replaceChildren();
      $("fleet-empty").hidden = false;
      $("fleet-empty").textContent = "Nothing to show: the server did not answer (see the message above).";
    }
  }
});

let filterTimer = 0;
$("filter").addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => state.set({ q: $("filter").value.trim(), page: "1" }), 200);
});
$("filter").addEventListener("keydown", (e) => {
  if (e.key === "Enter") {
    clearTimeout(filterTimer);
    state.set({ q: $("filter").value.trim(), page: "1" }, { push: true });
  }
});
$("status").addEventListener("change", () => state.set({ status: $("status").value, page: "1" }, { push: true }));
$("label-column").addEventListener("change", () => {
  const label = $("label-column").value;
  const s = state.get();
  // the label's column sorts at once; leaving it returns to the default order
  const sort = label ? { sort: `label:${label}`, order: "asc" } : s.sort.startsWith("label:") ? { sort: "status", order: "asc" } : {};
  state.set({ label, ...sort, page: "1" }, { push: true });
});
$("page-size").addEventListener("change", () => state.set({ size: $("page-size").value, page: "1" }, { push: true }));
$("prev").addEventListener("click", () => state.set({ page: $("prev").dataset.page }, { push: true }));
$("next").addEventListener("click", () => state.set({ page: $("next").dataset.page }, { push: true }));
$("range").addEventListener("change", () => state.set({ range: $("range").value }, { push: true }));
$("refresh").addEventListener("click", () => load());
state.subscribe(() => render());
setInterval(() => {
  if (document.visibilityState === "visible" && document.activeElement !== $("filter")) load();
}, REFRESH_MS);
load();
