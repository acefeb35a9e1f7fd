// Render benchmark for the flame graph (bench.html): a synthetic graph of N nodes, or a real API response.
// Every timing includes rasterisation: a 1-pixel getImageData read waits for the canvas to finish drawing.

import { $ } from "./dom.js";
import { FlameGraph } from "./flamegraph.js";

const params = new URLSearchParams(location.search);
const NODES = Number(params.get("nodes") || 20000);
const SRC = params.get("src");
const REPEAT = Number(params.get("repeat") || 25);

function rng(seed) {
  let a = seed >>> 0; // mulberry32
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A flame graph response shaped like a big Go service: ~n nodes, deep chains, 8 packages, 10 ms samples. */
export function synthetic(n, seed = 7) {
  const rand = rng(seed);
  const packages = ["api", "service", "pricing", "storage", "codec", "platform", "work"].map(
    (p) => `stackyard.example/bigservice/internal/${p}`,
  );
  packages.push("runtime", "net/http", "main");
  const fnNames = [];
  for (let i = 0; i < 2600; i++) {
    const pkg = packages[Math.floor(rand() * packages.length)];
    fnNames.push(rand() < 0.5 ? `${pkg}.(*Type${i % 37}).method_${i}` : `${pkg}.func_${i}`);
  }
  const root = { name: "total", total: 0, children: [], depth: 0 };
  root.total = 2_000_000 * 10_000_000; // 2M samples of 10 ms
  const frontier = [root];
  let count = 1;
  while (count < n && frontier.length) {
    // mostly depth-first (deep stacks, as in Go services), sometimes anywhere
    const at = rand() < 0.7 ? frontier.length - 1 - Math.floor(rand() * Math.min(4, frontier.length)) : Math.floor(rand() * frontier.length);
    const node = frontier[at];
    frontier[at] = frontier[frontier.length - 1];
    frontier.pop();
    if (node.depth >= 63 || node.total < 2 * 10_000_000) continue;
    const k = rand() < 0.45 ? 1 : 2 + Math.floor(rand() * (node.depth < 3 ? 8 : 4));
    const share = 0.75 + rand() * 0.24; // the rest is self
    const weights = Array.from({ length: k }, () => rand() ** 2 + 0.01);
    const sum = weights.reduce((a, b) => a + b, 0);
    const used = new Set();
    for (const w of weights) {
      if (count >= n) break;
      const total = Math.floor((node.total * share * w) / sum / 10_000_000) * 10_000_000;
      if (total <= 0) continue;
      let name;
      do name = fnNames[Math.floor(rand() * fnNames.length)];
      while (used.has(name));
      used.add(name);
      const child = { name, total, children: [], depth: node.depth + 1 };
      node.children.push(child);
      frontier.push(child);
      count++;
    }
  }
  // emit the compact levels format, children ordered by name, as the server does
  const names = ["total"];
  const index = new Map([["total", 0]]);
  const levels = [];
  const ends = [];
  const emit = (node, depth, left) => {
    while (levels.length <= depth) {
      levels.push([]);
      ends.push(0);
    }
    const childSum = node.children.reduce((a, c) => a + c.total, 0);
    if (!index.has(node.name)) {
      index.set(node.name, names.length);
      names.push(node.name);
    }
    levels[depth].push(left - ends[depth], node.total, node.total - childSum, index.get(node.name));
    ends[depth] = left + node.total;
    node.children.sort((a, b) => (a.name < b.name ? -1 : 1));
    let x = left;
    for (const c of node.children) {
      emit(c, depth + 1, x);
      x += c.total;
    }
  };
  emit(root, 0, 0);
  const nodes = levels.reduce((a, l) => a + l.length / 4, 0);
  return { type: "cpu", sample_type: "cpu", unit: "nanoseconds", names, levels, total: root.total, nodes, truncated: false };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const max = (xs) => Math.max(...xs);
const round = (x) => Math.round(x * 100) / 100;

function flush(fg) {
  fg.ctx.getImageData(0, 0, 1, 1); // waits until the canvas has really drawn everything
}

function time(fn) {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

async function run() {
  const response = SRC ? await (await fetch(SRC)).json() : synthetic(NODES);
  const host = $("host");
  const fg = new FlameGraph(host);
  let firstParts = {};
  const first = time(() => {
    fg.setData(response);
    const t = performance.now();
    flush(fg);
    firstParts = { decode: fg.decodeMs, setData: fg.setDataMs, render: fg.lastRenderMs, raster: performance.now() - t };
  });
  const decode = [];
  const setData = [];
  const full = [];
  for (let r = 0; r < REPEAT; r++) {
    setData.push(
      time(() => {
        fg.setData(response);
        flush(fg);
      }),
    );
    decode.push(fg.decodeMs);
    full.push(
      time(() => {
        fg.render();
        flush(fg);
      }),
    );
  }
  // zoom targets: frames a person would click (at least 0.2% wide), at depths 1..12
  const g = fg.graph;
  const rand = rng(11);
  const candidates = [];
  for (let i = 1; i < g.n; i++) if (g.depth[i] <= 12 && g.width[i] >= g.rootWidth * 0.002) candidates.push(i);
  const zoom = [];
  const unzoom = [];
  for (let r = 0; r < REPEAT * 2 && candidates.length; r++) {
    const target = candidates[Math.floor(rand() * candidates.length)];
    zoom.push(
      time(() => {
        fg.zoomTo(target);
        flush(fg);
      }),
    );
    unzoom.push(
      time(() => {
        fg.zoomTo(0);
        flush(fg);
      }),
    );
  }
  const search = [];
  for (let r = 0; r < REPEAT; r++) {
    search.push(
      time(() => {
        fg.setSearch(r % 2 ? "" : "/service\\.\\(/");
        flush(fg);
      }),
    );
  }
  const hits = 20000;
  const hover = time(() => {
    for (let k = 0; k < hits; k++) fg.nodeAt(rand() * fg.cssWidth, rand() * g.levels * 18);
  });
  const results = {
    source: SRC || `synthetic(${NODES})`,
    nodes: g.n,
    levels: g.levels,
    canvas: `${fg.canvas.width}x${fg.canvas.height}`,
    drawn_boxes: fg.debugApi().state().drawn,
    merged_subpixel: fg.debugApi().state().merged,
    merged_boxes: fg.debugApi().state().mergedBoxes,
    first_render_ms: round(first),
    first_render_parts_ms: Object.fromEntries(Object.entries(firstParts).map(([k, v]) => [k, round(v)])),
    decode_ms: { median: round(median(decode)), max: round(max(decode)) },
    set_data_and_draw_ms: { median: round(median(setData)), max: round(max(setData)) },
    redraw_full_ms: { median: round(median(full)), max: round(max(full)) },
    zoom_in_ms: { median: round(median(zoom)), max: round(max(zoom)) },
    zoom_out_ms: { median: round(median(unzoom)), max: round(max(unzoom)) },
    search_ms: { median: round(median(search)), max: round(max(search)) },
    hover_hit_test_us: round((hover * 1000) / hits),
  };
  $("results").textContent = JSON.stringify(results, null, 2);
  window.__bench = results;
}

run().catch((err) => {
  $("results").textContent = `failed: ${err.stack || err}`;
  window.__bench = { error: String(err) };
});
