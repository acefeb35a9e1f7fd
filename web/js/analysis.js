// Analysis on a flame graph, shared by Explore and Diff: a frame's context menu (focus, hide, ignore, open its
// sandwich), the active filters as removable chips, and the sandwich view (callers above the function, callees
// below it). Filters and the sandwich's function live in the page's URL state; the server applies them
// (docs/api.md: pprof's -focus, -ignore, -hide, -show, -show_from).

import { api, isAbort } from "./api.js";
import { el } from "./dom.js";
import { FlameGraph } from "./flamegraph.js";
import { formatValue } from "./format.js";

/** The filter parameters, in the order pprof applies them, and what a chip calls each. */
export const FILTERS = [
  { key: "focus", label: "focus" },
  { key: "ignore", label: "ignore" },
  { key: "hide", label: "hide" },
  { key: "show", label: "show" },
  { key: "show_from", label: "show from" },
];

/** URL state defaults for the filters and the sandwich's function (absent: no filter, no sandwich). */
export const ANALYSIS_DEFAULTS = { focus: "", ignore: "", hide: "", show: "", show_from: "", sandwich: "" };

/** The URL keys whose change means new data. */
export const ANALYSIS_KEYS = [...FILTERS.map((f) => f.key), "sandwich"];

/** The filter parameters of a state, for an API request (empty ones are left out of the URL). */
export function filterParams(s) {
  return Object.fromEntries(FILTERS.map((f) => [f.key, s[f.key] || ""]));
}

/** A pattern matching exactly this function name (filters match anywhere in a name or a file name). */
export function exactPattern(name) {
  return `^${name.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&")}$`;
}

/** The state patch that adds `name` to filter `key`, beside the patterns already there. */
export function addFilter(s, key, name) {
  const pattern = exactPattern(name);
  const current = s[key] || "";
  if (current.split("|").includes(pattern)) return {};
  return { [key]: current ? `${current}|${pattern}` : pattern };
}

/** Readable chip text: `^main\.fib$|^main\.step$` → `main.fib | main.step`; other patterns as written. */
function chipText(pattern) {
  const parts = pattern.split("|");
  const exact = parts.every((p) => /^\^.*\$$/.test(p));
  if (!exact) return pattern;
  return parts.map((p) => p.slice(1, -1).replace(/\\(.)/g, "$1")).join(" | ");
}

const ACTIONS = [
  { action: "focus", text: (n) => `Focus on ${n}`, hint: "keep only the stacks through it" },
  { action: "hide", text: (n) => `Hide ${n}`, hint: "remove its frames, their time goes to the callers" },
  { action: "ignore", text: (n) => `Ignore stacks with ${n}`, hint: "drop every stack through it" },
  { action: "sandwich", text: (n) => `Open the sandwich of ${n}`, hint: "its callers above it, its callees below" },
];

/**
 * The context menu of a flame graph's frames: right click on a frame, or the "m" key (also the context-menu
 * key and Shift+F10) on the frame under the pointer, the highlighted function, or the zoomed frame.
 * `onPick(action, name)` with action focus, hide, ignore or sandwich, or one of the page's `extra` actions
 * (`{action, text(name), hint}`).
 */
export class FrameMenu {
  constructor(flame, { onPick, extra = [] }) {
    this.flame = flame;
    this.onPick = onPick;
    this.actions = [...ACTIONS, ...extra];
    this.name = "";
    this.menu = el("div", { className: "frame-menu", role: "menu", hidden: true });
    document.body.append(this.menu);
    flame.canvas.addEventListener("contextmenu", (e) => {
      const rect = flame.canvas.getBoundingClientRect();
      const i = flame.nodeAt(e.clientX - rect.left, e.clientY - rect.top);
      if (i <= 0) return; // the root is no function: the browser's own menu
      e.preventDefault();
      this.open(flame.nameOf(i), e.clientX, e.clientY);
    });
    document.addEventListener("keydown", (e) => this.onKey(e));
    document.addEventListener("mousedown", (e) => {
      if (!this.menu.hidden && !this.menu.contains(e.target)) this.close();
    });
    this.menu.addEventListener("keydown", (e) => this.onMenuKey(e));
  }

  /** The frame a keyboard shortcut means: under the pointer, else the highlighted function's widest, else the zoom. */
  target() {
    const f = this.flame;
    const g = f.graph;
    if (!g) return -1;
    if (f.hover > 0) return f.hover;
    if (f.highlighted) {
      let best = -1;
      for (let i = 1; i < g.n; i++) if (g.names[g.name[i]] === f.highlighted && (best < 0 || g.width[i] > g.width[best])) best = i;
      if (best > 0) return best;
    }
    return f.zoomNode > 0 ? f.zoomNode : -1;
  }

  onKey(e) {
    const t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
    if (!this.menu.hidden || e.ctrlKey || e.metaKey || e.altKey) return;
    const shortcut = e.key === "m" || e.key === "ContextMenu" || (e.key === "F10" && e.shiftKey);
    if (!shortcut) return;
    const i = this.target();
    if (i <= 0) return;
    const box = this.flame.nodeBox(i);
    if (!box) return;
    e.preventDefault();
    this.open(this.flame.nameOf(i), box.x + Math.min(box.w / 2, 40), box.y + box.h);
  }

  open(name, x, y) {
    this.name = name;
    const items = this.actions.map((a) => {
      const b = el("button", { type: "button", className: "frame-menu-item", role: "menuitem", title: a.hint }, a.text(name));
      b.dataset.action = a.action;
      b.addEventListener("click", () => {
        this.close();
        this.onPick(a.action, name);
      });
      return b;
    });
    this.menu.replaceChildren(el("div", "frame-menu-title", name), ...items);
    this.menu.hidden = false;
    const { innerWidth, innerHeight } = window;
    const rect = this.menu.getBoundingClientRect();
    this.menu.style.left = `${Math.max(0, Math.min(x, innerWidth - rect.width - 4))}px`;
    this.menu.style.top = `${Math.max(0, Math.min(y, innerHeight - rect.height - 4))}px`;
    items[0].focus();
  }

  close() {
    if (this.menu.hidden) return;
    this.menu.hidden = true;
    this.flame.canvas.focus?.();
  }

  onMenuKey(e) {
    const items = [...this.menu.querySelectorAll(".frame-menu-item")];
    const at = items.indexOf(document.activeElement);
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      this.close();
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const step = e.key === "ArrowDown" ? 1 : -1;
      items[(at + step + items.length) % items.length].focus();
    } else if (e.key === "Tab") {
      this.close();
    }
  }
}

/** The active filters as chips, each with a button that removes it: `onRemove(key)`. */
export class FilterChips {
  constructor(container, { onRemove }) {
    this.container = container;
    this.onRemove = onRemove;
  }

  render(s) {
    const chips = FILTERS.filter((f) => s[f.key]).map((f) => {
      const remove = el("button", { type: "button", className: "filter-chip-remove", "aria-label": `Remove the ${f.label} filter` }, "×");
      remove.addEventListener("click", () => this.onRemove(f.key));
      const chip = el("span", { className: "filter-chip", title: `${f.label}=${s[f.key]}` }, el("b", "", f.label), " ", el("code", "", chipText(s[f.key])), remove);
      chip.dataset.key = f.key;
      return chip;
    });
    this.container.hidden = chips.length === 0;
    this.container.replaceChildren(...(chips.length ? [el("span", "filter-chips-label", "Filters:"), ...chips] : []));
  }
}

/**
 * The sandwich of one function: its callers drawn upside down above it (the function at the bottom, its
 * direct callers over it) and its callees below it. A click on any frame re-centres the sandwich on that
 * frame's function: `onCentre(name)`; `onClose()` when the user closes the view; `suffix` follows the title.
 */
export class SandwichView {
  constructor(container, { onCentre, onClose, suffix = "" }) {
    this.container = container;
    this.suffix = suffix;
    this.title = el("h2", "", "Sandwich");
    this.meta = el("span", "panel-meta");
    const close = el("button", { type: "button", className: "btn btn-ghost sandwich-close" }, "Close");
    close.addEventListener("click", () => onClose());
    const head = el("div", "panel-head", this.title, this.meta, el("span", "spacer"), el("span", "hint", "click a frame to centre on it"), close);
    const callersBox = el("div", "sandwich-callers");
    const calleesBox = el("div", "sandwich-callees");
    container.replaceChildren(head, el("div", "panel-body", el("div", "sandwich-label", "Callers"), callersBox, el("div", "sandwich-label", "Callees"), calleesBox));
    const pick = (name) => onCentre(name);
    this.callers = new FlameGraph(callersBox, { inverted: true, onFrameClick: pick, debugName: "sandwichCallers", emptyText: "No samples of this function." });
    this.callees = new FlameGraph(calleesBox, { onFrameClick: pick, debugName: "sandwichCallees", emptyText: "No samples of this function." });
  }

  /** Fetch and show the sandwich of `q.function`; rejects as the API does. */
  async load(q, { signal } = {}) {
    this.title.textContent = `Sandwich of ${q.function}${this.suffix}`;
    const answer = await api.sandwich(q, { signal });
    if (signal && signal.aborted) return answer;
    const side = (tree) => ({ ...tree, unit: answer.unit, sample_type: answer.sample_type, aggregation: answer.aggregation, profiles: answer.profiles });
    this.callers.setData(side(answer.callers));
    this.callees.setData(side(answer.callees));
    this.meta.textContent = `flat ${formatValue(answer.flat, answer.unit)} · cum ${formatValue(answer.cum, answer.unit)} of ${formatValue(answer.total, answer.unit)}`;
    return answer;
  }

  setMessage(text) {
    this.callers.setMessage(text);
    this.callees.setMessage(text);
    this.meta.textContent = "";
  }
}

/**
 * The page's sandwich loader: shows the sandwich of the function the URL state names (``sandwich``), under the
 * state's query and filters, in ``panel`` (hidden when none). A newer call aborts the one still loading.
 * ``view()`` gives the page's SandwichView (made on first use); ``setLoading`` marks the panel busy.
 */
export function sandwichLoader(panel, view, setLoading, showError) {
  let controller = null;
  return async function load(s, outer) {
    if (controller) controller.abort();
    const mine = new AbortController();
    controller = mine;
    const { signal } = mine;
    outer.addEventListener("abort", () => mine.abort(), { once: true });
    panel.hidden = !s.sandwich;
    if (!s.sandwich) return;
    setLoading(panel, true);
    const q = { type: s.type, query: s.query, from: s.from, to: s.to, sample: s.sample, ...filterParams(s), function: s.sandwich };
    try {
      await view().load(q, { signal });
    } catch (err) {
      if (!signal.aborted && !isAbort(err)) {
        showError(err);
        view().setMessage(`No sandwich: ${err.message}`);
      }
    } finally {
      if (!signal.aborted) setLoading(panel, false);
    }
  };
}
