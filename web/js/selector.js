// The selector box: a text input with label-name and label-value suggestions from /api/v1/labels.
//
// Where the caret is decides what is suggested: after `{` or `,` a label name, after `name=` (or `!=`, `=~`,
// `!~`, with or without the opening quote) that label's values. Up/Down pick, Enter or Tab take, Escape closes.

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
  /** `getType()` is the profile type whose labels to suggest; `onSubmit()` runs the query (Enter). */
  constructor(input, list, { getType, onSubmit }) {
    this.input = input;
    this.list = list;
    this.getType = getType;
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
    let options;
    if (ctx.kind === "name") {
      options = await this.fetchList(`names:${type}`, () => api.labelNames(type).then((r) => r.names));
    } else {
      options = await this.fetchList(`values:${type}:${ctx.name}`, () =>
        api.labelValues(ctx.name, type).then((r) => r.values),
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
    heading.textContent = this.ctx.kind === "name" ? "Label names" : `Values of ${this.ctx.name}`;
    const items = this.items.map((text, i) => {
      const li = document.createElement("li");
      li.dataset.index = String(i);
      li.id = `${this.list.id}-${i}`;
      li.setAttribute("role", "option");
      li.textContent = text;
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
