// Line-level views on Explore (docs/api.md, "Line granularity" and "GET /api/v1/source"):
//
// - the Lines tab beside the top table: a row per (function, file, line), `/api/v1/top?granularity=lines`,
//   the numbers of `go tool pprof -top -lines`, under the page's selector, range, sample type and filters;
// - the line table of one function: `/api/v1/source?function=F`, its flat and cum per line as
//   `go tool pprof -list` prints them, with the source text when the server maps the file, else the reason.
//
// Both live in the URL (`rows=lines`, `source=F`), so a link reopens them. Profiles stored before line
// numbers were kept answer 409 "no line data before <time>": that message takes the table's place.

import { filterParams } from "./analysis.js";
import { getJSON, isAbort } from "./api.js";
import { $, el } from "./dom.js";
import { formatPercent, formatValue } from "./format.js";
import { TopTable } from "./toptable.js";

/** URL state: which rows the top table lists, the sort of the line rows, and the function whose lines are open. */
export const LINE_DEFAULTS = { rows: "functions", lsort: "flat", source: "" };

/** The frame menu's entry that opens a function's line table (analysis.js FrameMenu `extra`). */
export const LINES_ACTION = {
  action: "lines",
  text: (n) => `Show the lines of ${n}`,
  hint: "its flat and cum per source line, as go tool pprof -list",
};

/**
 * The Lines tab, the "Lines of F" button and the line table of one function. `state` is the page's UrlState
 * (the keys of LINE_DEFAULTS are this module's); `onSelect(name)` selects a function as a top table row
 * click does; `setLoading(panel, on)` and `showError(err)` are the page's.
 */
export class LineViews {
  constructor({ state, onSelect, setLoading, showError }) {
    this.state = state;
    this.setLoading = setLoading;
    this.showError = showError;
    this.topPanel = $("top-panel");
    this.tabs = [...document.querySelectorAll("#top-tabs [role=tab]")];
    this.functionsBox = $("top");
    this.linesBox = $("lines");
    this.filter = $("filter");
    this.openButton = $("open-lines");
    this.selected = "";
    this.table = new TopTable(this.linesBox, {
      lines: true,
      onSelect,
      onViewChange: ({ sort }) => state.set({ lsort: sort }, { silent: true }),
    });
    this.table.message("Loading…", "muted");
    this.loaded = null; // the state the line rows were fetched for
    this.controller = null; // the load under way
    for (const tab of this.tabs) {
      tab.addEventListener("click", () => state.set({ rows: tab.dataset.rows }, { push: true }));
      tab.addEventListener("keydown", (e) => {
        if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
        e.preventDefault();
        const next = this.tabs[(this.tabs.indexOf(tab) + 1) % this.tabs.length];
        next.focus();
        next.click();
      });
    }
    this.filter.addEventListener("input", () => this.table.setFilter(this.filter.value));
    this.openButton.addEventListener("click", () => this.open(this.selected));
    // "l" on a focused row opens its function's lines (not a double click: a triple click selects a name)
    for (const box of [this.functionsBox, this.linesBox]) {
      box.addEventListener("keydown", (e) => {
        if (e.key === "l" && e.target.matches("tr[data-name]")) this.open(e.target.dataset.name);
      });
    }
    this.panel = $("source-panel");
    this.listing = new SourcePanel(this.panel, { onClose: () => this.close() });
  }

  /** Open the line table of `name`. */
  open(name) {
    if (!name) return;
    this.focusPanel = true;
    this.state.set({ source: name }, { push: true });
  }

  close() {
    const name = this.state.get().source;
    this.state.set({ source: "" }, { push: true });
    // back where the user came from: the selected row, else the button
    const row = [...document.querySelectorAll(`#${this.showing()} tr[data-name]`)].find((tr) => tr.dataset.name === name);
    (row || this.openButton).focus();
  }

  showing() {
    return this.state.get().rows === "lines" ? "lines" : "top";
  }

  /** The function selected in the tables or the flame graph (or none): the "Lines of F" button follows it. */
  select(name) {
    this.selected = name || "";
    this.table.setSelected(name || null);
    this.openButton.classList.toggle("none", !this.selected); // keeps its place: nothing moves
    this.openButton.textContent = this.selected ? `Lines of ${this.selected}` : "";
    this.openButton.title = this.selected ? `Show the flat and cum of ${this.selected} per source line` : "";
  }

  /** View details that need no new data: the tab shown, the line rows' order and filter, the selection. */
  applyView(s) {
    const lines = s.rows === "lines";
    for (const tab of this.tabs) {
      const on = tab.dataset.rows === (lines ? "lines" : "functions");
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
    }
    this.functionsBox.hidden = lines;
    this.linesBox.hidden = !lines;
    this.filter.placeholder = lines ? "Filter lines" : "Filter functions";
    this.filter.setAttribute("aria-label", this.filter.placeholder);
    this.table.setSort(s.lsort);
    this.table.setFilter(s.filter);
    this.select(s.fn);
  }

  /** Whether going from `previous` to `s` needs line data that the page's full load does not fetch. */
  changed(s, previous) {
    return s.rows !== previous.rows || s.source !== previous.source;
  }

  /**
   * Fetch what the state shows: the line rows when the Lines tab is open, the line table when one is; `full`
   * (the page's own load: new data) fetches them again. A newer call aborts the one still loading, as does
   * `outer` (the page's load signal).
   */
  async load(s, outer, { full = false } = {}) {
    if (this.controller) this.controller.abort();
    const mine = new AbortController();
    this.controller = mine;
    const { signal } = mine;
    outer.addEventListener("abort", () => mine.abort(), { once: true });
    this.applyView(s);
    const q = { type: s.type, query: s.query, from: s.from, to: s.to, sample: s.sample, ...filterParams(s) };
    const work = [];
    if (s.rows === "lines" && (full || !this.loaded || this.loaded !== keyOf(s))) work.push(this.loadRows(s, q, signal));
    if (full || s.source !== this.listing.shown) work.push(this.loadSource(s, q, signal));
    await Promise.allSettled(work);
  }

  async loadRows(s, q, signal) {
    this.setLoading(this.topPanel, true);
    try {
      const [path, params] = route(s, q, "top");
      const answer = await getJSON(path, { ...params, granularity: "lines" }, { signal });
      if (signal.aborted) return;
      this.table.setData(answer);
      this.table.setSelected(this.selected || null);
      this.loaded = keyOf(s);
    } catch (err) {
      if (signal.aborted || isAbort(err)) return;
      this.loaded = null;
      this.table.message(err.message, "error");
      if (err.status !== 409) this.showError(err); // a 409 concerns line data only: the table says it
    } finally {
      if (!signal.aborted) this.setLoading(this.topPanel, false);
    }
  }

  async loadSource(s, q, signal) {
    const focus = this.focusPanel;
    this.focusPanel = false;
    this.panel.hidden = !s.source;
    this.listing.shown = null; // until the answer is shown: a newer load asks again
    if (!s.source) {
      this.listing.shown = "";
      return;
    }
    this.listing.begin(s.source);
    if (focus) this.panel.focus();
    this.setLoading(this.panel, true);
    try {
      const [path, params] = route(s, q, "source");
      const answer = await getJSON(path, { ...params, function: s.source }, { signal });
      if (signal.aborted) return;
      this.listing.setData(answer);
      this.listing.shown = s.source;
    } catch (err) {
      if (signal.aborted || isAbort(err)) return;
      this.listing.setMessage(err.message, "error"); // asked again on the next load
    } finally {
      if (!signal.aborted) this.setLoading(this.panel, false);
    }
  }
}

/**
 * Where to ask: `/api/v1/<what>` with the page's query `q`, or with a single profile open (`profile=ID`),
 * that profile's own route, which takes only the sample type and the filters.
 */
function route(s, q, what) {
  if (!s.profile) return [`/api/v1/${what}`, q];
  return [`/api/v1/profiles/${encodeURIComponent(s.profile)}/${what}`, { sample: s.sample, ...filterParams(s) }];
}

/** What the line rows depend on: the data keys of the state. */
function keyOf(s) {
  const q = { type: s.type, query: s.query, from: s.from, to: s.to, sample: s.sample, profile: s.profile, ...filterParams(s) };
  return JSON.stringify(q);
}

/**
 * The line table of one function, one block per file it is found in (a routine, as pprof -list names it):
 * a header with its flat and cum ("(flat, cum) x% of Total", the cum adding up the lines' cums as pprof's
 * does), then each line's flat and cum, its number and, when the server sent the source, its text.
 * `onClose()` on the Close button or Escape.
 */
export class SourcePanel {
  constructor(container, { onClose }) {
    this.container = container;
    this.shown = null; // the function whose lines are shown (or being fetched)
    this.title = el("h2", { id: "source-title" }, "Lines");
    this.meta = el("span", "panel-meta");
    const close = el("button", { type: "button", className: "btn btn-ghost source-close" }, "Close");
    close.addEventListener("click", () => onClose());
    this.body = el("div", "panel-body source-body");
    container.replaceChildren(el("div", "panel-head", this.title, this.meta, el("span", "spacer"), el("span", "hint", "Esc to close"), close), this.body);
    container.addEventListener("keydown", (e) => {
      if (e.key !== "Escape") return;
      e.preventDefault();
      e.stopPropagation(); // the flame graph's Escape (zoom out) is not meant
      onClose();
    });
  }

  begin(name) {
    this.title.textContent = `Lines of ${name}`;
    this.meta.textContent = "";
    this.body.replaceChildren(el("p", "source-message muted", "Loading…"));
  }

  setMessage(text, className = "muted") {
    this.meta.textContent = "";
    this.body.replaceChildren(el("p", `source-message ${className}`, text));
  }

  setData(answer) {
    const { unit, total } = answer;
    const n = answer.routines.length;
    this.meta.textContent = `${n} routine${n === 1 ? "" : "s"} · ${answer.sample_type} · total ${formatValue(total, unit)}`;
    this.body.replaceChildren(...answer.routines.map((r) => routine(r, unit, total)));
  }
}

/** A value as pprof's listing prints it: "." for nothing. */
const cell = (value, unit) => (value ? formatValue(value, unit) : ".");

function routine(r, unit, total) {
  const head = el(
    "div",
    "routine-head",
    el("code", "routine-name", r.function),
    " in ",
    el("code", "routine-file", r.file),
    el("span", "routine-totals", `${formatValue(r.flat, unit)} ${formatValue(r.cum, unit)} (flat, cum) ${formatPercent(r.cum, total)} of Total`),
  );
  const block = el("div", "routine", head);
  block.dataset.function = r.function;
  block.dataset.file = r.file;
  block.dataset.flat = String(r.flat);
  block.dataset.cum = String(r.cum);
  if (r.source) block.append(el("p", "source-reason", `Source not shown: ${r.source}.`));
  const withText = r.lines.some((line) => typeof line.text === "string");
  const head2 = el("tr", "", el("th", "num", "Flat"), el("th", "num", "Cum"), el("th", "num", "Line"), withText ? el("th", "text", "Source") : null);
  const rows = r.lines.map((line) => {
    const tr = el(
      "tr",
      line.flat || line.cum ? "hot" : "",
      el("td", "num value", cell(line.flat, unit)),
      el("td", "num value", cell(line.cum, unit)),
      el("td", "num lineno", String(line.line)),
      withText ? el("td", "text", line.text ?? "") : null,
    );
    tr.dataset.line = String(line.line);
    tr.dataset.flat = String(line.flat);
    tr.dataset.cum = String(line.cum);
    return tr;
  });
  const table = el("table", "source-table", el("thead", "", head2), el("tbody", "", ...rows));
  block.append(el("div", "source-scroll", table));
  return block;
}
