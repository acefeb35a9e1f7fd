// The diff page: a base and a comparison (two time ranges, two selectors, or both), as a diff flame graph
// (red for more, green for less) and a table of the largest changes. Dragging on the timeline sets the
// base's or the comparison's range, as the toggle says. Everything that defines the view is in the URL.

import { ANALYSIS_DEFAULTS, addFilter, FILTERS, FilterChips, filterParams, FrameMenu, SandwichView, sandwichLoader } from "./analysis.js";
import { api, isAbort } from "./api.js";
import { $, latestLoad, showBanner } from "./dom.js";
import { FlameGraph } from "./flamegraph.js";
import { formatChange, formatValue, formatRelative } from "./format.js";
import { renderHeader } from "./header.js";
import { quote } from "./labels.js";
import { learnSampleTypes, showSample } from "./samples.js";
import { SelectorInput } from "./selector.js";
import { UrlState } from "./state.js";
import { isoSeconds, parseTimeMs, PRESETS } from "./time.js";
import { Timeline } from "./timeline.js";

const DATA_KEYS = ["type", "sample", "query", "base_query", "from", "to", "base_from", "base_to", "normalize", ...FILTERS.map((f) => f.key)];
const state = new UrlState({
  type: "cpu",
  sample: "",
  query: null, // absent: the type's first service
  base_query: "",
  from: "now-30m",
  to: "now",
  base_from: "now-1h",
  base_to: "now-30m",
  normalize: "",
  window: "now-1h",
  brush: "comparison",
  search: "",
  zoom: "",
  fn: "",
  sort: "", // the changes table's order: "cum_change:desc", ...; "" is the API's
  ...ANALYSIS_DEFAULTS, // frame filters (both sides), and the function whose sandwich (comparison side) is open
});
const MAX_ROWS = 60;
const form = {
  bar: $("diffbar"),
  type: $("type"),
  sample: $("sample"),
  normalize: $("normalize"),
  query: $("query"),
  baseQuery: $("base-query"),
  from: $("from"),
  to: $("to"),
  baseFrom: $("base-from"),
  baseTo: $("base-to"),
  window: $("window"),
};

renderHeader();

for (const p of PRESETS) form.window.append(new Option(p.label, p.from));

const flame = new FlameGraph($("flamegraph"), {
  onViewChange({ zoom, search }) {
    state.set({ zoom, search, fn: flame.highlighted || "" }, { silent: true });
  },
});
new FrameMenu(flame, {
  onPick(action, name) {
    if (action === "sandwich") state.set({ sandwich: name }, { push: true });
    else state.set({ ...addFilter(state.get(), action, name), zoom: "" }, { push: true });
  },
});
const chips = new FilterChips($("filter-chips"), {
  onRemove(key) {
    state.set({ [key]: "", zoom: "" }, { push: true });
  },
});
const sandwichPanel = $("sandwich-panel");
let sandwich = null; // made when first opened: the page has one flame graph until then
const sandwichOptions = {
  suffix: " (comparison)",
  onCentre(name) {
    state.set({ sandwich: name }, { push: true });
  },
  onClose() {
    state.set({ sandwich: "" }, { push: true });
  },
};
/** The sandwich view, made on first use. */
const sandwichView = () => (sandwich ??= new SandwichView(sandwichPanel, sandwichOptions));

const timeline = new Timeline($("timeline"), {
  onSelect(fromMs, toMs) {
    const range = { from: isoSeconds(fromMs), to: isoSeconds(toMs) };
    if (state.get().brush === "base") state.set({ base_from: range.from, base_to: range.to, zoom: "" }, { push: true });
    else state.set({ ...range, zoom: "" }, { push: true });
  },
});

new SelectorInput(form.query, $("query-suggestions"), { getType: () => form.type.value, onSubmit: () => submit() });
new SelectorInput(form.baseQuery, $("base-query-suggestions"), { getType: () => form.type.value, onSubmit: () => submit() });

function submit(patch = {}) {
  state.set(
    {
      type: form.type.value,
      sample: form.sample.value,
      query: form.query.value.trim(),
      base_query: form.baseQuery.value.trim(),
      from: form.from.value.trim() || "now-30m",
      to: form.to.value.trim() || "now",
      base_from: form.baseFrom.value.trim() || "now-1h",
      base_to: form.baseTo.value.trim() || "now-30m",
      normalize: form.normalize.checked ? "true" : "",
      ...patch,
    },
    { push: true },
  );
}
form.bar.addEventListener("submit", (e) => {
  e.preventDefault();
  submit();
});
form.type.addEventListener("change", () => submit({ sample: "", zoom: "" }));
form.sample.addEventListener("change", () => submit({ zoom: "" }));
form.normalize.addEventListener("change", () => submit());
form.window.addEventListener("change", () => state.set({ window: form.window.value }, { push: true }));
for (const radio of document.querySelectorAll("input[name=brush]")) {
  radio.addEventListener("change", () => state.set({ brush: radio.value }, { silent: true }));
}

function syncForm(s) {
  form.type.value = s.type;
  const set = (input, value) => {
    if (document.activeElement !== input) input.value = value ?? "";
  };
  showSample(form.sample, s.sample);
  set(form.query, s.query);
  set(form.baseQuery, s.base_query);
  set(form.from, s.from);
  set(form.to, s.to);
  set(form.baseFrom, s.base_from);
  set(form.baseTo, s.base_to);
  form.normalize.checked = s.normalize === "true";
  if (![...form.window.options].some((o) => o.value === s.window)) form.window.append(new Option(s.window, s.window));
  form.window.value = s.window;
  $(s.brush === "base" ? "brush-base" : "brush-comparison").checked = true;
  chips.render(s);
  document.title = `Diff · ${s.type}${s.query ? ` · ${s.query}` : ""} · Stackyard`;
}

/** The banner, and the selector the server named as the problem marked invalid. */
function showError(err) {
  showBanner(err);
  const msg = err ? err.message : "";
  for (const [input, re] of [
    [form.baseQuery, /^base_query:/],
    [form.query, /^query:/],
  ]) {
    if (re.test(msg)) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

// ------------------------------------------------------------------------------------------ changes table

/** A relative change for sorting: a function new in the comparison grows without bound, one gone by −100%. */
function relative(base, value) {
  if (base === 0) return value === 0 ? 0 : value > 0 ? Infinity : -Infinity;
  return (value - base) / Math.abs(base);
}

/** The sortable change columns: flat and cum, each absolute and relative. */
const CHANGE_COLUMNS = [
  { key: "flat_change", label: "Flat change", title: "change of self (flat): this function's own samples", value: (r) => r.flat_change, text: (r, unit) => formatChange(r.flat_change, unit) },
  { key: "flat_relative", label: "Flat %", title: "relative change of self (flat)", value: (r) => relative(r.base_flat, r.flat), text: (r) => formatRelative(r.base_flat, r.flat) },
  { key: "cum_change", label: "Cum change", title: "change of the total (cum): this function and everything it calls", value: (r) => r.cum_change, text: (r, unit) => formatChange(r.cum_change, unit) },
  { key: "cum_relative", label: "Cum %", title: "relative change of the total (cum)", value: (r) => relative(r.base_cum, r.cum), text: (r) => formatRelative(r.base_cum, r.cum) },
];

/** `"cum_change:asc"` → {column, ascending}; "" is the API's order (the size of the flat change). */
function parseSort(text) {
  const [key, order] = (text || "").split(":");
  const column = CHANGE_COLUMNS.find((c) => c.key === key) || null;
  return { column, ascending: order === "asc" };
}

function sortedRows(rows, sort) {
  const { column, ascending } = parseSort(sort);
  if (!column) return rows;
  const sign = ascending ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = column.value(a);
    const y = column.value(b);
    return (x < y ? -sign : x > y ? sign : 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  });
}

let lastChanges = null;

function renderChanges(data) {
  lastChanges = data;
  const host = $("changes");
  const sort = state.get().sort;
  const { column: sorted, ascending } = parseSort(sort);
  const table = document.createElement("table");
  table.className = "top-table changes-table";
  const head = table.createTHead().insertRow();
  const th = (className, text, title) => {
    const cell = document.createElement("th");
    cell.className = className;
    cell.textContent = text;
    if (title) cell.title = title;
    head.append(cell);
    return cell;
  };
  th("name", "Function");
  th("num", "Base", "self (flat) in the base");
  th("num", "Comparison", "self (flat) in the comparison");
  for (const col of CHANGE_COLUMNS) {
    const cell = th("num sortable");
    cell.dataset.sort = col.key;
    cell.setAttribute("aria-sort", sorted === col ? (ascending ? "ascending" : "descending") : "none");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    button.textContent = col.label;
    button.title = `${col.title}. Click to sort, biggest increase first; again for biggest decrease first.`;
    // first click: largest increase first; on the sorted column the order flips
    button.addEventListener("click", () => {
      const next = sorted === col && !ascending ? `${col.key}:asc` : `${col.key}:desc`;
      state.set({ sort: next }, { silent: true });
      if (lastChanges) renderChanges(lastChanges);
    });
    cell.append(button);
  }
  const body = table.createTBody();
  const changed = data.rows.filter((r) => r.flat_change !== 0 || r.cum_change !== 0);
  const rows = sortedRows(changed, sort).slice(0, MAX_ROWS);
  for (const r of rows) {
    const tr = body.insertRow();
    tr.dataset.name = r.name;
    tr.tabIndex = 0;
    const change = r.flat_change || r.cum_change;
    tr.className = change > 0 ? "more" : change < 0 ? "less" : "";
    if (r.name === state.get().fn) tr.classList.add("selected");
    const cells = [
      ["name", r.name],
      ["num value", formatValue(r.base_flat, data.unit)],
      ["num value", formatValue(r.flat, data.unit)],
      // each change coloured by its own sign: red for more, green for less
      ...CHANGE_COLUMNS.map((col) => {
        const v = col.value(r);
        return [`num ${col.key.endsWith("relative") ? "pct" : "change"} ${v > 0 ? "up" : v < 0 ? "down" : "zero"}`, col.text(r, data.unit)];
      }),
    ];
    for (const [cls, text] of cells) {
      const td = tr.insertCell();
      td.className = cls;
      td.textContent = text;
    }
    tr.cells[0].title =
      `${r.name}\nself: ${formatValue(r.base_flat, data.unit)} → ${formatValue(r.flat, data.unit)}` +
      `\ntotal (cum): ${formatValue(r.base_cum, data.unit)} → ${formatValue(r.cum, data.unit)} (${formatRelative(r.base_cum, r.cum)})`;
    tr.dataset.flatChange = String(r.flat_change);
    tr.dataset.cumChange = String(r.cum_change);
  }
  if (!rows.length) {
    const td = body.insertRow().insertCell();
    td.colSpan = 3 + CHANGE_COLUMNS.length;
    td.className = "top-message muted";
    td.textContent = data.profiles || data.base_profiles ? "No function changed." : "No profiles on either side.";
  }
  const more = changed.length > rows.length ? ` · the first ${rows.length} of ${changed.length.toLocaleString("en-US")}` : "";
  $("changes-meta").textContent = `${sorted ? `sorted by ${sorted.label.toLowerCase()}, ${ascending ? "biggest decrease" : "biggest increase"} first` : "biggest change of self (flat) first"}${more} · click a row to highlight it above`;
  host.replaceChildren(table);
}

$("changes").addEventListener("click", (e) => {
  const tr = e.target.closest("tr[data-name]");
  if (!tr) return;
  const name = tr.dataset.name === state.get().fn ? "" : tr.dataset.name;
  for (const row of $("changes").querySelectorAll("tr[data-name]")) row.classList.toggle("selected", row.dataset.name === name);
  flame.highlight(name || null);
  state.set({ fn: name, search: "" }, { silent: true });
});

function tableMessage(text) {
  const p = document.createElement("p");
  p.className = "top-message error";
  p.textContent = text;
  $("changes").replaceChildren(p);
}

// ------------------------------------------------------------------------------------------ data

const FAILED = "No data: the comparison failed (see the message above).";

function params(s) {
  const q = { type: s.type, sample: s.sample, query: s.query, from: s.from, to: s.to, base_from: s.base_from, base_to: s.base_to };
  if (s.base_query) q.base_query = s.base_query;
  if (s.normalize === "true") q.normalize = "true";
  return { ...q, ...filterParams(s) };
}

function marks(s, now) {
  return [
    { fromMs: parseTimeMs(s.base_from, now), toMs: parseTimeMs(s.base_to, now), label: "Base", className: "base" },
    { fromMs: parseTimeMs(s.from, now), toMs: parseTimeMs(s.to, now), label: "Comparison", className: "comparison" },
  ];
}

async function loadTimeline(s, signal) {
  const now = Date.now();
  const panel = $("timeline-panel");
  panel.classList.add("is-loading");
  try {
    const queries = s.base_query && s.base_query !== s.query ? [s.base_query, s.query] : [s.query];
    const answers = await Promise.all(
      queries.map((query) => api.timeseries({ type: s.type, sample: s.sample, query, from: s.window, to: "now" }, { signal })),
    );
    const series = answers.flatMap((a, k) =>
      a.series.map((line) => ({ ...line, labels: queries.length > 1 ? { side: k ? "comparison" : "base", ...line.labels } : line.labels })),
    );
    timeline.setData({ ...answers[0], series }, parseTimeMs(s.window, now), now);
    timeline.setMarks(marks(s, now));
  } catch (err) {
    if (isAbort(err)) return;
    timeline.setMessage(FAILED);
  } finally {
    if (!signal.aborted) panel.classList.remove("is-loading");
  }
}

/** Ask for everything the view shows; each panel fills in as soon as its own answer arrives. */
const load = latestLoad(async (signal) => {
  const s = state.get();
  syncForm(s);
  showError(null);
  for (const id of ["changes-panel", "flame-panel"]) $(id).classList.add("is-loading");
  const q = params(s);
  let failed = false;
  const fail = (err) => {
    if (isAbort(err) || signal.aborted) return false;
    if (!failed) showError(err);
    failed = true;
    return true;
  };
  const top = api.diff({ ...q, format: "top" }, { signal }).then(
    (d) => {
      if (signal.aborted) return;
      renderChanges(d);
      const scale = d.normalized ? ` · comparison scaled ×${d.scale.toFixed(3)} to the base's total` : "";
      $("summary").textContent =
        `Base: ${d.base_profiles} profile${d.base_profiles === 1 ? "" : "s"}, ${formatValue(d.base_total, d.unit)} · ` +
        `Comparison: ${d.profiles} profile${d.profiles === 1 ? "" : "s"}, ${formatValue(d.total, d.unit)} · ` +
        `change ${formatChange(d.total_change, d.unit)} (${formatRelative(d.base_total, d.total)})${scale}`;
      return d;
    },
    (err) => {
      if (fail(err)) {
        tableMessage(FAILED);
        $("summary").textContent = "\u00a0";
      }
      return null;
    },
  );
  // the comparison side's stored profiles name the sample types; the diff's answer names the default
  const samples = learnSampleTypes(form.sample, q, top, s.sample, signal);
  const graph = api.diff({ ...q, format: "flamegraph" }, { signal }).then(
    (g) => {
      if (signal.aborted) return;
      flame.setData(g, { zoomPath: s.zoom });
      if (s.fn) flame.highlight(s.fn);
      else if (s.search) flame.setSearch(s.search);
    },
    (err) => {
      if (fail(err)) flame.setMessage(FAILED);
    },
  );
  const done = Promise.allSettled([top, graph]).then(() => {
    if (!signal.aborted) for (const id of ["changes-panel", "flame-panel"]) $(id).classList.remove("is-loading");
  });
  await Promise.allSettled([done, samples, loadTimeline(s, signal), loadSandwich(s, signal)]);
});

/** The sandwich of the function the URL names, on the comparison side, under the same filters; hidden when none. */
const loadSandwich = sandwichLoader(sandwichPanel, sandwichView, (panel, on) => panel.classList.toggle("is-loading", on), showError);

const loadSandwichOnly = latestLoad((signal) => loadSandwich(state.get(), signal));

state.subscribe((s, previous, how) => {
  syncForm(s);
  if (UrlState.differs(s, previous, [...DATA_KEYS, "window"])) load();
  else if (s.sandwich !== previous.sandwich) loadSandwichOnly();
  else if (how === "history") {
    if (s.sort !== previous.sort && lastChanges) renderChanges(lastChanges);
    if (s.fn) flame.highlight(s.fn);
    else flame.setSearch(s.search);
  }
});

async function start() {
  const s = state.get();
  if (s.query === null) {
    let query = "";
    try {
      const { values } = await api.labelValues("service", s.type);
      if (values.length) query = `{service=${quote(values[0])}}`;
    } catch {
      // the comparison below shows the error
    }
    state.set({ query }, { silent: true });
  }
  load();
}

start();
