// The timeline: totals per step of the selected series (from /api/v1/timeseries) as stacked bars on a
// canvas. Dragging across it selects a time range.

import { formatDateTime, formatValue } from "./format.js";
import { legendItem, SERIES_COLORS } from "./legend.js";

const HEIGHT = 132;
const PAD = { left: 64, right: 12, top: 10, bottom: 22 };
const MAX_STACKED = SERIES_COLORS.length; // more series than this are drawn as one total
const TICKS = [
  1e3, 5e3, 15e3, 30e3, 60e3, 2 * 60e3, 5 * 60e3, 10 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 2 * 3600e3, 3 * 3600e3,
  6 * 3600e3, 12 * 3600e3, 86400e3, 2 * 86400e3, 7 * 86400e3, 14 * 86400e3, 30 * 86400e3,
];

const pad2 = (n) => String(n).padStart(2, "0");

function tickLabel(ms, stepMs) {
  const d = new Date(ms);
  const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  if (stepMs < 60e3) return `${hm}:${pad2(d.getSeconds())}`;
  if (stepMs >= 86400e3) return `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  if (d.getHours() === 0 && d.getMinutes() === 0) return `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  return hm;
}

/** A round number at least `x`: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^k (× 1024^j for bytes). */
function niceCeil(x, unit) {
  if (x <= 0) return 1;
  if (unit === "bytes" && x >= 1024) {
    const base = 1024 ** Math.floor(Math.log(x) / Math.log(1024));
    return niceCeil(x / base) * base;
  }
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

/** "service=demo, env=prod" from the labels that tell the series apart. */
function seriesNames(series) {
  const keys = new Set(series.flatMap((s) => Object.keys(s.labels)));
  const varying = [...keys].filter((k) => new Set(series.map((s) => s.labels[k] ?? "")).size > 1);
  const shown = varying.length ? varying : [...keys].slice(0, 1);
  return series.map((s) => shown.map((k) => `${k}=${s.labels[k] ?? ""}`).join(", ") || "all");
}

export class Timeline {
  /** `onSelect(fromMs, toMs)` after a drag across the plot; `onPick(stepStartMs, stepEndMs)` after a click on a bar. */
  constructor(container, { onSelect, onPick } = {}) {
    this.onSelect = onSelect;
    this.onPick = onPick;
    this.data = null;
    this.root = document.createElement("div");
    this.root.className = "timeline";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "timeline-canvas";
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", "Totals over time; drag to select a range");
    this.selection = document.createElement("div");
    this.selection.className = "timeline-selection";
    this.selection.hidden = true;
    this.cursor = document.createElement("div");
    this.cursor.className = "timeline-cursor";
    this.cursor.hidden = true;
    this.tip = document.createElement("div");
    this.tip.className = "timeline-tip";
    this.tip.hidden = true;
    this.message = document.createElement("div");
    this.message.className = "timeline-message";
    this.legend = document.createElement("div");
    this.legend.className = "timeline-legend";
    this.plot = document.createElement("div");
    this.plot.className = "timeline-plot";
    this.marks = [];
    this.markLayer = document.createElement("div");
    this.markLayer.className = "timeline-marks";
    this.plot.append(this.canvas, this.markLayer, this.selection, this.cursor, this.tip, this.message);
    this.root.append(this.plot, this.legend);
    container.replaceChildren(this.root);
    this.ctx = this.canvas.getContext("2d");
    this.drag = null;
    this.canvas.addEventListener("mousedown", (e) => this.onDown(e));
    window.addEventListener("mousemove", (e) => this.onMove(e));
    window.addEventListener("mouseup", (e) => this.onUp(e));
    this.canvas.addEventListener("mouseleave", () => {
      this.cursor.hidden = true;
      this.tip.hidden = true;
    });
    new ResizeObserver(() => this.render()).observe(this.plot);
  }

  /** `response` from /api/v1/timeseries over [fromMs, toMs]. */
  setData(response, fromMs, toMs) {
    const series = response.series || [];
    const stepMs = (response.step || 60) * 1000;
    const stacked = series.length <= MAX_STACKED ? series : [{ labels: {}, points: series.flatMap((s) => s.points) }];
    const names = series.length <= MAX_STACKED ? seriesNames(series) : [`${series.length} series (total)`];
    // stack per step start: Map(t → values per series)
    const steps = new Map();
    stacked.forEach((s, k) => {
      for (const [t, v] of s.points) {
        const key = t * 1000;
        if (!steps.has(key)) steps.set(key, new Float64Array(stacked.length));
        steps.get(key)[k] += v;
      }
    });
    this.data = { steps, stepMs, fromMs, toMs, unit: response.unit, names, sampleType: response.sample_type };
    this.message.textContent = steps.size ? "" : "No profiles in this range.";
    this.legend.replaceChildren();
    if (names.length > 1 || series.length > MAX_STACKED) {
      names.forEach((n, k) => {
        this.legend.append(legendItem(SERIES_COLORS[k % SERIES_COLORS.length], n));
      });
    }
    this.render();
  }

  setMessage(text) {
    this.data = null;
    this.message.textContent = text;
    this.legend.replaceChildren();
    this.render();
  }

  xOf(ms) {
    const d = this.data;
    return PAD.left + ((ms - d.fromMs) / (d.toMs - d.fromMs)) * (this.width - PAD.left - PAD.right);
  }

  msOf(x) {
    const d = this.data;
    const plotW = this.width - PAD.left - PAD.right;
    const clamped = Math.min(Math.max(x, PAD.left), PAD.left + plotW);
    return d.fromMs + ((clamped - PAD.left) / plotW) * (d.toMs - d.fromMs);
  }

  render() {
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(1, this.plot.getBoundingClientRect().width);
    this.width = width;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(HEIGHT * dpr);
    this.canvas.style.height = `${HEIGHT}px`;
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, HEIGHT);
    const d = this.data;
    if (!d || !(d.toMs > d.fromMs)) return;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const bottom = PAD.top + plotH;
    let max = 0;
    for (const values of d.steps.values()) {
      let sum = 0;
      for (const v of values) sum += v;
      if (sum > max) max = sum;
    }
    const top = niceCeil(max * 1.05, d.unit);
    ctx.font = '11px system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif';
    ctx.textBaseline = "middle";
    // y grid
    ctx.strokeStyle = "#e9ecf1";
    ctx.fillStyle = "#6b7385";
    ctx.textAlign = "right";
    ctx.lineWidth = 1;
    for (let k = 0; k <= 2; k++) {
      const v = (top * k) / 2;
      const y = Math.round(bottom - (v / top) * plotH) + 0.5;
      ctx.beginPath();
      ctx.moveTo(PAD.left, y);
      ctx.lineTo(width - PAD.right, y);
      ctx.stroke();
      if (max > 0 || k === 0) ctx.fillText(formatValue(v, d.unit), PAD.left - 8, y);
    }
    // x ticks
    const span = d.toMs - d.fromMs;
    const plotW = width - PAD.left - PAD.right;
    const want = Math.max(2, Math.floor(plotW / 110));
    const tick = TICKS.find((t) => span / t <= want) || TICKS[TICKS.length - 1];
    const offset = new Date().getTimezoneOffset() * 60e3; // align ticks to local midnight/hours
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let t = Math.ceil((d.fromMs - offset) / tick) * tick + offset; t <= d.toMs; t += tick) {
      const x = Math.round(this.xOf(t)) + 0.5;
      ctx.strokeStyle = "#f1f3f6";
      ctx.beginPath();
      ctx.moveTo(x, PAD.top);
      ctx.lineTo(x, bottom);
      ctx.stroke();
      ctx.fillStyle = "#6b7385";
      ctx.fillText(tickLabel(t, tick), x, bottom + 6);
    }
    // bars, stacked per series
    for (const [t, values] of d.steps) {
      const x0 = Math.max(PAD.left, this.xOf(t));
      const x1 = Math.min(width - PAD.right, this.xOf(t + d.stepMs));
      if (x1 < PAD.left || x0 > width - PAD.right) continue;
      const w = Math.max(2, x1 - x0 - (x1 - x0 > 4 ? 1 : 0));
      let y = bottom;
      values.forEach((v, k) => {
        if (!v || !top) return;
        const h = Math.max(1, (v / top) * plotH);
        ctx.fillStyle = SERIES_COLORS[k % SERIES_COLORS.length];
        ctx.fillRect(x0, y - h, w, h);
        y -= h;
      });
    }
    ctx.strokeStyle = "#c9ced8";
    ctx.beginPath();
    ctx.moveTo(PAD.left, bottom + 0.5);
    ctx.lineTo(width - PAD.right, bottom + 0.5);
    ctx.stroke();
    this.renderMarks();
  }

  /** A click: the step under `x`, when it has data. */
  pick(x) {
    const d = this.data;
    if (!this.onPick || !d) return;
    const ms = this.msOf(x);
    for (const t of d.steps.keys()) {
      if (ms >= t && ms < t + d.stepMs) {
        this.onPick(t, t + d.stepMs);
        return;
      }
    }
  }

  /** Ranges to show over the plot: `[{fromMs, toMs, label, className}]` (the diff page's base and comparison). */
  setMarks(marks) {
    this.marks = marks || [];
    this.renderMarks();
  }

  renderMarks() {
    const d = this.data;
    this.markLayer.replaceChildren();
    if (!d || !(d.toMs > d.fromMs)) return;
    const right = this.width - PAD.right;
    for (const m of this.marks) {
      if (!(m.toMs > m.fromMs)) continue;
      const x0 = Math.max(PAD.left, Math.min(right, this.xOf(m.fromMs)));
      const x1 = Math.max(PAD.left, Math.min(right, this.xOf(m.toMs)));
      const box = document.createElement("div");
      box.className = `timeline-mark ${m.className || ""}`;
      box.style.left = `${x0}px`;
      box.style.width = `${Math.max(2, x1 - x0)}px`;
      box.style.top = `${PAD.top}px`;
      box.style.height = `${HEIGHT - PAD.top - PAD.bottom}px`;
      const label = document.createElement("span");
      label.textContent = m.label || "";
      box.append(label);
      this.markLayer.append(box);
    }
  }

  // ---------------------------------------------------------------- pointer: hover read-out and drag

  localX(e) {
    return e.clientX - this.canvas.getBoundingClientRect().left;
  }

  onDown(e) {
    if (!this.data || e.button !== 0) return;
    e.preventDefault();
    this.drag = { x0: this.localX(e), x1: this.localX(e) };
  }

  onMove(e) {
    if (!this.data) return;
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left;
    const inside = x >= PAD.left && x <= this.width - PAD.right && e.clientY >= rect.top && e.clientY <= rect.bottom;
    if (this.drag) {
      this.drag.x1 = Math.min(Math.max(x, PAD.left), this.width - PAD.right);
      const a = Math.min(Math.max(this.drag.x0, PAD.left), this.width - PAD.right);
      const left = Math.min(a, this.drag.x1);
      this.selection.style.left = `${left}px`;
      this.selection.style.width = `${Math.abs(this.drag.x1 - a)}px`;
      this.selection.style.top = `${PAD.top}px`;
      this.selection.style.height = `${HEIGHT - PAD.top - PAD.bottom}px`;
      this.selection.hidden = false;
    }
    if (!inside) {
      this.cursor.hidden = true;
      this.tip.hidden = true;
      return;
    }
    this.cursor.style.left = `${Math.round(x)}px`;
    this.cursor.style.top = `${PAD.top}px`;
    this.cursor.style.height = `${HEIGHT - PAD.top - PAD.bottom}px`;
    this.cursor.hidden = false;
    const ms = this.msOf(x);
    const d = this.data;
    let text = formatDateTime(ms);
    for (const [t, values] of d.steps) {
      if (ms >= t && ms < t + d.stepMs) {
        const sum = values.reduce((a, b) => a + b, 0);
        text = `${formatDateTime(t)} · ${formatValue(sum, d.unit)}`;
        break;
      }
    }
    this.tip.textContent = this.drag ? `${formatDateTime(this.msOf(Math.min(this.drag.x0, this.drag.x1)))} → ${formatDateTime(this.msOf(Math.max(this.drag.x0, this.drag.x1)))}` : text;
    this.tip.hidden = false;
    const tipW = this.tip.offsetWidth;
    this.tip.style.left = `${Math.min(Math.max(x - tipW / 2, 0), this.width - tipW)}px`;
  }

  onUp(e) {
    if (!this.drag) return;
    const { x0 } = this.drag;
    const x1 = Math.min(Math.max(this.localX(e), PAD.left), this.width - PAD.right);
    this.drag = null;
    this.selection.hidden = true;
    if (Math.abs(x1 - x0) < 4) {
      this.pick(x1);
      return;
    }
    if (!this.onSelect) return;
    const a = this.msOf(Math.min(x0, x1));
    const b = this.msOf(Math.max(x0, x1));
    if (b - a >= 1000) this.onSelect(a, b);
  }
}
