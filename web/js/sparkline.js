// A sparkline: one series of [unix seconds, value] points as a small SVG line, with its last value.

const NS = "http://www.w3.org/2000/svg";

/** An <svg> of `points` over [fromMs, toMs]; `data-first`/`data-last` hold the values for readers and tests. */
export function sparkline(points, fromMs, toMs, { width = 160, height = 28, label = "" } = {}) {
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("role", "img");
  if (!points.length) {
    svg.setAttribute("aria-label", `${label}: no data in this range`);
    svg.classList.add("empty");
    const line = document.createElementNS(NS, "line");
    line.setAttribute("x1", "0");
    line.setAttribute("x2", String(width));
    line.setAttribute("y1", String(height - 1.5));
    line.setAttribute("y2", String(height - 1.5));
    svg.append(line);
    return svg;
  }
  const values = points.map((p) => p[1]);
  const max = Math.max(...values);
  const min = Math.min(0, ...values);
  const span = max - min || 1;
  const x = (t) => ((t * 1000 - fromMs) / (toMs - fromMs || 1)) * (width - 4) + 2;
  const y = (v) => height - 2 - ((v - min) / span) * (height - 4);
  const coords = points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
  const path = document.createElementNS(NS, "polyline");
  path.setAttribute("points", coords.length === 1 ? `${coords[0]} ${coords[0]}` : coords.join(" "));
  svg.append(path);
  const last = points[points.length - 1];
  const dot = document.createElementNS(NS, "circle");
  dot.setAttribute("cx", x(last[0]).toFixed(1));
  dot.setAttribute("cy", y(last[1]).toFixed(1));
  dot.setAttribute("r", "2.2");
  svg.append(dot);
  svg.dataset.first = String(values[0]);
  svg.dataset.last = String(last[1]);
  svg.dataset.max = String(max);
  svg.setAttribute("aria-label", `${label}: ${values[0]} → ${last[1]} (max ${max})`);
  return svg;
}
