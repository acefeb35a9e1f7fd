// Selectors built from label sets: links into a view for one service or instance, and a chart group's selector.

/** A label value in double quotes, escaped as the selector grammar reads it. */
export function quote(value) {
  return `"${String(value).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** `{service: "api", instance: "a:1"}` → `{service="api", instance="a:1"}`. */
export function selectorOf(labels) {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${quote(v ?? "")}`);
  return `{${parts.join(", ")}}`;
}

/** A selector narrowed by more label equalities: `{service="api"}` + `{instance: "a"}` → `{service="api", instance="a"}`. */
export function narrow(query, labels) {
  const extra = Object.entries(labels).map(([k, v]) => `${k}=${quote(v ?? "")}`);
  const q = (query || "").trim();
  if (!extra.length) return q;
  if (!q || q === "{}") return `{${extra.join(", ")}}`;
  const inner = q.replace(/^\{/, "").replace(/\}\s*$/, "").trim();
  return `{${inner ? `${inner}, ` : ""}${extra.join(", ")}}`;
}

/** "instance=a:1, version=1.5" for a legend. */
export function describeLabels(labels) {
  const entries = Object.entries(labels);
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(", ") : "all series";
}

/** "12 s ago", "4 min ago", "3 h ago" from epoch milliseconds. */
export function ago(ms, nowMs = Date.now()) {
  const s = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
