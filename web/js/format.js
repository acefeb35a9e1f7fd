// Numbers as people read them: values by unit (pprof's unit names), percentages. Times are in time.js.

export { formatDateTime, isoSeconds } from "./time.js"; // for modules that import them from here

/** Up to three significant digits, trailing zeros dropped: 730, 19.9, 1.91, 0.05. */
export function formatNumber(x) {
  const a = Math.abs(x);
  let s;
  if (a >= 100) s = Math.round(x).toString();
  else if (a >= 10) s = x.toFixed(1);
  else s = x.toFixed(2);
  if (s.includes(".")) s = s.replace(/\.?0+$/, "");
  return s === "-0" ? "0" : s;
}

const TIME_STEPS = [
  [3600e9, "h"],
  [60e9, "min"],
  [1e9, "s"],
  [1e6, "ms"],
  [1e3, "µs"],
  [1, "ns"],
];
// pprof scales memory by 1024 and names the steps kB, MB, GB.
const BYTE_STEPS = [
  [1024 ** 4, "TB"],
  [1024 ** 3, "GB"],
  [1024 ** 2, "MB"],
  [1024, "kB"],
  [1, "B"],
];

function scaled(value, steps) {
  const a = Math.abs(value);
  for (const [size, name] of steps) {
    if (a >= size) return `${formatNumber(value / size)} ${name}`;
  }
  return `${formatNumber(value)} ${steps[steps.length - 1][1]}`;
}

/** A value in the profile's unit: nanoseconds as ms/s, bytes as kB/MB, counts as plain numbers. */
export function formatValue(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (value === 0) return unit === "bytes" ? "0 B" : unit === "nanoseconds" ? "0 s" : "0";
  if (unit === "nanoseconds") return scaled(value, TIME_STEPS);
  if (unit === "bytes") return scaled(value, BYTE_STEPS);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return formatNumber(value);
}

/** A change with its sign: +440 ms, −12 kB. */
export function formatChange(value, unit) {
  if (value === 0) return "±0";
  const text = formatValue(Math.abs(value), unit);
  return value > 0 ? `+${text}` : `−${text}`;
}

/** A share as a percentage with two decimals: 38.22%. */
export function formatPercent(part, whole) {
  if (!whole) return "–";
  const p = (100 * part) / whole;
  if (p !== 0 && Math.abs(p) < 0.01) return p > 0 ? "<0.01%" : ">−0.01%";
  return `${p.toFixed(2)}%`;
}

/** A relative change: +191%, −35%, new, gone. */
export function formatRelative(base, value) {
  if (base === 0) return value === 0 ? "±0%" : "new";
  if (value === 0) return "gone";
  const p = (100 * (value - base)) / Math.abs(base);
  const text = Math.abs(p) >= 10 ? Math.round(Math.abs(p)).toString() : Math.abs(p).toFixed(1);
  return p > 0 ? `+${text}%` : p < 0 ? `−${text}%` : "±0%";
}

/** The unit's name in a sentence: "nanoseconds" reads as "time". */
export function unitLabel(unit) {
  return { nanoseconds: "time", bytes: "bytes", count: "count" }[unit] || unit || "";
}
