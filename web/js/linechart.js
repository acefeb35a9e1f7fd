// A line chart in SVG: one line per series plus an optional total, with axes, clickable points and their
// values on hover. The goroutines page and the Leaks page's trend share it.
// SVG rather than canvas: a few hundred points at most, and every point is an element the user can click
// (and a test can find) with its time and value on it.

import { formatValue } from "./format.js";
import { formatDateTime } from "./time.js";
import { legendItem, SERIES_COLORS as LINE_COLORS } from "./legend.js";

const NS = "http://www.w3.org/2000/svg";
const HEIGHT = 260;
const PAD = { left: 56, right: 16, top: 12, bottom: 26 };

const svgEl = (tag, attrs = {}) => {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
};

function niceMax(x) {
  if (x <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

export class LineChart {
  /**
   * `onPick({series, t, v})` when a point is clicked; `series` is null for the total line. `label` names the
   * chart for screen readers, `empty` is what an empty chart says.
   */
  constructor(container, { onPick, label = "Goroutine counts over time", empty = "No goroutine profiles in this range." } = {}) {
    this.onPick = onPick;
    this.label = label;
    this.emptyText = empty;
    this.data = null;
    this.selected = null;
    this.root = document.createElement("div");
    this.root.className = "linechart";
    this.plot = document.createElement("div");
    this.plot.className = "linechart-plot";
    this.message = document.createElement("div");
    this.message.className = "linechart-message";
    this.tip = document.createElement("div");
    this.tip.className = "timeline-tip";
    this.tip.hidden = true;
    this.legend = document.createElement("div");
    this.legend.className = "timeline-legend";
    this.plot.append(this.message, this.tip);
    this.root.append(this.plot, this.legend);
    container.replaceChildren(this.root);
    new ResizeObserver(() => this.render()).observe(this.plot);
  }

  /** `series`: [{key, name, points: [[unix s, value]]}]; `total`: the same shape or null. */
  setData({ series, total, unit, fromMs, toMs, step }) {
    this.data = { series, total, unit, fromMs, toMs, step };
    this.message.textContent = series.length ? "" : this.emptyText;
    this.legend.replaceChildren();
    const items = total ? [...series, total] : series;
    items.forEach((s, k) => {
      const last = s.points.length ? s.points[s.points.length - 1][1] : null;
      const color = s === total ? "#1b2130" : LINE_COLORS[k % LINE_COLORS.length];
      const item = legendItem(color, `${s.name}${last === null ? "" : ` · ${formatValue(last, unit)}`}`);
      item.dataset.key = s.key;
      this.legend.append(item);
    });
    this.render();
  }

  setMessage(text) {
    this.data = null;
    this.message.textContent = text;
    this.legend.replaceChildren();
    this.render();
  }

  select(key, t) {
    this.selected = key === null && t === null ? null : { key, t };
    for (const c of this.plot.querySelectorAll("circle.point")) {
      c.classList.toggle("selected", Boolean(this.selected) && c.dataset.key === this.selected.key && Number(c.dataset.t) === this.selected.t);
    }
  }

  render() {
    const old = this.plot.querySelector("svg");
    if (old) old.remove();
    const d = this.data;
    if (!d || !(d.toMs > d.fromMs)) return;
    const width = Math.max(200, this.plot.getBoundingClientRect().width);
    const svg = svgEl("svg", { class: "linechart-svg", width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img" });
    svg.setAttribute("aria-label", this.label);
    const all = [...d.series, ...(d.total ? [d.total] : [])];
    const max = Math.max(0, ...all.flatMap((s) => s.points.map((p) => p[1])));
    const top = niceMax(max * 1.05);
    const plotW = width - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + ((t * 1000 - d.fromMs) / (d.toMs - d.fromMs)) * plotW;
    const y = (v) => PAD.top + plotH - (v / top) * plotH;
    for (let k = 0; k <= 4; k++) {
      const v = (top * k) / 4;
      const yy = Math.round(y(v)) + 0.5;
      svg.append(svgEl("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: yy, y2: yy }));
      const label = svgEl("text", { class: "axis", x: PAD.left - 8, y: yy + 4, "text-anchor": "end" });
      label.textContent = formatValue(v, d.unit);
      svg.append(label);
    }
    const ticks = Math.max(2, Math.floor(plotW / 140));
    for (let k = 0; k <= ticks; k++) {
      const ms = d.fromMs + ((d.toMs - d.fromMs) * k) / ticks;
      const label = svgEl("text", { class: "axis", x: PAD.left + (plotW * k) / ticks, y: HEIGHT - 8, "text-anchor": k === 0 ? "start" : k === ticks ? "end" : "middle" });
      label.textContent = formatDateTime(ms).slice(11, 16);
      svg.append(label);
    }
    // the total first, so each instance's points stay on top (clickable) where the lines meet
    const drawOrder = d.total ? [d.total, ...d.series] : d.series;
    drawOrder.forEach((s) => {
      const isTotal = s === d.total;
      const color = isTotal ? "#1b2130" : LINE_COLORS[d.series.indexOf(s) % LINE_COLORS.length];
      const g = svgEl("g", { class: `line${isTotal ? " total" : ""}` });
      g.dataset.key = s.key;
      if (s.points.length > 1) {
        const points = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
        g.append(svgEl("polyline", { points, stroke: color }));
      }
      for (const [t, v] of s.points) {
        const c = svgEl("circle", { class: "point", cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 4, fill: color });
        c.dataset.key = s.key;
        c.dataset.t = String(t);
        c.dataset.v = String(v);
        if (this.selected && this.selected.key === s.key && this.selected.t === t) c.classList.add("selected");
        c.addEventListener("mouseenter", () => this.showTip(c, `${s.name} · ${formatDateTime(t * 1000)} · ${formatValue(v, d.unit)}`));
        c.addEventListener("mouseleave", () => (this.tip.hidden = true));
        c.addEventListener("click", () => {
          if (this.onPick) this.onPick({ series: isTotal ? null : s, t, v });
        });
        g.append(c);
      }
      svg.append(g);
    });
    this.plot.prepend(svg);
  }

  showTip(circle, text) {
    this.tip.textContent = text;
    this.tip.hidden = false;
    const box = this.plot.getBoundingClientRect();
    const c = circle.getBoundingClientRect();
    const w = this.tip.offsetWidth;
    this.tip.style.left = `${Math.min(Math.max(c.left - box.left - w / 2, 0), box.width - w)}px`;
    this.tip.style.top = `${Math.max(0, c.top - box.top - 30)}px`;
  }
}
