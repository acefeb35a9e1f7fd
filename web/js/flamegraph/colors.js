// The flame graph's colours: a hue per Go package (a slight shade per function), red and green for a diff,
// a hatch for the frames the server folded into "other", and the diff's legend that explains them.

import { el } from "../dom.js";
import { formatChange, formatRelative, formatValue } from "../format.js";

export const DIM = "#e4e7ec"; // frames that do not match an active search
export const DIM_TEXT = "#9aa1ad";
export const TEXT = "#17202e";
export const ROOT_FILL = "#d9dde4";
const GREY = "#cfd3da"; // diff: unchanged

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

/** The fill of folded frames (“other”): grey diagonal stripes, sharp at this device pixel ratio. */
export function hatch(dpr) {
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

/** The diff legend in `box`: the colour scale from less to more, and the totals of both sides (hidden for a plain graph). */
export function showDiffLegend(box, g) {
  if (!g || !g.diff) {
    box.hidden = true;
    return;
  }
  const stops = [];
  for (let s = DIFF_STEPS; s >= 1; s--) stops.push(diffShade(-1, s / DIFF_STEPS));
  stops.push(GREY);
  for (let s = 1; s <= DIFF_STEPS; s++) stops.push(diffShade(1, s / DIFF_STEPS));
  const bar = el("span", "fg-legend-bar");
  bar.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  const change = g.rootTotal - g.rootBase;
  box.replaceChildren(
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
  box.hidden = false;
}
