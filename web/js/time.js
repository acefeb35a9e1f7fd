// Times, the one place: how every page shows them (local time, to the second, with UTC on hover) and how
// the API takes them (RFC 3339, Unix seconds, now, now-DURATION), resolved in the browser for axes.

const pad = (n) => String(n).padStart(2, "0");

/** A local date and time, to the second: 2026-11-27 01:19:45. Every page shows times this way. */
export function formatDateTime(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The same moment in UTC, for the hover text: 2026-11-27 00:19:45 UTC. */
export function formatUtc(ms) {
  const d = new Date(ms);
  const date = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  return `${date} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** RFC 3339 in UTC, whole seconds: what the API takes as from/to. */
export function isoSeconds(ms) {
  return new Date(Math.round(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * A `<time>` showing `ms` in local time with UTC on hover; `text` replaces the shown text (such as
 * "12 s ago"), and then the hover gives both the local time and UTC.
 */
export function timeElement(ms, text = "") {
  const node = document.createElement("time");
  if (Number.isNaN(ms) || ms === null || ms === undefined) {
    node.textContent = text || "–";
    return node;
  }
  node.dateTime = new Date(ms).toISOString();
  node.textContent = text || formatDateTime(ms);
  node.title = text ? `${formatDateTime(ms)} local · ${formatUtc(ms)}` : formatUtc(ms);
  return node;
}

/** An API time (RFC 3339) as a `<time>` element; see `timeElement`. */
export function apiTime(iso, text = "") {
  return timeElement(iso ? Date.parse(iso) : NaN, text);
}

/** "12 s ago", "4 min ago", "3 h ago" from epoch milliseconds. */
export function ago(ms, nowMs = Date.now()) {
  const s = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

const UNIT_MS = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3, y: 365 * 86400e3 };

/** `1h30m` → milliseconds, or NaN. */
export function parseDurationMs(text) {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)/y;
  let total = 0;
  let at = 0;
  const s = text.trim();
  while (at < s.length) {
    re.lastIndex = at;
    const m = re.exec(s);
    if (!m) return NaN;
    total += parseFloat(m[1]) * UNIT_MS[m[2]];
    at = re.lastIndex;
  }
  return s ? total : NaN;
}

/** A time as the API reads it, in epoch milliseconds (NaN when it does not parse). */
export function parseTimeMs(text, nowMs = Date.now()) {
  const s = (text || "").trim();
  if (!s) return NaN;
  if (s === "now") return nowMs;
  if (s.startsWith("now-") || s.startsWith("now+")) {
    const d = parseDurationMs(s.slice(4));
    return s[3] === "-" ? nowMs - d : nowMs + d;
  }
  if (/^-?\d+(\.\d+)?$/.test(s)) return parseFloat(s) * 1000;
  const iso = /[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : `${s}Z`; // the API reads a time without zone as UTC
  return Date.parse(iso);
}

export const PRESETS = [
  { from: "now-5m", label: "Last 5 minutes", short: "5m" },
  { from: "now-15m", label: "Last 15 minutes", short: "15m" },
  { from: "now-1h", label: "Last 1 hour", short: "1h" },
  { from: "now-6h", label: "Last 6 hours", short: "6h" },
  { from: "now-24h", label: "Last 24 hours", short: "24h" },
  { from: "now-7d", label: "Last 7 days", short: "7d" },
  { from: "now-30d", label: "Last 30 days", short: "30d" },
];

/** "Last 1 hour", or "2026-11-27 01:10:00 → 01:25:00" for an absolute range (local time). */
export function describeRange(from, to) {
  const preset = PRESETS.find((p) => p.from === from);
  if (preset && (to === "now" || !to)) return preset.label;
  const a = parseTimeMs(from);
  const b = parseTimeMs(to || "now");
  if (Number.isNaN(a) || Number.isNaN(b)) return `${from} → ${to}`;
  const left = formatDateTime(a);
  const right = formatDateTime(b);
  const sameDay = left.slice(0, 10) === right.slice(0, 10);
  const rightText = to === "now" ? "now" : sameDay ? right.slice(11) : right;
  return `${/^now/.test(from) ? from : left} → ${rightText}`;
}
