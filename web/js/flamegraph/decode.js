// The flame graph's model: Stackyard's compact levels format (docs/api.md), decoded once into typed arrays,
// and the questions the view asks of it (the first node at a position, the levels a zoom shows, a frame's
// path from the root and back).
//
// Nodes are stored level by level, left to right, so a level is a sorted run of nodes: finding the first
// node at or past a position is a binary search within its level.

/** The server's name for small frames folded together (`max_nodes`). */
export const OTHER = "other";

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

/** Index of the first node of level `d` whose extent reaches past `x`. */
export function firstAt(g, d, x) {
  let lo = g.levelStart[d];
  let hi = g.levelStart[d + 1];
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (g.start[mid] + g.width[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Levels down to the deepest one with a frame inside node `zoom` (all of them when `zoom` is the root). */
export function visibleLevels(g, zoom) {
  if (zoom === 0) return g.levels;
  const x0 = g.start[zoom];
  const x1 = x0 + g.width[zoom];
  let d = g.depth[zoom] + 1;
  while (d < g.levels) {
    const i = firstAt(g, d, x0);
    if (!(i < g.levelStart[d + 1] && g.start[i] < x1)) break;
    d++;
  }
  return d;
}

/** A node as the names from below the root down to it, joined by ";" ("" for the root). */
export function pathOf(g, node) {
  if (!g || node <= 0) return "";
  const parts = [];
  for (let i = node; i > 0; i = g.parent[i]) parts.push(g.names[g.name[i]]);
  return parts.reverse().join(";");
}

/** The node a path (as `pathOf` writes it) names, or the root when one of its frames is not in `g`. */
export function findPath(g, path) {
  let node = 0;
  for (const part of path.split(";")) {
    const child = childNamed(g, node, part);
    if (child < 0) return 0;
    node = child;
  }
  return node;
}

function childNamed(g, node, fnName) {
  const d = g.depth[node] + 1;
  if (d >= g.levels) return -1;
  const x = g.start[node];
  const end = x + g.width[node];
  for (let i = firstAt(g, d, x); i < g.levelStart[d + 1] && g.start[i] < end; i++) {
    if (g.parent[i] === node && g.names[g.name[i]] === fnName) return i;
  }
  return -1;
}
