// Drawing a decoded flame graph on a canvas: only the nodes inside the visible range of each level are
// visited (a binary search finds the first), nodes narrower than a pixel are merged into one box per run, and
// labels are drawn after the boxes in one pass. The work is bounded by pixels, not by nodes.

import { DIM, DIM_TEXT, functionColor, diffColor, packageOf, ROOT_FILL, TEXT } from "./colors.js";
import { firstAt } from "./decode.js";

export const ROW = 18; // CSS px per level, including a 1 px gap below each box
const FONT = '12px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace';
const LABEL_PAD = 4;
const MIN_WIDTH = 1; // boxes narrower than this (CSS px) are merged with their narrow neighbours
const charWidths = new WeakMap(); // per canvas context: the width of one character of FONT

/** The visible value range [x0, x1) when node `zoom` fills `cssWidth` pixels, and the scale to CSS pixels. */
export function viewport(g, zoom, cssWidth) {
  const x0 = g.start[zoom];
  const span = g.width[zoom] || 1;
  return { x0, x1: x0 + span, scale: cssWidth / span };
}

/**
 * What drawing keeps per graph: fills, computed when first drawn (per function name, its package's colour;
 * per node for a diff), and buffers for what a draw placed where, sized for every node once.
 */
export function prepareDraw(g) {
  g.fill = new Array(g.diff ? g.n : g.names.length);
  return {
    index: new Int32Array(g.n),
    x: new Float32Array(g.n),
    w: new Float32Array(g.n),
    labels: new Float64Array(g.n * 4),
  };
}

/**
 * Draw levels [0, rows) of graph `g` with node `zoom` filling `cssWidth` pixels; its ancestors, which
 * contain it, stay full width above it, faded. `matched` (per node, or null) dims the frames a search does
 * not match. Returns what was drawn: the boxes wide enough to be hit (`index`, `x`, `w`, `count`), and the
 * sub-pixel frames `merged` into `runs` boxes. `inverted` draws the root at the bottom, its children above it.
 */
export function drawGraph(ctx, g, { zoom, rows, cssWidth, matched, pattern, buffers, inverted = false }) {
  ctx.font = FONT;
  ctx.textBaseline = "middle";
  let charWidth = charWidths.get(ctx);
  if (!charWidth) {
    charWidth = ctx.measureText("MMMMMMMMMM").width / 10;
    charWidths.set(ctx, charWidth);
  }
  const { x0: vx0, x1: vx1, scale } = viewport(g, zoom, cssWidth);
  const zoomDepth = g.depth[zoom];
  const { index: drawnIndex, x: drawnX, w: drawnW } = buffers;
  let drawnCount = 0;
  let merged = 0;
  let runs = 0;
  const other = g.otherName;
  const labels = buffers.labels; // (node, x, width, y) per box wide enough for a label
  let labelCount = 0;

  for (let d = 0; d < rows; d++) {
    const y = (inverted ? rows - 1 - d : d) * ROW; // inverted: the root at the bottom (a sandwich's callers)
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
    for (let i = firstAt(g, d, vx0); i < end && g.start[i] < vx1; i++) {
      const w = g.width[i];
      if (w <= 0) continue;
      let x = (g.start[i] - vx0) * scale;
      let right = x + w * scale;
      if (x < 0) x = 0;
      if (right > cssWidth) right = cssWidth;
      const pxw = right - x;
      const fill = fillFor(g, i, matched, other, pattern);
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
      if (pxw >= charWidth * 2 + LABEL_PAD * 2) {
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
    const text = labelFor(g.names[g.name[i]], labels[j + 2] - 1 - LABEL_PAD * 2, charWidth);
    if (!text) continue;
    const dim = matched && !matched[i];
    ctx.fillStyle = dim ? DIM_TEXT : TEXT;
    ctx.fillText(text, labels[j + 1] + LABEL_PAD, labels[j + 3] + (ROW - 1) / 2 + 0.5);
  }
  return { count: drawnCount, index: drawnIndex, x: drawnX, w: drawnW, merged, runs, labels: labelCount / 4 };
}

function fillFor(g, i, matched, other, pattern) {
  if (matched && !matched[i]) return DIM;
  const nameIndex = g.name[i];
  if (nameIndex === other) return pattern;
  if (g.diff) return (g.fill[i] ??= diffColor(g.baseTotal[i], g.total[i]));
  if (i === 0) return ROOT_FILL;
  return (g.fill[nameIndex] ??= functionColor(g.names[nameIndex]));
}

/** The label that fits `px`: the full name, else without the package's directory, else cut with "…". */
function labelFor(fnName, px, charWidth) {
  const fit = Math.floor(px / charWidth);
  if (fit < 2) return "";
  if (fnName.length <= fit) return fnName;
  const pkgEnd = packageOf(fnName).length;
  const slash = fnName.lastIndexOf("/", pkgEnd);
  const short = slash >= 0 ? fnName.slice(slash + 1) : fnName;
  if (short.length <= fit) return short;
  return `${short.slice(0, fit - 1)}…`;
}
