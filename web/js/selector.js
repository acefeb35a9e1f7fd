// The selector box: a text input with label-name and label-value suggestions from /api/v1/labels.
//
// Where the caret is decides what is suggested: after `{` or `,` a label name, after `name=` (or `!=`, `=~`,
// `!~`, with or without the opening quote) that label's values. Up/Down pick, Enter or Tab take, Escape closes.
// pprof sample labels (`pprof.Do`, e.g. handler="/checkout") are offered too, marked "sample label": the
// server finds them in the profiles of the page's time range (`getRange`).

import { api } from "./api.js";

const NAME = /(?:^|[{,])\s*([a-zA-Z_][a-zA-Z0-9_]*)?$/;
const VALUE = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("?)((?:[^"\\]|\\.)*)$/;

/** What to suggest for the text before the caret: {kind: "name"|"value", name, partial, start} or null. */
export function context(before) {
  const quotes = (before.match(/(?<!\\)"/g) || []).length;
  const value = VALUE.exec(before);
  if (value && (quotes % 2 === 1 || !value[3])) {
    if (!value[3] && value[4]) return null; // an unquoted value is a syntax error; let the server say so
    return { kind: "value", name: value[1], quoted: Boolean(value[3]), partial: value[4], start: before.length - value[4].length };
  }
  if (quotes % 2 === 1) return null;
  const name = NAME.exec(before);
  if (name) {
    const partial = name[1] || "";
    return { kind: "name", partial, start: before.length - partial.length };
  }
  return null;
}

export class SelectorInput {
  /**
   * `getType()` is the profile type whose labels to suggest; `onSubmit()` runs the query (Enter);
   * `getRange()` (optional) is the page's {from, to}, where sample labels are looked for.
   */
  constructor(input, list, { getType, onSubmit, getRange = () => ({}) }) {
    this.input = input;
    this.list = list;
    this.getType = getType;
    this.getRange = getRange;
    this.sampleNames = new Set(); // names the server marked as pprof sample labels
    this.onSubmit = onSubmit;
    this.cache = new Map();
    this.items = [];
    this.active = -1;
    this.ctx = null;
    this.token = 0;
    list.setAttribute("role", "listbox");
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", list.id);
    input.addEventListener("input", () => this.update());
    input.addEventListener("focus", () => this.update());
    input.addEventListener("click", () => this.update());
    input.addEventListener("blur", () => setTimeout(() => this.close(), 150));
    input.addEventListener("keydown", (e) => this.onKey(e));
    list.addEventListener("mousedown", (e) => {
      const li = e.target.closest("li[data-index]");
      if (!li) return;
      e.preventDefault(); // keep the focus in the input
      this.take(Number(li.dataset.index));
    });
  }

  async fetchList(key, load) {
    if (!this.cache.has(key)) {
      this.cache.set(
        key,
        load().catch(() => {
          this.cache.delete(key);
          return [];
        }),
      );
    }
    return this.cache.get(key);
  }

  async update() {
    const caret = this.input.selectionStart ?? this.input.value.length;
    const before = this.input.value.slice(0, caret);
    const ctx = before.trim() === "" ? { kind: "name", partial: "", start: caret, open: true } : context(before);
    this.ctx = ctx;
    const token = ++this.token;
    if (!ctx) return this.close();
    const type = this.getType();
    const range = this.getRange() || {};
    const where = `${type}:${range.from ?? ""}:${range.to ?? ""}`;
    let options;
    if (ctx.kind === "name") {
      options = await this.fetchList(`names:${where}`, () =>
        api.labelNames(type, undefined, range).then((r) => {
          for (const name of r.sample_labels || []) this.sampleNames.add(name);
          return r.names;
        }),
      );
    } else {
      options = await this.fetchList(`values:${where}:${ctx.name}`, () =>
        api.labelValues(ctx.name, type, undefined, range).then((r) => {
          if (r.sample_label) this.sampleNames.add(ctx.name);
          return r.values;
        }),
      );
    }
    if (token !== this.token || document.activeElement !== this.input) return;
    const partial = ctx.partial.toLowerCase();
    this.items = options.filter((o) => o.toLowerCase().startsWith(partial) && o !== ctx.partial).slice(0, 50);
    const more = options.filter((o) => !o.toLowerCase().startsWith(partial) && o.toLowerCase().includes(partial));
    this.items.push(...more.slice(0, 50 - this.items.length));
    this.render();
  }

  render() {
    if (!this.items.length) return this.close();
    this.active = Math.min(Math.max(this.active, 0), this.items.length - 1);
    const heading = document.createElement("li");
    heading.className = "suggest-heading";
    const sampleLabel = this.ctx.kind === "value" && this.sampleNames.has(this.ctx.name);
    heading.textContent =
      this.ctx.kind === "name" ? "Label names" : `Values of ${this.ctx.name}${sampleLabel ? " (sample label)" : ""}`;
    const items = this.items.map((text, i) => {
      const li = document.createElement("li");
      li.dataset.index = String(i);
      li.id = `${this.list.id}-${i}`;
      li.setAttribute("role", "option");
      li.textContent = text;
      if (this.ctx.kind === "name" && this.sampleNames.has(text)) {
        li.classList.add("sample-label");
        const mark = document.createElement("span");
        mark.className = "suggest-mark";
        mark.textContent = "sample label";
        mark.title = "A pprof sample label (pprof.Do): it selects samples within profiles, not series";
        li.append(mark);
      }
      if (i === this.active) {
        li.classList.add("active");
        li.setAttribute("aria-selected", "true");
      }
      return li;
    });
    this.list.replaceChildren(heading, ...items);
    this.list.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    this.input.setAttribute("aria-activedescendant", `${this.list.id}-${this.active}`);
  }

  close() {
    this.items = [];
    this.active = -1;
    this.list.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }

  onKey(e) {
    const open = !this.list.hidden && this.items.length;
    if (e.key === "ArrowDown" && open) {
      e.preventDefault();
      this.active = (this.active + 1) % this.items.length;
      this.render();
    } else if (e.key === "ArrowUp" && open) {
      e.preventDefault();
      this.active = (this.active - 1 + this.items.length) % this.items.length;
      this.render();
    } else if ((e.key === "Enter" || e.key === "Tab") && open && this.active >= 0) {
      e.preventDefault();
      this.take(this.active);
    } else if (e.key === "Escape" && open) {
      e.preventDefault();
      e.stopPropagation();
      this.close();
    } else if (e.key === "Enter") {
      e.preventDefault();
      this.close();
      this.onSubmit();
    }
  }

  /** Insert suggestion `i` at the caret, completing the matcher's syntax around it. */
  take(i) {
    const ctx = this.ctx;
    const text = this.items[i];
    if (!ctx || text === undefined) return;
    const value = this.input.value;
    const caret = this.input.selectionStart ?? value.length;
    let after = value.slice(caret);
    let insert;
    if (ctx.kind === "name") {
      after = after.replace(/^[a-zA-Z0-9_]*/, "");
      insert = `${ctx.open && !value.slice(0, ctx.start).includes("{") ? "{" : ""}${text}="`;
    } else {
      after = after.replace(/^(?:[^"\\,}]|\\.)*"?/, "");
      const escaped = text.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
      insert = `${ctx.quoted ? "" : '"'}${escaped}"`;
      if (!after.trim().startsWith("}") && !after.trim().startsWith(",")) insert += value.includes("}") ? "" : "}";
    }
    const head = value.slice(0, ctx.start);
    this.input.value = head + insert + after;
    const at = head.length + insert.length - (ctx.kind === "value" && insert.endsWith("}") ? 1 : 0);
    this.input.setSelectionRange(at, at);
    this.input.dispatchEvent(new Event("change"));
    this.update();
  }
}
