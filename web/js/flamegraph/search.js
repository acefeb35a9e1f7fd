// Searching a flame graph: the search box's text as a matcher over function names, the frames it matches,
// and the summary that says what share of the total they hold.

import { el } from "../dom.js";
import { formatPercent, formatValue } from "../format.js";
import { OTHER } from "./decode.js";

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

/**
 * The frames of graph `g` whose function passes `test` (never the folded "other"): `matched` per node, and
 * their count and total. A match inside a matching frame is counted once, in the outer one, so the total
 * is a share of the root's and never exceeds it; `base` is the same for a diff's base side.
 */
export function matchFrames(g, test) {
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
  return { matched, count, total, base };
}

/**
 * The toolbar's summary in `box`: the search's error, or how many frames match and their share of the
 * total (`m` from `matchFrames`; for a diff, base → comparison). A function highlighted from outside (the
 * top table's selection) is named first.
 */
export function showMatchSummary(box, g, m, { highlighted, error }) {
  box.classList.toggle("error", Boolean(error));
  if (error) {
    box.textContent = error;
    return;
  }
  if (!m || !g) {
    box.textContent = "";
    return;
  }
  box.replaceChildren();
  if (highlighted) box.append(el("code", "fg-fn", highlighted), " ");
  if (!m.count) {
    box.append("no matching frames");
    return;
  }
  const frames = `${m.count.toLocaleString("en-US")} frame${m.count === 1 ? "" : "s"}`;
  if (g.diff) {
    box.append(
      `${frames}: ${formatPercent(m.base, g.rootBase)} → ${formatPercent(m.total, g.rootTotal)} of total ` +
        `(${formatValue(m.base, g.unit)} → ${formatValue(m.total, g.unit)})`,
    );
  } else {
    const strong = el("strong", "fg-share", formatPercent(m.total, g.rootTotal));
    box.append(`${frames}: `, strong, ` of total (${formatValue(m.total, g.unit)})`);
  }
}
