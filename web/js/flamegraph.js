// The flame graph: Stackyard's compact levels format (docs/api.md) drawn as an icicle on a <canvas>.
//
// Nodes are decoded once into typed arrays, level by level, left to right, so a level is a sorted run of
// nodes: drawing walks only the nodes inside the visible range of each level (binary search), nodes
// narrower than a pixel are merged into one box, and hit testing is a binary search too. Zooming changes
// the visible range to one node's extent; its ancestors, which contain that extent, stay full width above.

import { formatChange, formatPercent, formatRelative, formatValue } from "./format.js";

const ROW = 18; // CSS px per level, including a 1 px gap below each box
const FONT = '12px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace';
const LABEL_PAD = 4;
const MIN_WIDTH = 1; // boxes narrower than this (CSS px) are merged with their narrow neighbours
const DIM = "#e4e7ec"; // frames that do not match an active search
const DIM_TEXT = "#9aa1ad";
const TEXT = "#17202e";
const GREY = "#cfd3da"; // diff: unchanged
const OTHER = "other";
const ROOT_FILL = "#d9dde4";

// ---------------------------------------------------------------------------------------------- decode

/** Decode a `/api/v1/flamegraph` (or `/api/v1/diff?format=flamegraph`) response into typed arrays. */
export function decodeFlamegraph(response) {
  const levels = response.levels || [];
  const stride = levels.length && levels[0].length === 6 ? 6 : 4;
  const diff = stride === 6;
  let n = 0;
  for (const level of levels) n += level.length / stride;
  const depth = new Uint16Array(n);
  const start = new Float64Array(n);
  const width = new Float64Array(n);
  const total = new Float64Array(n);
  const self = new Float64Array(n);
  const baseTotal = diff ? new Float64Array(n) : null;
  const baseSelf = diff ? new Float64Array(n) : null;
  const name = new Int32Array(n);
  const parent = new Int32Array(n).fill(-1);
  const levelStart = new Int32Array(levels.length + 1);
  let k = 0;
  for (let d = 0; d < levels.length; d++) {
    levelStart[d] = k;
    const level = levels[d];
    let end = 0;
    for (let j = 0; j < level.length; j += stride, k++) {
      const left = end + level[j];
      depth[k] = d;
      start[k] = left;
      if (diff) {
        baseTotal[k] = level[j + 1];
        baseSelf[k] = level[j + 2];
        total[k] = level[j + 3];
        self[k] = level[j + 4];
        width[k] = level[j + 1] + level[j + 3];
        name[k] = level[j + 5];
      } else {
        total[k] = level[j + 1];
        self[k] = level[j + 2];
        width[k] = level[j + 1];
        name[k] = level[j + 3];
      }
      end = left + width[k];
    }
  }
  levelStart[levels.length] = k;
  const rootWidth = n ? width[0] : 0;
  // A node's parent is the last node of the level above that starts at or before it (levels are sorted).
  const eps = Math.max(rootWidth * 1e-12, 1e-12);
  for (let d = 1; d < levels.length; d++) {
    let p = levelStart[d - 1];
    const pEnd = levelStart[d];
    for (let i = levelStart[d]; i < levelStart[d + 1]; i++) {
      while (p + 1 < pEnd && start[p + 1] <= start[i] + eps) p++;
      parent[i] = p;
    }
  }
  const names = response.names || [];
  return {
    n,
    diff,
    names,
    depth,
    start,
    width,
    total,
    self,
    baseTotal,
    baseSelf,
    name,
    parent,
    levelStart,
    levels: levels.length,
    rootWidth,
    rootTotal: n ? total[0] : 0,
    rootBase: n && diff ? baseTotal[0] : 0,
    unit: response.unit || "",
    sampleType: response.sample_type || "",
    truncated: Boolean(response.truncated),
    otherName: names.indexOf(OTHER),
  };
}

// ---------------------------------------------------------------------------------------------- colours

/** The Go package path of a function name: `net/http.(*conn).serve` → `net/http`, `main.fib` → `main`. */
export function packageOf(fn) {
  let end = fn.length;
  for (const stop of ["(", "["]) {
    const at = fn.indexOf(stop);
    if (at >= 0 && at < end) end = at;
  }
  const slash = fn.lastIndexOf("/", end);
  const dot = fn.indexOf(".", slash + 1);
  return dot > 0 ? fn.slice(0, dot) : fn;
}

function hash32(text) {
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const packageColors = new Map();

/** A stable, readable (light) hue, saturation and lightness per Go package. */
function packageTone(pkg) {
  let tone = packageColors.get(pkg);
  if (!tone) {
    const h = hash32(pkg);
    tone = {
      hue: Math.round(((h % 3600) / 10 + (h >>> 20) * 0.618) % 360),
      sat: 50 + ((h >>> 8) % 20),
      light: 70 + ((h >>> 14) % 7),
    };
    packageColors.set(pkg, tone);
  }
  return tone;
}

/** A function's colour: its package's hue (the same for every function of the package), with a slight,
 * stable shade per function so neighbouring frames of one package stay apart. */
export function functionColor(fn) {
  const tone = packageTone(packageOf(fn));
  const shade = (hash32(fn) % 9) - 4;
  return `hsl(${tone.hue} ${tone.sat}% ${tone.light + shade}%)`;
}

/** The colour of a Go package (its functions vary only in lightness around it). */
export function packageColor(pkg) {
  const tone = packageTone(pkg);
  return `hsl(${tone.hue} ${tone.sat}% ${tone.light}%)`;
}

const DIFF_STEPS = 10;

/** Diff colour for a relative change: red for more, green for less, more intense for a bigger change. */
export function diffColor(base, value) {
  if (base === value) return GREY;
  let t;
  if (base <= 0) t = 1;
  else if (value <= 0) t = 1;
  else t = Math.min(1, Math.abs(Math.log2(value / base)) / 2); // ×4 or ÷4 is full intensity
  const step = Math.max(1, Math.ceil(t * DIFF_STEPS)) / DIFF_STEPS;
  return diffShade(value > base ? 1 : -1, step);
}

function diffShade(sign, t) {
  const hue = sign > 0 ? 2 : 140;
  const sat = Math.round(25 + 55 * t);
  const light = Math.round(80 - 24 * t);
  return `hsl(${hue} ${sat}% ${light}%)`;
}

function hatch(dpr) {
  const size = Math.round(8 * dpr);
  const tile = document.createElement("canvas");
  tile.width = tile.height = size;
  const c = tile.getContext("2d");
  c.fillStyle = "#e9ebef";
  c.fillRect(0, 0, size, size);
  c.strokeStyle = "#b9bec8";
  c.lineWidth = 1.5 * dpr;
  c.beginPath();
  for (const o of [-size, 0, size]) {
    c.moveTo(o, size);
    c.lineTo(o + size, 0);
  }
  c.stroke();
  const pattern = c.createPattern(tile, "repeat");
  pattern.setTransform(new DOMMatrix().scale(1 / dpr));
  return pattern;
}

// ---------------------------------------------------------------------------------------------- search

/** `text` as a matcher over function names: a case-insensitive substring, or `/regex/flags`. */
export function compileSearch(text) {
  const trimmed = (text || "").trim();
  if (!trimmed) return { test: null, error: "" };
  const re = /^\/(.*)\/([a-z]*)$/s.exec(trimmed);
  if (re && re[1]) {
    try {
      const regex = new RegExp(re[1], re[2].replace(/[gy]/g, ""));
      return { test: (s) => regex.test(s), error: "" };
    } catch (err) {
      return { test: null, error: `Invalid regular expression: ${err.message}` };
    }
  }
  const needle = trimmed.toLowerCase();
  return { test: (s) => s.toLowerCase().includes(needle), error: "" };
}

// ---------------------------------------------------------------------------------------------- the view

const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

/**
 * A flame graph in `container`: toolbar (search, match share, reset zoom), diff legend, canvas, tooltip.
 *
 * Options: `onViewChange({zoom, search})` after the user zooms or searches (for the URL);
 * `onSelect(name)` when the user picks a frame's function with a modifier click (optional).
 */
export class FlameGraph {
  constructor(container, options = {}) {
    this.options = options;
    this.graph = null;
    this.zoomNode = 0;
    this.matcher = { test: null, error: "" };
    this.highlighted = null; // exact function name highlighted from outside
    this.matched = null; // Uint8Array per node when a search or highlight is active
    this.matchInfo = null;
    this.hover = -1;
    this.lastRenderMs = 0;
    this.renders = 0;
    this.drawn = null; // indexes and pixel extents of the boxes drawn in the last render
    this.frame = 0;

    this.root = el("div", "fg");
    const toolbar = el("div", "fg-toolbar");
    this.search = el("input", "fg-search input");
    this.search.type = "search";
    this.search.placeholder = "Search frames: text or /regex/";
    this.search.setAttribute("aria-label", "Search frames");
    this.summary = el("span", "fg-summary");
    this.clear = el("button", "fg-clear btn btn-ghost", "Clear");
    this.clear.type = "button";
    this.clear.hidden = true;
    this.reset = el("button", "fg-reset btn", "Reset zoom");
    this.reset.type = "button";
    this.reset.hidden = true;
    this.info = el("span", "fg-info");
    toolbar.append(this.search, this.summary, this.clear, el("span", "spacer"), this.info, this.reset);
    this.legend = el("div", "fg-legend");
    this.legend.hidden = true;
    this.wrap = el("div", "fg-canvas-wrap");
    this.canvas = el("canvas", "fg-canvas");
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", "Flame graph");
    this.hoverBox = el("div", "fg-hover");
    this.hoverBox.hidden = true;
    this.empty = el("div", "fg-empty", "No samples in this range.");
    this.empty.hidden = true;
    this.tooltip = el("div", "fg-tooltip");
    this.tooltip.hidden = true;
    this.wrap.append(this.canvas, this.hoverBox, this.empty);
    this.root.append(toolbar, this.legend, this.wrap, this.tooltip);
    container.replaceChildren(this.root);
    this.ctx = this.canvas.getContext("2d", { alpha: false });

    let debounce = 0;
    this.search.addEventListener("input", () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => this.setSearch(this.search.value, { notify: true }), 120);
    });
    this.search.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.search.value) {
        e.stopPropagation();
        this.search.value = "";
        this.setSearch("", { notify: true });
      } else if (e.key === "Enter") {
        clearTimeout(debounce);
        this.setSearch(this.search.value, { notify: true });
      }
    });
    this.clear.addEventListener("click", () => {
      this.search.value = "";
      this.highlighted = null;
      this.setSearch("", { notify: true });
    });
    this.reset.addEventListener("click", () => this.zoomTo(0, { notify: true }));
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    this.canvas.addEventListener("mouseleave", () => this.setHover(-1));
    this.canvas.addEventListener("click", (e) => this.onClick(e));
    this.onKey = (e) => {
      if (e.key !== "Escape" || !this.graph || this.zoomNode === 0) return;
      const t = e.target;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT") && t !== this.search) return;
      this.zoomTo(0, { notify: true });
    };
    document.addEventListener("keydown", this.onKey);
    this.resizer = new ResizeObserver(() => this.requestRender());
    this.resizer.observe(this.wrap);

    window.__stackyard = window.__stackyard || {};
    window.__stackyard.flamegraph = this.debugApi();
  }

  destroy() {
    document.removeEventListener("keydown", this.onKey);
    this.resizer.disconnect();
    this.root.remove();
  }

  // ------------------------------------------------------------------ data and view state

  /** Show a response; keeps the search, and the zoom when `zoomPath` names a frame that still exists. */
  setData(response, { zoomPath = null } = {}) {
    const t0 = performance.now();
    this.graph = decodeFlamegraph(response);
    this.decodeMs = performance.now() - t0;
    const g0 = this.graph;
    // Fills, computed when first drawn: per function name (its package's colour), or per node for a diff.
    g0.fill = new Array(g0.diff ? g0.n : g0.names.length);
    this.buffers = {
      index: new Int32Array(g0.n),
      x: new Float32Array(g0.n),
      w: new Float32Array(g0.n),
      labels: new Float64Array(g0.n * 4),
    };
    this.zoomNode = 0;
    if (zoomPath) this.zoomNode = this.findPath(zoomPath);
    this.computeMatches();
    this.renderLegend();
    const g = this.graph;
    // An average is never called a total: with aggregation=avg the root is the average profile's total.
    const averaged =
      response.aggregation === "avg" && response.profiles > 1 ? ` · average per profile of ${response.profiles.toLocaleString("en-US")}` : "";
    this.info.textContent = g.n
      ? `${g.n.toLocaleString("en-US")} frames${g.truncated ? " · small frames folded into “other”" : ""}${averaged}`
      : "";
    this.render();
    this.setDataMs = performance.now() - t0;
  }

  /** No graph: show `text` instead (an error, or "loading"). */
  setMessage(text) {
    this.graph = null;
    this.messageText = text;
    this.info.textContent = "";
    this.legend.hidden = true;
    this.setHover(-1);
    this.computeMatches();
    this.render();
  }

  setSearch(text, { notify = false } = {}) {
    if (this.search.value !== text) this.search.value = text;
    this.matcher = compileSearch(text);
    if (text) this.highlighted = null;
    this.search.classList.toggle("invalid", Boolean(this.matcher.error));
    this.search.title = this.matcher.error;
    this.computeMatches();
    this.render();
    if (notify) this.notify();
  }

  /** Highlight every frame of one function (exact name), as the top table does; null clears. */
  highlight(name) {
    this.highlighted = name || null;
    if (name) {
      this.search.value = "";
      this.matcher = { test: null, error: "" };
      this.search.classList.remove("invalid");
    }
    this.computeMatches();
    this.render();
    return this.matchInfo;
  }

  zoomTo(index, { notify = false } = {}) {
    if (!this.graph || index < 0 || index >= this.graph.n) return;
    this.zoomNode = index;
    this.setHover(-1);
    this.render();
    if (notify) this.notify();
  }

  notify() {
    if (this.options.onViewChange) this.options.onViewChange({ zoom: this.zoomPath(), search: this.search.value });
  }

  /** The zoomed frame as the names from below the root down to it, joined by ";" ("" when not zoomed). */
  zoomPath() {
    const g = this.graph;
    if (!g || this.zoomNode <= 0) return "";
    const parts = [];
    for (let i = this.zoomNode; i > 0; i = g.parent[i]) parts.push(g.names[g.name[i]]);
    return parts.reverse().join(";");
  }

  findPath(path) {
    const g = this.graph;
    let node = 0;
    for (const part of path.split(";")) {
      const child = this.childNamed(node, part);
      if (child < 0) return 0;
      node = child;
    }
    return node;
  }

  childNamed(node, fnName) {
    const g = this.graph;
    const d = g.depth[node] + 1;
    if (d >= g.levels) return -1;
    const x = g.start[node];
    const end = x + g.width[node];
    for (let i = this.firstAt(d, x); i < g.levelStart[d + 1] && g.start[i] < end; i++) {
      if (g.parent[i] === node && g.names[g.name[i]] === fnName) return i;
    }
    return -1;
  }

  // ------------------------------------------------------------------ search

  computeMatches() {
    const g = this.graph;
    this.matched = null;
    this.matchInfo = null;
    const test = this.highlighted ? (s) => s === this.highlighted : this.matcher.test;
    if (g && test) {
      const nameHit = new Uint8Array(g.names.length);
      g.names.forEach((s, i) => {
        nameHit[i] = s !== OTHER && test(s) ? 1 : 0;
      });
      const matched = new Uint8Array(g.n);
      const covered = new Uint8Array(g.n); // some ancestor matched: counted there already
      let total = 0;
      let base = 0;
      let count = 0;
      for (let i = 0; i < g.n; i++) {
        const p = g.parent[i];
        if (p >= 0) covered[i] = covered[p] | matched[p];
        if (nameHit[g.name[i]]) {
          matched[i] = 1;
          count++;
          if (!covered[i]) {
            total += g.total[i];
            if (g.diff) base += g.baseTotal[i];
          }
        }
      }
      this.matched = matched;
      this.matchInfo = { count, total, base, label: this.highlighted || this.search.value.trim() };
    }
    this.renderSummary();
  }

  renderSummary() {
    const g = this.graph;
    const m = this.matchInfo;
    this.clear.hidden = !m;
    this.summary.classList.toggle("error", Boolean(this.matcher.error));
    if (this.matcher.error) {
      this.summary.textContent = this.matcher.error;
      return;
    }
    if (!m || !g) {
      this.summary.textContent = "";
      return;
    }
    this.summary.replaceChildren();
    if (this.highlighted) this.summary.append(el("code", "fg-fn", this.highlighted), " ");
    if (!m.count) {
      this.summary.append("no matching frames");
      return;
    }
    const frames = `${m.count.toLocaleString("en-US")} frame${m.count === 1 ? "" : "s"}`;
    if (g.diff) {
      this.summary.append(
        `${frames}: ${formatPercent(m.base, g.rootBase)} → ${formatPercent(m.total, g.rootTotal)} of total ` +
          `(${formatValue(m.base, g.unit)} → ${formatValue(m.total, g.unit)})`,
      );
    } else {
      const strong = el("strong", "fg-share", formatPercent(m.total, g.rootTotal));
      this.summary.append(`${frames}: `, strong, ` of total (${formatValue(m.total, g.unit)})`);
    }
  }

  renderLegend() {
    const g = this.graph;
    if (!g || !g.diff) {
      this.legend.hidden = true;
      return;
    }
    const stops = [];
    for (let s = DIFF_STEPS; s >= 1; s--) stops.push(diffShade(-1, s / DIFF_STEPS));
    stops.push(GREY);
    for (let s = 1; s <= DIFF_STEPS; s++) stops.push(diffShade(1, s / DIFF_STEPS));
    const bar = el("span", "fg-legend-bar");
    bar.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
    const change = g.rootTotal - g.rootBase;
    this.legend.replaceChildren(
      el("span", "fg-legend-label", "−75% or less"),
      bar,
      el("span", "fg-legend-label", "+300% or more"),
      el("span", "fg-legend-note", "red: more in the comparison · green: less · grey: unchanged · width: base + comparison"),
      el(
        "span",
        "fg-legend-total",
        `Total ${formatValue(g.rootBase, g.unit)} → ${formatValue(g.rootTotal, g.unit)} ` +
          `(${formatChange(change, g.unit)}, ${formatRelative(g.rootBase, g.rootTotal)})`,
      ),
    );
    this.legend.hidden = false;
  }

  // ------------------------------------------------------------------ drawing

  requestRender() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** Index of the first node of level `d` whose extent reaches past `x`. */
  firstAt(d, x) {
    const g = this.graph;
    let lo = g.levelStart[d];
    let hi = g.levelStart[d + 1];
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (g.start[mid] + g.width[mid] <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Levels down to the deepest one with a frame inside the zoomed frame (all of them when not zoomed). */
  visibleLevels() {
    const g = this.graph;
    if (this.zoomNode === 0) return g.levels;
    const x0 = g.start[this.zoomNode];
    const x1 = x0 + g.width[this.zoomNode];
    let d = g.depth[this.zoomNode] + 1;
    while (d < g.levels) {
      const i = this.firstAt(d, x0);
      if (!(i < g.levelStart[d + 1] && g.start[i] < x1)) break;
      d++;
    }
    return d;
  }

  /** Visible value range [x0, x1) and the scale to CSS pixels. */
  viewport() {
    const g = this.graph;
    const z = this.zoomNode;
    const x0 = g.start[z];
    const span = g.width[z] || 1;
    return { x0, x1: x0 + span, scale: this.cssWidth / span };
  }

  render() {
    const t0 = performance.now();
    const g = this.graph;
    const dpr = window.devicePixelRatio || 1;
    const cssWidth = Math.max(1, this.wrap.getBoundingClientRect().width); // fractional: exact device pixels
    const rows = g && g.rootWidth > 0 ? this.visibleLevels() : 0;
    const cssHeight = Math.max(rows * ROW, g && g.rootWidth > 0 ? ROW : 120);
    this.cssWidth = cssWidth;
    const pw = Math.round(cssWidth * dpr);
    const ph = Math.round(cssHeight * dpr);
    if (this.canvas.width !== pw || this.canvas.height !== ph) {
      this.canvas.width = pw;
      this.canvas.height = ph;
      this.canvas.style.height = `${cssHeight}px`;
    }
    if (this.dpr !== dpr || !this.pattern) {
      this.dpr = dpr;
      this.pattern = hatch(dpr);
    }
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, cssWidth, cssHeight);
    if (!g) this.empty.textContent = this.messageText || "";
    else if (g.rootWidth <= 0) this.empty.textContent = "No samples in this range.";
    this.empty.hidden = g ? g.rootWidth > 0 : !this.messageText;
    this.reset.hidden = !g || this.zoomNode === 0;
    if (!g || g.rootWidth <= 0) {
      this.drawn = { count: 0 };
      this.lastRenderMs = performance.now() - t0;
      return;
    }
    ctx.font = FONT;
    ctx.textBaseline = "middle";
    if (!this.charWidth) this.charWidth = ctx.measureText("MMMMMMMMMM").width / 10;
    const { x0: vx0, x1: vx1, scale } = this.viewport();
    const matched = this.matched;
    const zoomDepth = g.depth[this.zoomNode];
    const { index: drawnIndex, x: drawnX, w: drawnW } = this.buffers;
    let drawnCount = 0;
    let merged = 0;
    let runs = 0;
    const other = g.otherName;
    const labels = this.buffers.labels; // (node, x, width, y) per box wide enough for a label
    let labelCount = 0;

    for (let d = 0; d < rows; d++) {
      const y = d * ROW;
      const end = g.levelStart[d + 1];
      let runStart = -1; // a run of merged sub-pixel boxes: [runStart, runEnd) px, coloured like its first box
      let runEnd = -1;
      let runFill = "";
      const flush = () => {
        if (runStart < 0) return;
        ctx.fillStyle = runFill;
        ctx.fillRect(runStart, y, Math.max(runEnd - runStart, 0.5), ROW - 1);
        runs++;
        runStart = -1;
      };
      for (let i = this.firstAt(d, vx0); i < end && g.start[i] < vx1; i++) {
        const w = g.width[i];
        if (w <= 0) continue;
        let x = (g.start[i] - vx0) * scale;
        let right = x + w * scale;
        if (x < 0) x = 0;
        if (right > cssWidth) right = cssWidth;
        const pxw = right - x;
        const fill = this.fillFor(i, matched, other);
        if (pxw < MIN_WIDTH) {
          merged++;
          // gaps narrower than a pixel cannot be shown anyway: one box for the whole run
          if (runStart >= 0 && x - runEnd < MIN_WIDTH) {
            runEnd = Math.max(runEnd, right);
          } else {
            flush();
            runStart = x;
            runEnd = right;
            runFill = fill;
          }
          continue;
        }
        flush();
        ctx.fillStyle = fill;
        // a 1 px gap on the right separates siblings; ancestors of the zoomed frame are drawn faded
        ctx.globalAlpha = d < zoomDepth ? 0.6 : 1;
        ctx.fillRect(x, y, pxw > 2 ? pxw - 1 : pxw, ROW - 1);
        ctx.globalAlpha = 1;
        drawnIndex[drawnCount] = i;
        drawnX[drawnCount] = x;
        drawnW[drawnCount] = pxw;
        drawnCount++;
        if (pxw >= this.charWidth * 2 + LABEL_PAD * 2) {
          labels[labelCount++] = i;
          labels[labelCount++] = x;
          labels[labelCount++] = pxw;
          labels[labelCount++] = y;
        }
      }
      flush();
    }
    // Labels after boxes, in one pass, so the font and colour change rarely.
    for (let j = 0; j < labelCount; j += 4) {
      const i = labels[j];
      const text = this.labelFor(g.names[g.name[i]], labels[j + 2] - 1 - LABEL_PAD * 2);
      if (!text) continue;
      const dim = matched && !matched[i];
      ctx.fillStyle = dim ? DIM_TEXT : TEXT;
      ctx.fillText(text, labels[j + 1] + LABEL_PAD, labels[j + 3] + (ROW - 1) / 2 + 0.5);
    }
    this.drawn = { count: drawnCount, index: drawnIndex, x: drawnX, w: drawnW, merged, runs, labels: labelCount / 4 };
    this.renders++;
    this.lastRenderMs = performance.now() - t0;
    if (this.hover >= 0) this.placeHoverBox(this.hover);
  }

  fillFor(i, matched, other) {
    const g = this.graph;
    if (matched && !matched[i]) return DIM;
    const nameIndex = g.name[i];
    if (nameIndex === other) return this.pattern;
    if (g.diff) return (g.fill[i] ??= diffColor(g.baseTotal[i], g.total[i]));
    if (i === 0) return ROOT_FILL;
    return (g.fill[nameIndex] ??= functionColor(g.names[nameIndex]));
  }

  /** The label that fits `px`: the full name, else without the package's directory, else cut with "…". */
  labelFor(fnName, px) {
    const fit = Math.floor(px / this.charWidth);
    if (fit < 2) return "";
    if (fnName.length <= fit) return fnName;
    const pkgEnd = packageOf(fnName).length;
    const slash = fnName.lastIndexOf("/", pkgEnd);
    const short = slash >= 0 ? fnName.slice(slash + 1) : fnName;
    if (short.length <= fit) return short;
    return `${short.slice(0, fit - 1)}…`;
  }

  // ------------------------------------------------------------------ pointer

  /** The node under CSS pixel (x, y) of the canvas, or -1. */
  nodeAt(px, py) {
    const g = this.graph;
    if (!g || g.rootWidth <= 0) return -1;
    const d = Math.floor(py / ROW);
    if (d < 0 || d >= g.levels || py - d * ROW > ROW - 1) return -1;
    const { x0, x1, scale } = this.viewport();
    const x = x0 + px / scale;
    if (x < x0 || x >= x1) return -1;
    const i = this.firstAt(d, x);
    if (i < g.levelStart[d + 1] && g.start[i] <= x && g.width[i] > 0) return i;
    return -1;
  }

  onMove(e) {
    const rect = this.canvas.getBoundingClientRect();
    const i = this.nodeAt(e.clientX - rect.left, e.clientY - rect.top);
    this.setHover(i);
    if (i >= 0) this.showTooltip(i, e.clientX, e.clientY);
  }

  onClick(e) {
    const rect = this.canvas.getBoundingClientRect();
    const i = this.nodeAt(e.clientX - rect.left, e.clientY - rect.top);
    if (i < 0) return;
    if (this.options.onSelect && (e.metaKey || e.ctrlKey)) {
      this.options.onSelect(this.graph.names[this.graph.name[i]]);
      return;
    }
    if (i !== this.zoomNode) this.zoomTo(i, { notify: true });
  }

  setHover(i) {
    this.hover = i;
    this.canvas.style.cursor = i >= 0 ? "pointer" : "default";
    if (i < 0) {
      this.hoverBox.hidden = true;
      this.tooltip.hidden = true;
      return;
    }
    this.placeHoverBox(i);
  }

  placeHoverBox(i) {
    const g = this.graph;
    const { x0, scale } = this.viewport();
    const x = Math.max(0, (g.start[i] - x0) * scale);
    const right = Math.min(this.cssWidth, (g.start[i] + g.width[i] - x0) * scale);
    const box = this.hoverBox;
    box.style.left = `${x}px`;
    box.style.top = `${g.depth[i] * ROW}px`;
    box.style.width = `${Math.max(right - x - 1, 1)}px`;
    box.style.height = `${ROW - 1}px`;
    box.hidden = false;
  }

  showTooltip(i, clientX, clientY) {
    const g = this.graph;
    const tip = this.tooltip;
    const fnName = g.names[g.name[i]];
    const row = (label, ...cells) => {
      const tr = el("tr");
      tr.append(el("th", "", label), ...cells.map((c) => el("td", "", c)));
      return tr;
    };
    const table = el("table", "fg-tip-table");
    tip.dataset.name = fnName;
    tip.dataset.total = String(g.total[i]);
    tip.dataset.self = String(g.self[i]);
    if (g.diff) {
      tip.dataset.baseTotal = String(g.baseTotal[i]);
      tip.dataset.baseSelf = String(g.baseSelf[i]);
      const head = el("tr");
      head.append(el("th"), el("th", "", "Base"), el("th", "", "Comparison"), el("th", "", "Change"));
      table.append(
        head,
        row(
          "Total",
          `${formatValue(g.baseTotal[i], g.unit)} (${formatPercent(g.baseTotal[i], g.rootBase)})`,
          `${formatValue(g.total[i], g.unit)} (${formatPercent(g.total[i], g.rootTotal)})`,
          `${formatChange(g.total[i] - g.baseTotal[i], g.unit)} (${formatRelative(g.baseTotal[i], g.total[i])})`,
        ),
        row(
          "Self",
          `${formatValue(g.baseSelf[i], g.unit)} (${formatPercent(g.baseSelf[i], g.rootBase)})`,
          `${formatValue(g.self[i], g.unit)} (${formatPercent(g.self[i], g.rootTotal)})`,
          `${formatChange(g.self[i] - g.baseSelf[i], g.unit)} (${formatRelative(g.baseSelf[i], g.self[i])})`,
        ),
      );
    } else {
      delete tip.dataset.baseTotal;
      delete tip.dataset.baseSelf;
      table.append(
        row("Total", formatValue(g.total[i], g.unit), formatPercent(g.total[i], g.rootTotal)),
        row("Self", formatValue(g.self[i], g.unit), formatPercent(g.self[i], g.rootTotal)),
      );
    }
    const title = el("div", "fg-tip-name", i === 0 ? "total" : fnName);
    const hint = el(
      "div",
      "fg-tip-hint",
      fnName === OTHER
        ? "Small frames folded together by the server (max_nodes)"
        : i === this.zoomNode
          ? i === 0
            ? ""
            : "Zoomed in · Esc or click an ancestor to zoom out"
          : "Click to zoom in",
    );
    tip.replaceChildren(title, table);
    if (hint.textContent) tip.append(hint);
    tip.hidden = false;
    const pad = 14;
    const { width, height } = tip.getBoundingClientRect();
    let left = clientX + pad;
    let top = clientY + pad;
    if (left + width > window.innerWidth - 8) left = Math.max(8, clientX - width - pad);
    if (top + height > window.innerHeight - 8) top = Math.max(8, clientY - height - pad);
    tip.style.left = `${left}px`;
    tip.style.top = `${top}px`;
  }

  // ------------------------------------------------------------------ tests and benchmarks

  /** A read-only view for tests and benchmarks: what was drawn where (page CSS px), and the view state. */
  debugApi() {
    const self = this;
    return {
      state() {
        const g = self.graph;
        return {
          nodes: g ? g.n : 0,
          diff: g ? g.diff : false,
          unit: g ? g.unit : "",
          zoom: self.zoomPath(),
          zoomName: g && self.zoomNode > 0 ? g.names[g.name[self.zoomNode]] : "",
          search: self.search.value,
          highlighted: self.highlighted,
          match: self.matchInfo ? { ...self.matchInfo } : null,
          drawn: self.drawn ? self.drawn.count : 0,
          merged: self.drawn ? self.drawn.merged || 0 : 0,
          mergedBoxes: self.drawn ? self.drawn.runs || 0 : 0,
          renders: self.renders,
          lastRenderMs: self.lastRenderMs,
          decodeMs: self.decodeMs || 0,
        };
      },
      /** Drawn boxes (not the merged sub-pixel ones), optionally only those of one function. */
      rects(fnName = null) {
        const g = self.graph;
        const drawn = self.drawn;
        if (!g || !drawn || !drawn.count) return [];
        const box = self.canvas.getBoundingClientRect();
        const out = [];
        for (let k = 0; k < drawn.count; k++) {
          const i = drawn.index[k];
          const name = g.names[g.name[i]];
          if (fnName !== null && name !== fnName) continue;
          out.push({
            name,
            x: box.left + drawn.x[k],
            y: box.top + g.depth[i] * ROW,
            w: drawn.w[k],
            h: ROW - 1,
            depth: g.depth[i],
            total: g.total[i],
            self: g.self[i],
            baseTotal: g.diff ? g.baseTotal[i] : null,
            baseSelf: g.diff ? g.baseSelf[i] : null,
            matched: self.matched ? Boolean(self.matched[i]) : null,
          });
        }
        return out;
      },
      render() {
        self.render();
        return self.lastRenderMs;
      },
    };
  }
}
