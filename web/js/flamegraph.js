// The flame graph: Stackyard's compact levels format (docs/api.md) drawn as an icicle on a <canvas>, with a
// toolbar (search, match share, reset zoom), a diff legend and a tooltip.
//
// This module is the view: it holds the view state (data, zoom, search, hover) and wires the pointer and
// keys to it. The pieces it uses are in flamegraph/: decode.js (the decoded graph and its lookups),
// draw.js (the canvas drawing), colors.js (colours and the diff legend), search.js and tooltip.js.
// Zooming shows one node's extent full width; its ancestors, which contain that extent, stay above it.

import { el } from "./dom.js";
import { hatch, showDiffLegend } from "./flamegraph/colors.js";
import { decodeFlamegraph, findPath, firstAt, pathOf, visibleLevels } from "./flamegraph/decode.js";
import { drawGraph, prepareDraw, ROW, viewport } from "./flamegraph/draw.js";
import { compileSearch, matchFrames, showMatchSummary } from "./flamegraph/search.js";
import { showTooltip } from "./flamegraph/tooltip.js";

// What the pages, the top table and the tests import from here.
export { diffColor, functionColor, packageColor, packageOf } from "./flamegraph/colors.js";
export { decodeFlamegraph } from "./flamegraph/decode.js";
export { compileSearch } from "./flamegraph/search.js";

/**
 * A flame graph in `container`: toolbar (search, match share, reset zoom), diff legend, canvas, tooltip.
 *
 * Options: `onViewChange({zoom, search})` after the user zooms or searches (for the URL);
 * `onSelect(name)` when the user picks a frame's function with a modifier click (optional);
 * `onFrameClick(name)` replaces zooming on a click (the sandwich re-centres on the frame's function);
 * `inverted` draws the root at the bottom and its children above (a sandwich's callers);
 * `emptyText` what an empty graph says; `debugName` where tests find it under `window.__stackyard`.
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
    this.empty = el("div", "fg-empty", options.emptyText || "No samples in this range.");
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
    window.__stackyard[options.debugName || "flamegraph"] = this.debugApi(); // tests read each graph by name
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
    const g = this.graph;
    this.buffers = prepareDraw(g);
    this.zoomNode = 0;
    if (zoomPath) this.zoomNode = findPath(g, zoomPath);
    this.computeMatches();
    showDiffLegend(this.legend, g);
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
    return pathOf(this.graph, this.zoomNode);
  }

  /** The node a zoom path names, or the root (0) when one of its frames is not in the graph. */
  findPath(path) {
    return findPath(this.graph, path);
  }

  /** The frames the search or the highlighted function match, and the toolbar's summary of them. */
  computeMatches() {
    const g = this.graph;
    this.matched = null;
    this.matchInfo = null;
    const test = this.highlighted ? (s) => s === this.highlighted : this.matcher.test;
    if (g && test) {
      const { matched, count, total, base } = matchFrames(g, test);
      this.matched = matched;
      this.matchInfo = { count, total, base, label: this.highlighted || this.search.value.trim() };
    }
    this.clear.hidden = !this.matchInfo;
    showMatchSummary(this.summary, g, this.matchInfo, { highlighted: this.highlighted, error: this.matcher.error });
  }

  // ------------------------------------------------------------------ drawing

  requestRender() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** Visible value range [x0, x1) and the scale to CSS pixels. */
  viewport() {
    return viewport(this.graph, this.zoomNode, this.cssWidth);
  }

  render() {
    const t0 = performance.now();
    const g = this.graph;
    const dpr = window.devicePixelRatio || 1;
    const cssWidth = Math.max(1, this.wrap.getBoundingClientRect().width); // fractional: exact device pixels
    const rows = g && g.rootWidth > 0 ? visibleLevels(g, this.zoomNode) : 0;
    this.rows = rows;
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
    else if (g.rootWidth <= 0) this.empty.textContent = this.options.emptyText || "No samples in this range.";
    this.empty.hidden = g ? g.rootWidth > 0 : !this.messageText;
    this.reset.hidden = !g || this.zoomNode === 0;
    if (!g || g.rootWidth <= 0) {
      this.drawn = { count: 0 };
      this.lastRenderMs = performance.now() - t0;
      return;
    }
    const view = {
      zoom: this.zoomNode,
      rows,
      cssWidth,
      matched: this.matched,
      pattern: this.pattern,
      buffers: this.buffers,
      inverted: Boolean(this.options.inverted),
    };
    this.drawn = drawGraph(ctx, g, view);
    this.renders++;
    this.lastRenderMs = performance.now() - t0;
    if (this.hover >= 0) this.placeHoverBox(this.hover);
  }

  // ------------------------------------------------------------------ pointer

  /** The node under CSS pixel (x, y) of the canvas, or -1. */
  nodeAt(px, py) {
    const g = this.graph;
    if (!g || g.rootWidth <= 0) return -1;
    const row = Math.floor(py / ROW);
    const d = this.options.inverted ? (this.rows || 0) - 1 - row : row;
    if (d < 0 || d >= g.levels || py - row * ROW > ROW - 1) return -1;
    const { x0, x1, scale } = this.viewport();
    const x = x0 + px / scale;
    if (x < x0 || x >= x1) return -1;
    const i = firstAt(g, d, x);
    if (i < g.levelStart[d + 1] && g.start[i] <= x && g.width[i] > 0) return i;
    return -1;
  }

  onMove(e) {
    const rect = this.canvas.getBoundingClientRect();
    const i = this.nodeAt(e.clientX - rect.left, e.clientY - rect.top);
    this.setHover(i);
    if (i >= 0) showTooltip(this.tooltip, this.graph, i, this.zoomNode, e.clientX, e.clientY);
  }

  onClick(e) {
    const rect = this.canvas.getBoundingClientRect();
    const i = this.nodeAt(e.clientX - rect.left, e.clientY - rect.top);
    if (i < 0) return;
    if (this.options.onFrameClick) {
      if (i > 0) this.options.onFrameClick(this.graph.names[this.graph.name[i]]);
      return;
    }
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
    box.style.top = `${this.rowY(g.depth[i])}px`;
    box.style.width = `${Math.max(right - x - 1, 1)}px`;
    box.style.height = `${ROW - 1}px`;
    box.hidden = false;
  }

  /** The CSS y of the row of depth `d` (the root's row is at the bottom when inverted). */
  rowY(d) {
    return (this.options.inverted ? (this.rows || 0) - 1 - d : d) * ROW;
  }

  /** The function name of node `i`. */
  nameOf(i) {
    return this.graph ? this.graph.names[this.graph.name[i]] : "";
  }

  /** Node `i`'s box in viewport CSS pixels (for a menu placed under it), or null when it is off screen. */
  nodeBox(i) {
    const g = this.graph;
    if (!g || i < 0 || i >= g.n) return null;
    const { x0, scale } = this.viewport();
    const canvas = this.canvas.getBoundingClientRect();
    const left = Math.max(0, (g.start[i] - x0) * scale);
    const right = Math.min(this.cssWidth, (g.start[i] + g.width[i] - x0) * scale);
    if (right <= left) return null;
    return { x: canvas.left + left, y: canvas.top + this.rowY(g.depth[i]), w: right - left, h: ROW - 1 };
  }

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
            y: box.top + self.rowY(g.depth[i]),
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
