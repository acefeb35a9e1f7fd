// The Explore page: a selector, a profile and sample type and a time range give a timeline, the merged
// flame graph and the top table. Everything that defines the view is in the URL.

import { ANALYSIS_DEFAULTS, addFilter, FILTERS, FilterChips, filterParams, FrameMenu, SandwichView, sandwichLoader } from "./analysis.js";
import { api, getJSON, isAbort } from "./api.js";
import { $, latestLoad } from "./dom.js";
import { FlameGraph } from "./flamegraph.js";
import { formatValue } from "./format.js";
import { renderHeader } from "./header.js";
import { LINE_DEFAULTS, LINES_ACTION, LineViews } from "./linetable.js";
import { learnSampleTypes, showSample } from "./samples.js";
import { SelectorInput } from "./selector.js";
import { UrlState } from "./state.js";
import { describeRange, isoSeconds, parseTimeMs, PRESETS, timeElement } from "./time.js";
import { Timeline } from "./timeline.js";
import { TopTable } from "./toptable.js";

const DATA_KEYS = ["type", "query", "from", "to", "sample", "profile", ...FILTERS.map((f) => f.key)];
const state = new UrlState({
  type: "cpu",
  query: null, // absent: the first service of the type is chosen
  from: "now-1h",
  to: "now",
  sample: "",
  search: "",
  fn: "",
  sort: "flat",
  filter: "",
  zoom: "",
  profile: "", // one stored profile's id instead of the merged view
  ...ANALYSIS_DEFAULTS, // frame filters, and the function whose sandwich is open
  ...LINE_DEFAULTS, // the Lines tab, and the function whose line table is open
});

const form = {
  bar: $("querybar"),
  type: $("type"),
  query: $("query"),
  sample: $("sample"),
  rangeButton: $("range-button"),
  rangeText: $("range-text"),
  popover: $("range-popover"),
  from: $("from"),
  to: $("to"),
  apply: $("range-apply"),
  filter: $("filter"),
  download: $("download"),
  summary: $("summary"),
  error: $("error"),
  errorMessage: $("error-message"),
  timelineMeta: $("timeline-meta"),
};

renderHeader();

const flame = new FlameGraph($("flamegraph"), {
  onViewChange({ zoom, search }) {
    const fn = flame.highlighted || "";
    table.setSelected(fn || null);
    lineViews.select(fn);
    state.set({ zoom, search, fn }, { silent: true });
  },
});

new FrameMenu(flame, {
  extra: [LINES_ACTION],
  onPick(action, name) {
    if (action === "lines") lineViews.open(name);
    else if (action === "sandwich") state.set({ sandwich: name }, { push: true });
    else state.set({ ...addFilter(state.get(), action, name), zoom: "", profile: "" }, { push: true });
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
  onCentre(name) {
    state.set({ sandwich: name }, { push: true });
  },
  onClose() {
    state.set({ sandwich: "" }, { push: true });
  },
};
/** The sandwich view, made on first use. */
const sandwichView = () => (sandwich ??= new SandwichView(sandwichPanel, sandwichOptions));

/** A row of either table selects its function: highlighted in the flame graph and both tables. */
function selectFunction(name) {
  flame.highlight(name);
  table.setSelected(name || null);
  lineViews.select(name);
  state.set({ fn: name || "", search: "" }, { silent: true });
}

const table = new TopTable($("top"), {
  onSelect: selectFunction,
  onViewChange({ sort }) {
    state.set({ sort }, { silent: true });
  },
});

const lineViews = new LineViews({ state, onSelect: selectFunction, setLoading, showError });

const timeline = new Timeline($("timeline"), {
  onSelect(fromMs, toMs) {
    state.set({ from: isoSeconds(fromMs), to: isoSeconds(toMs), zoom: "", profile: "" }, { push: true });
  },
  onPick(fromMs, toMs) {
    listProfiles(fromMs, toMs);
  },
});

// ------------------------------------------------------------------------------------------------ one profile

const stepBox = $("step-profiles");

/** The stored profiles of one timeline step, each to open alone or download as pprof. */
async function listProfiles(fromMs, toMs) {
  const s = state.get();
  const q = { type: s.type, query: s.query, from: String(fromMs / 1000), to: String(toMs / 1000 - 0.001), limit: 50 };
  stepBox.hidden = false;
  stepBox.textContent = "Loading the profiles of this step…";
  try {
    const { profiles, truncated } = await api.profiles(q);
    const head = document.createElement("div");
    head.className = "step-head";
    head.append(`${profiles.length}${truncated ? "+" : ""} profile${profiles.length === 1 ? "" : "s"} from `, timeElement(fromMs), " to ", timeElement(toMs));
    const close = document.createElement("button");
    close.type = "button";
    close.className = "btn btn-ghost";
    close.textContent = "Close";
    close.addEventListener("click", () => (stepBox.hidden = true));
    head.append(close);
    const list = document.createElement("ul");
    for (const p of profiles) {
      const li = document.createElement("li");
      li.dataset.id = String(p.id);
      const what = Object.entries(p.labels)
        .filter(([k]) => k !== "service")
        .map(([k, v]) => `${k}=${v}`)
        .join(", ");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "btn open-profile";
      open.textContent = "Open";
      open.addEventListener("click", () => state.set({ profile: String(p.id), zoom: "" }, { push: true }));
      const pprof = document.createElement("a");
      pprof.className = "btn";
      pprof.href = `/api/v1/profiles/${p.id}/pprof`;
      pprof.download = `profile-${p.id}.pb.gz`;
      pprof.textContent = "pprof";
      const text = document.createElement("span");
      text.append(timeElement(Date.parse(p.time)), ` · ${p.labels.service ?? ""}${what ? ` (${what})` : ""} · ${p.samples.toLocaleString("en-US")} samples`);
      li.append(text, open, pprof);
      list.append(li);
    }
    stepBox.replaceChildren(head, list);
  } catch (err) {
    stepBox.textContent = `The profiles of this step could not be listed: ${err.message}`;
  }
}

new SelectorInput(form.query, $("query-suggestions"), {
  getType: () => form.type.value,
  getRange: () => ({ from: state.get().from, to: state.get().to }),
  onSubmit: () => submit(),
});

// ------------------------------------------------------------------------------------------------ form

for (const preset of PRESETS) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "preset";
  b.dataset.from = preset.from;
  b.textContent = preset.label;
  b.addEventListener("click", () => {
    closePopover();
    state.set({ from: preset.from, to: "now", zoom: "", profile: "" }, { push: true });
  });
  form.popover.querySelector(".presets").append(b);
}

/** The summary of a single profile's view, with the way back to the merged one. */
function showSingle(id, t) {
  const back = document.createElement("button");
  back.type = "button";
  back.className = "btn btn-ghost back-to-merged";
  back.textContent = "Back to the merged view";
  back.addEventListener("click", () => state.set({ profile: "", zoom: "" }, { push: true }));
  form.summary.replaceChildren(`Profile #${id} alone · ${t.sample_type} · total ${formatValue(t.total, t.unit)} `, back);
}

function syncForm(s) {
  form.type.value = s.type;
  if (document.activeElement !== form.query) form.query.value = s.query ?? "";
  form.from.value = s.from;
  form.to.value = s.to;
  form.rangeText.textContent = describeRange(s.from, s.to);
  for (const b of form.popover.querySelectorAll(".preset")) {
    b.classList.toggle("active", b.dataset.from === s.from && s.to === "now");
  }
  if (document.activeElement !== form.filter) form.filter.value = s.filter;
  showSample(form.sample, s.sample);
  chips.render(s);
  const q = { type: s.type, query: s.query, from: s.from, to: s.to, sample: s.sample, ...filterParams(s) };
  form.download.href = s.profile ? `/api/v1/profiles/${encodeURIComponent(s.profile)}/pprof` : api.pprofUrl(q);
  form.download.download = s.profile ? `profile-${s.profile}.pb.gz` : `${s.type}.pb.gz`;
  document.title = `Explore · ${s.type}${s.query ? ` · ${s.query}` : ""} · Stackyard`;
}

function submit(patch = {}) {
  const next = { type: form.type.value, query: form.query.value.trim(), sample: form.sample.value, profile: "" };
  state.set({ ...next, ...patch }, { push: true });
  if (!UrlState.differs(state.get(), lastLoaded || {}, DATA_KEYS)) load(); // same query again: refresh
}

form.bar.addEventListener("submit", (e) => {
  e.preventDefault();
  submit();
});
form.type.addEventListener("change", () => {
  form.sample.value = "";
  submit({ sample: "", zoom: "" });
});
form.sample.addEventListener("change", () => submit({ zoom: "" }));

let filterTimer = 0;
form.filter.addEventListener("input", () => {
  table.setFilter(form.filter.value);
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => state.set({ filter: form.filter.value }, { silent: true }), 250);
});

function openPopover() {
  form.popover.hidden = false;
  form.rangeButton.setAttribute("aria-expanded", "true");
}
function closePopover() {
  form.popover.hidden = true;
  form.rangeButton.setAttribute("aria-expanded", "false");
}
form.rangeButton.addEventListener("click", () => (form.popover.hidden ? openPopover() : closePopover()));
document.addEventListener("mousedown", (e) => {
  if (!form.popover.hidden && !e.target.closest(".timepicker")) closePopover();
});
form.popover.addEventListener("keydown", (e) => {
  if (e.key === "Escape") {
    e.stopPropagation();
    closePopover();
    form.rangeButton.focus();
  } else if (e.key === "Enter" && e.target.tagName === "INPUT") {
    e.preventDefault();
    form.apply.click();
  }
});
form.apply.addEventListener("click", () => {
  closePopover();
  const range = { from: form.from.value.trim() || "now-1h", to: form.to.value.trim() || "now" };
  state.set({ ...range, zoom: "", profile: "" }, { push: true });
});

// ------------------------------------------------------------------------------------------------ data

let lastLoaded = null;
const panels = [$("timeline-panel"), $("top-panel"), $("flame-panel")];
const timelinePanel = $("timeline-panel");
const topPanel = $("top-panel");
const flamePanel = $("flame-panel");

function setLoading(panel, on) {
  panel.classList.toggle("is-loading", on);
  panel.setAttribute("aria-busy", String(on));
}

function showError(err) {
  if (!err) {
    form.error.hidden = true;
    form.query.removeAttribute("aria-invalid");
    return;
  }
  form.errorMessage.textContent = err.message;
  form.error.hidden = false;
  if (/^(base_)?query:/.test(err.message)) form.query.setAttribute("aria-invalid", "true");
}

/** View details that need no new data: search, highlighted function, zoom, table order and filter. */
function applyView(s) {
  if (s.fn) flame.highlight(s.fn);
  else {
    flame.highlighted = null;
    flame.setSearch(s.search);
  }
  if (flame.graph && flame.zoomPath() !== s.zoom) flame.zoomTo(s.zoom ? flame.findPath(s.zoom) : 0);
  table.setSort(s.sort);
  table.setFilter(s.filter);
  table.setSelected(s.fn || null);
  lineViews.applyView(s);
}

const FAILED = "No data: the query failed (see the message above).";

/** Ask for everything the view shows; each panel fills in as soon as its own answer arrives. */
const load = latestLoad(async (signal) => {
  const s = state.get();
  lastLoaded = s;
  syncForm(s);
  showError(null);
  for (const p of panels) setLoading(p, true);
  const q = { type: s.type, query: s.query, from: s.from, to: s.to, sample: s.sample };
  const filtered = { ...q, ...filterParams(s) };
  const now = Date.now();
  let failed = false;
  const fail = (err) => {
    if (signal.aborted || isAbort(err)) return false;
    if (!failed) showError(err); // the first failure explains the others
    failed = true;
    return true;
  };
  const done = (panel) => () => {
    if (!signal.aborted) setLoading(panel, false);
  };

  const one = s.profile ? `/api/v1/profiles/${encodeURIComponent(s.profile)}` : "";
  const topRequest = one ? getJSON(`${one}/top`, { sample: s.sample }, { signal }) : api.top(filtered, { signal });
  const top = topRequest.then(
    (t) => {
      if (signal.aborted) return null;
      table.setData(t);
      // avg (snapshots such as goroutines): the number is per profile, never the fleet's total
      const amount = t.aggregation === "avg" && t.profiles > 1 ? "average per profile" : "total";
      if (one) showSingle(s.profile, t);
      else {
        const kept = t.shown !== t.total ? ` · the filters keep ${formatValue(t.shown, t.unit)}` : "";
        form.summary.textContent = t.profiles
          ? `${t.profiles.toLocaleString("en-US")} profile${t.profiles === 1 ? "" : "s"} merged · ${t.sample_type} · ${amount} ${formatValue(t.total, t.unit)}${kept}`
          : `No ${s.type} profiles${s.query ? ` match ${s.query}` : ""} in this range.`;
      }
      return t;
    },
    (err) => {
      if (fail(err)) {
        table.message(FAILED, "error");
        form.summary.textContent = "\u00a0";
      }
      return null;
    },
  );
  top.finally(done(topPanel));

  const graphRequest = one ? getJSON(`${one}/flamegraph`, { sample: s.sample }, { signal }) : api.flamegraph(filtered, { signal });
  const graph = graphRequest.then(
    (g) => {
      if (signal.aborted) return;
      flame.setData(g, { zoomPath: s.zoom });
      // a frame the new data does not have cannot stay zoomed: keep the link honest
      if (flame.zoomPath() !== s.zoom) state.set({ zoom: flame.zoomPath() }, { silent: true });
    },
    (err) => {
      if (fail(err)) flame.setMessage(FAILED);
    },
  );
  graph.finally(done(flamePanel));

  const series = api.timeseries(q, { signal }).then(
    (ts) => {
      if (signal.aborted) return;
      timeline.setData(ts, parseTimeMs(s.from, now), parseTimeMs(s.to, now));
      form.timelineMeta.textContent = ts.series.length
        ? `${ts.sample_type} · ${ts.aggregation} per profile · step ${formatValue(ts.step * 1e9, "nanoseconds")}`
        : "";
    },
    (err) => {
      if (fail(err)) {
        timeline.setMessage(FAILED);
        form.timelineMeta.textContent = "";
      }
    },
  );
  series.finally(done(timelinePanel));

  const samples = learnSampleTypes(form.sample, q, top, s.sample, signal);

  const lines = lineViews.load(s, signal, { full: true });
  await Promise.allSettled([top, graph, series, samples, loadSandwich(s, signal), lines]);
});

/** The sandwich of the function the URL names, under the same query and filters; hidden when none. */
const loadSandwich = sandwichLoader(sandwichPanel, sandwichView, setLoading, showError);

const loadSandwichOnly = latestLoad((signal) => loadSandwich(state.get(), signal));

const loadLinesOnly = latestLoad((signal) => lineViews.load(state.get(), signal));

state.subscribe((s, previous, how) => {
  syncForm(s);
  if (how === "history") applyView(s);
  if (UrlState.differs(s, previous, DATA_KEYS)) load();
  else {
    if (s.sandwich !== previous.sandwich) loadSandwichOnly();
    if (lineViews.changed(s, previous)) loadLinesOnly();
  }
});

async function start() {
  const s = state.get();
  syncForm(s);
  applyView(s);
  if (s.query === null) {
    // No selector in the link: start with the type's first service, or everything when there is none.
    let query = "";
    try {
      const { values } = await api.labelValues("service", s.type);
      if (values.length) query = `{service="${values[0].replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"}`;
    } catch {
      // the real query below will show the error
    }
    state.set({ query }, { silent: true });
  }
  load();
}

start();
