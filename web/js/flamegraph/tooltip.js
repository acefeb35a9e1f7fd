// The flame graph's tooltip: a frame's function, its total and self values with their shares (for a diff,
// base, comparison and change side by side), and what a click does. The values are also on the tooltip's
// dataset, for the browser tests.

import { el } from "../dom.js";
import { formatChange, formatPercent, formatRelative, formatValue } from "../format.js";
import { OTHER } from "./decode.js";

/** Fill tooltip `tip` for node `i` of graph `g` (`zoom` is the zoomed node) and show it beside the pointer. */
export function showTooltip(tip, g, i, zoom, clientX, clientY) {
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
      : i === zoom
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
