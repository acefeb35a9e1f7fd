// The top table (/api/v1/top): flat and cum per function, sortable, filterable; a row click selects a function.
// With `lines: true` it is the table of source lines (granularity=lines): a row per (function, file, line).

import { packageOf } from "./flamegraph/colors.js";
import { formatPercent, formatValue } from "./format.js";

/** `stackyard.example/x/internal/api.F` → [`stackyard.example/x/internal/`, `api.F`]: the directory can shrink. */
function splitName(name) {
  const slash = name.lastIndexOf("/", packageOf(name).length);
  return slash < 0 ? ["", name] : [name.slice(0, slash + 1), name.slice(slash + 1)];
}

const MAX_ROWS = 500; // more rows than this wait for a filter: a long table helps nobody

const COLUMNS = [
  { key: "flat", label: "Flat", title: "Samples whose stack ends in this function (self)", numeric: true },
  { key: "cum", label: "Cum", title: "Samples with this function anywhere on the stack (total)", numeric: true },
  { key: "name", label: "Function", title: "Go function", numeric: false },
];
const LINE_COLUMNS = [
  ...COLUMNS,
  { key: "line", label: "Line", title: "Source file and line, as recorded in the binary", numeric: false },
];

/** A line row's name as pprof prints it (`main.fib stackyard/examples/demo/main.go:113`); a function row's name. */
export function rowLabel(row) {
  return row.line ? `${row.name} ${row.file}:${row.line}` : row.name;
}

/** Order by file then line number (a line's number is not text: 99 comes before 113). */
function byLocation(a, b) {
  return a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line;
}

export class TopTable {
  /**
   * `onSelect(name | null)` on a row click; `onViewChange({sort, filter})` when the user sorts or filters;
   * `lines`: rows are source lines (a file:line column; ties ordered by pprof's printed name).
   */
  constructor(container, { onSelect, onViewChange, lines = false } = {}) {
    this.onSelect = onSelect;
    this.lines = lines;
    this.columns = lines ? LINE_COLUMNS : COLUMNS;
    this.onViewChange = onViewChange;
    this.data = null;
    this.sort = "flat";
    this.filter = "";
    this.selected = null;
    this.root = document.createElement("div");
    this.root.className = "top";
    this.table = document.createElement("table");
    this.table.className = "top-table";
    this.thead = this.table.createTHead();
    this.tbody = this.table.createTBody();
    this.footer = document.createElement("div");
    this.footer.className = "top-footer";
    this.root.append(this.table, this.footer);
    container.replaceChildren(this.root);
    this.renderHead();
    this.tbody.addEventListener("click", (e) => {
      const tr = e.target.closest("tr[data-name]");
      if (!tr) return;
      const name = tr.dataset.name === this.selected ? null : tr.dataset.name;
      this.setSelected(name);
      if (this.onSelect) this.onSelect(name);
    });
    this.table.addEventListener("copy", (e) => this.copy(e));
    // A triple click selects a function's whole name (its directory and short name are two boxes, of which
    // the browser would select one).
    this.tbody.addEventListener("mousedown", (e) => {
      const fn = e.detail >= 3 && e.target.closest("td.name")?.querySelector(".fn");
      if (!fn) return;
      e.preventDefault();
      document.getSelection().selectAllChildren(fn);
    });
    this.tbody.addEventListener("keydown", (e) => {
      if ((e.key === "Enter" || e.key === " ") && e.target.matches("tr[data-name]")) {
        e.preventDefault();
        e.target.click();
      }
    });
  }

  /**
   * Copy what the user selected as text, without the layout's artefacts (a name's directory and short name
   * are two flex items, which the browser would copy on two lines): within one function cell, exactly the
   * selected part of the name; across rows, one line per row, its cells separated by tabs.
   */
  copy(e) {
    const selection = document.getSelection();
    if (!selection || selection.isCollapsed || !e.clipboardData) return;
    const start = selection.getRangeAt(0).startContainer;
    const cell = (start.nodeType === Node.ELEMENT_NODE ? start : start.parentElement)?.closest("td.name");
    const name = cell?.closest("tr")?.dataset.name;
    // a triple click selects the cell and the line break after it: what is left must be part of the name
    const part = selection.toString().replace(/[\u200e\u200f]/g, "").replace(/\s*\n\s*/g, "").trim();
    let text;
    if (name && part && name.includes(part)) text = part;
    else {
      const rows = [...this.tbody.querySelectorAll("tr[data-name]")].filter((tr) => selection.containsNode(tr, true));
      if (!rows.length) return;
      text = rows.map((tr) => [...tr.cells].map((td) => (td.classList.contains("name") ? tr.dataset.name : td.textContent.trim())).join("\t")).join("\n");
    }
    e.clipboardData.setData("text/plain", text.replace(/[\u200e\u200f]/g, ""));
    e.preventDefault();
  }

  renderHead() {
    const tr = document.createElement("tr");
    for (const col of this.columns) {
      const th = document.createElement("th");
      th.className = col.numeric ? "num" : "name";
      if (col.numeric) th.colSpan = 2;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      button.dataset.sort = col.key;
      button.title = `${col.title}. Click to sort.`;
      button.textContent = col.label;
      button.addEventListener("click", () => {
        this.setSort(col.key);
        if (this.onViewChange) this.onViewChange({ sort: this.sort, filter: this.filter });
      });
      th.append(button);
      th.setAttribute("aria-sort", this.sort === col.key ? (col.numeric ? "descending" : "ascending") : "none");
      tr.append(th);
    }
    this.thead.replaceChildren(tr);
  }

  setData(response) {
    this.data = response;
    this.render();
  }

  setSort(key) {
    this.sort = this.columns.some((c) => c.key === key) ? key : "flat";
    this.renderHead();
    this.render();
  }

  setFilter(text) {
    this.filter = text || "";
    this.render();
  }

  setSelected(name) {
    this.selected = name || null;
    for (const tr of this.tbody.querySelectorAll("tr[data-name]")) {
      const on = tr.dataset.name === this.selected;
      tr.classList.toggle("selected", on);
      tr.setAttribute("aria-selected", String(on));
    }
  }

  message(text, className = "") {
    this.data = null;
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = this.lines ? 6 : 5;
    td.className = `top-message ${className}`;
    td.textContent = text;
    tr.append(td);
    this.tbody.replaceChildren(tr);
    this.footer.textContent = "";
  }

  render() {
    const data = this.data;
    if (!data) return;
    const needle = this.filter.trim().toLowerCase();
    let rows = data.rows || [];
    const label = this.lines ? rowLabel : (r) => r.name;
    if (needle) rows = rows.filter((r) => label(r).toLowerCase().includes(needle));
    const key = this.sort;
    rows = [...rows].sort((a, b) => {
      if (key === "line") return byLocation(a, b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
      if (key === "name") return a.name < b.name ? -1 : a.name > b.name ? 1 : this.lines ? byLocation(a, b) : 0;
      return Math.abs(b[key]) - Math.abs(a[key]) || (label(a) < label(b) ? -1 : 1);
    });
    const total = data.total;
    const unit = data.unit;
    const shown = rows.slice(0, MAX_ROWS);
    const fragment = document.createDocumentFragment();
    for (const row of shown) {
      const tr = document.createElement("tr");
      tr.dataset.name = row.name;
      tr.tabIndex = 0;
      if (row.name === this.selected) {
        tr.className = "selected";
        tr.setAttribute("aria-selected", "true");
      }
      const flatShare = total ? Math.max(0, Math.min(1, row.flat / total)) : 0;
      tr.innerHTML =
        `<td class="num value" data-value="${row.flat}"></td><td class="num pct"></td>` +
        `<td class="num value" data-value="${row.cum}"></td><td class="num pct"></td>` +
        `<td class="name"><span class="bar"></span><span class="fn"><span class="fn-dir"></span><span class="fn-name"></span></span></td>`;
      const cells = tr.children;
      cells[0].textContent = formatValue(row.flat, unit);
      cells[1].textContent = formatPercent(row.flat, total);
      cells[2].textContent = formatValue(row.cum, unit);
      cells[3].textContent = formatPercent(row.cum, total);
      cells[4].firstChild.style.width = `${(flatShare * 100).toFixed(2)}%`;
      const [dir, short] = splitName(row.name);
      cells[4].lastChild.firstChild.textContent = dir; // its LRM is CSS generated content: never copied
      cells[4].lastChild.lastChild.textContent = short;
      cells[4].title = row.name;
      if (this.lines) {
        tr.dataset.file = row.file;
        tr.dataset.line = String(row.line);
        const where = document.createElement("td");
        where.className = "where";
        where.textContent = row.line ? `${row.file}:${row.line}` : "";
        where.title = where.textContent;
        if (row.inline) {
          // pprof's mark: every call into this line was inlined ("inline"), or some were ("partial-inline")
          tr.dataset.inline = row.inline;
          const mark = document.createElement("span");
          mark.className = "inline-mark";
          mark.textContent = ` (${row.inline})`;
          mark.title = row.inline === "inline" ? "inlined wherever it is called" : "inlined where some of its calls are";
          where.append(mark);
        }
        tr.append(where);
      }
      fragment.append(tr);
    }
    this.tbody.replaceChildren(fragment);
    if (!shown.length) {
      const what = this.lines ? "line" : "function";
      this.message(needle ? `No ${what} matches “${this.filter}”.` : "No samples in this range.", "muted");
      this.data = data;
    }
    const all = (data.rows || []).length;
    const parts = [];
    const noun = this.lines ? "lines" : "functions";
    if (needle) parts.push(`${rows.length.toLocaleString("en-US")} of ${all.toLocaleString("en-US")} ${noun}`);
    else parts.push(`${all.toLocaleString("en-US")} ${noun}`);
    if (rows.length > MAX_ROWS) parts.push(`showing the first ${MAX_ROWS}; filter to narrow down`);
    this.footer.textContent = parts.join(" · ");
  }
}
