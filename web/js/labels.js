// Label sets: selectors built from them (links into a view, a chart group's selector), and label lists as
// people type them in forms (parsed and formatted).

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

export { ago } from "./time.js"; // times live in time.js; re-exported for modules that import it from here

const SEPARATOR = /[\s,]/;

/**
 * A label list as people type it: `env=prod, version=1.5` or `env=prod version=1.5`. Labels are separated by
 * commas or spaces; a value with spaces or commas is quoted, `team="web platform"`. Anything else is refused
 * with a message naming the part, so `env=prod version=1` never becomes one label `env="prod version=1"`.
 */
export function parseLabelList(text) {
  const labels = {};
  const s = text || "";
  let i = 0;
  const skip = () => {
    while (i < s.length && SEPARATOR.test(s[i])) i++;
  };
  const word = (from) => {
    let end = from;
    while (end < s.length && !SEPARATOR.test(s[end])) end++;
    return s.slice(from, end);
  };
  skip();
  while (i < s.length) {
    const start = i;
    while (i < s.length && s[i] !== "=" && !SEPARATOR.test(s[i])) i++;
    const name = s.slice(start, i);
    if (s[i] !== "=" || !name) {
      throw new Error(
        `labels: "${word(start)}" is not NAME=VALUE; separate labels with commas or spaces and quote a value with spaces: team="web platform"`,
      );
    }
    i++;
    let value = "";
    if (s[i] === '"') {
      i++;
      let closed = false;
      while (i < s.length) {
        if (s[i] === "\\" && i + 1 < s.length) {
          value += s[i + 1] === "n" ? "\n" : s[i + 1]; // the escapes quote() writes
          i += 2;
        } else if (s[i] === '"') {
          closed = true;
          i++;
          break;
        } else value += s[i++];
      }
      if (!closed) throw new Error(`labels: the quoted value of "${name}" has no closing quote`);
      if (i < s.length && !SEPARATOR.test(s[i])) throw new Error(`labels: "${word(start)}" has text after the closing quote`);
    } else {
      const from = i;
      while (i < s.length && !SEPARATOR.test(s[i])) i++;
      value = s.slice(from, i);
      if (value.includes('"')) throw new Error(`labels: "${word(start)}": quote the whole value, name="..."`);
    }
    if (Object.prototype.hasOwnProperty.call(labels, name)) throw new Error(`labels: "${name}" is given twice`);
    labels[name] = value;
    skip();
  }
  return labels;
}

/** The inverse of `parseLabelList`: `env=prod, team="web platform"`. */
export function formatLabelList(labels) {
  return Object.entries(labels)
    .map(([k, v]) => (v === "" || /[\s,"\\]/.test(v) ? `${k}=${quote(v)}` : `${k}=${v}`))
    .join(", ");
}
