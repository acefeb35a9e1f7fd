// Times as the API takes them (RFC 3339, Unix seconds, now, now-DURATION), resolved in the browser for axes.

import { formatDateTime } from "./format.js";

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
