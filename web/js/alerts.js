// The Alerts page: current alerts with their state, the rules (add, edit, delete), the receivers (add,
// delete) and the history of transitions. `?rule=NAME` (the generatorURL of notifications) narrows alerts
// and history to one rule. A refusal shows next to what was refused: a form's under the form, a delete's
// above its table; the banner at the top is only for the page failing to load.

import { isAbort, getJSON, sendJSON } from "./api.js";
import { $, el, latestLoad, showBanner } from "./dom.js";
import { renderHeader } from "./header.js";
import { formatLabelList, parseLabelList } from "./labels.js";
import { apiTime } from "./time.js";

const REFRESH_MS = 5000;

/** A message in one of the page's message boxes (hidden when `err` is null). */
function say(box, err) {
  box.hidden = !err;
  box.textContent = err ? err.message : "";
}

/** A time as every page shows it: local, UTC on hover. */
function when(iso) {
  return iso ? apiTime(iso) : "";
}

function formatValue(value) {
  if (value === null || value === undefined) return "";
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return Number(value.toPrecision(4)).toLocaleString("en-US");
}

function labelChips(labels, skip = ["alertname"]) {
  const box = el("div", "labels");
  for (const [name, value] of Object.entries(labels).sort()) {
    if (!skip.includes(name)) box.append(el("span", "label", `${name}=${value}`));
  }
  return box;
}

function stateBadge(state) {
  return el("span", `state state-${state}`, state);
}

function table(headers, rows, empty) {
  if (!rows.length) return el("p", "alerts-empty", empty);
  const head = el("tr", "", ...headers.map((h) => el("th", "", h)));
  return el("table", "alerts-table", el("thead", "", head), el("tbody", "", ...rows));
}

function renderCurrent(alerts) {
  const rows = alerts.map((a) =>
    el(
      "tr",
      { "data-rule": a.rule, "data-state": a.state },
      el("td", "", stateBadge(a.state)),
      el("td", "mono", a.rule),
      el("td", "", labelChips(a.labels)),
      el("td", "num", formatValue(a.value)),
      el("td", "", when(a.state === "resolved" ? a.resolved_at : a.active_since)),
      el("td", "", a.annotations.summary || a.annotations.description || ""),
    ),
  );
  const firing = alerts.filter((a) => a.state === "firing").length;
  $("current-meta").textContent = `${firing} firing · ${alerts.length - firing} pending or resolved`;
  $("current").replaceChildren(
    table(["State", "Rule", "Labels", "Value", "Since", "Summary"], rows, "No alerts: every rule is quiet."),
  );
}

function renderRules(body, { onEdit, onDelete }) {
  const rows = body.rules.map((r) => {
    const counts = Object.entries(r.alerts)
      .filter(([, n]) => n > 0)
      .map(([state, n]) => `${n} ${state}`)
      .join(", ");
    const actions = el("td", "row-actions");
    if (r.source === "api") {
      const edit = el("button", { type: "button", className: "btn btn-ghost edit-rule" }, "Edit");
      edit.addEventListener("click", () => onEdit(r));
      const remove = el("button", { type: "button", className: "btn btn-ghost delete-rule" }, "Delete");
      remove.addEventListener("click", () => onDelete(r.name));
      actions.append(edit, remove);
    } else {
      actions.append(el("span", "hint", "config file"));
    }
    return el(
      "tr",
      { "data-rule": r.name },
      el("td", "mono", r.name),
      el("td", "", r.sample ? `${r.type} (${r.sample})` : r.type),
      el("td", "mono", r.query),
      el("td", "mono", r.expr, r.error ? el("div", "rule-error", r.error) : null),
      el("td", "", r.for),
      el("td", "", r.receiver || ""),
      el("td", "", labelChips(r.labels, [])),
      el("td", "", counts || "none"),
      actions,
    );
  });
  $("rules-meta").textContent = `evaluated every ${body.evaluation_interval}s`;
  $("evaluated").replaceChildren(...(body.last_evaluation ? ["last evaluation ", when(body.last_evaluation)] : []));
  $("rules").replaceChildren(
    table(
      ["Name", "Type", "Selector", "Expression", "For", "Receiver", "Labels", "Alerts", ""],
      rows,
      "No rules yet: add one here, through POST /api/v1/rules, or in the config file.",
    ),
  );
}

function renderReceivers(receivers, onDelete) {
  const rows = receivers.map((r) => {
    const actions = el("td", "row-actions");
    if (r.source === "api") {
      const remove = el("button", { type: "button", className: "btn btn-ghost delete-receiver" }, "Delete");
      remove.addEventListener("click", () => onDelete(r.name));
      actions.append(remove);
    }
    return el(
      "tr",
      { "data-receiver": r.name },
      el("td", "mono", r.name),
      el("td", "mono", r.webhook_url),
      el("td", "", r.source === "api" ? "API" : "config file"),
      actions,
    );
  });
  $("receivers").replaceChildren(table(["Name", "Webhook URL", "Defined in", ""], rows, "No receivers yet: add one with New receiver."));
  const select = document.querySelector("#new-rule select[name=receiver]");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "(none)"), ...receivers.map((r) => el("option", "", r.name)));
  select.value = chosen;
}

function renderHistory(history) {
  const rows = history.map((h) =>
    el(
      "tr",
      { "data-rule": h.rule },
      el("td", "", when(h.time)),
      el("td", "mono", h.rule),
      el("td", "", labelChips(h.labels)),
      el("td", "", stateBadge(h.from), " → ", stateBadge(h.to)),
      el("td", "num", formatValue(h.value)),
    ),
  );
  $("history-meta").textContent = `${history.length} newest transitions`;
  $("history").replaceChildren(table(["Time", "Rule", "Labels", "Transition", "Value"], rows, "No transitions yet."));
}

let rulesByName = new Map();

/** Everything the page shows, asked again (every few seconds, and after a change); a newer refresh drops an older one. */
const refresh = latestLoad(async (signal, rule) => {
  try {
    const [alerts, rules, receivers] = await Promise.all([
      getJSON("/api/v1/alerts", { rule }, { signal }),
      getJSON("/api/v1/rules", {}, { signal }),
      getJSON("/api/v1/receivers", {}, { signal }),
    ]);
    if (signal.aborted) return;
    rulesByName = new Map(rules.rules.map((r) => [r.name, r]));
    renderCurrent(alerts.alerts);
    renderHistory(alerts.history);
    renderRules(rules, { onEdit: (r) => ruleForm.edit(r), onDelete: (name) => deleteRule(name, rule) });
    renderReceivers(receivers.receivers, (name) => deleteReceiver(name, rule));
    showBanner(null);
  } catch (err) {
    if (!isAbort(err)) showBanner(err);
  }
});

async function deleteRule(name, rule) {
  if (!window.confirm(`Delete rule ${name}?`)) return;
  try {
    await sendJSON("DELETE", `/api/v1/rules/${encodeURIComponent(name)}`);
    say($("rules-message"), null);
  } catch (err) {
    say($("rules-message"), new Error(`Rule ${name} was not deleted: ${err.message}`));
  }
  await refresh(rule);
}

async function deleteReceiver(name, rule) {
  if (!window.confirm(`Delete receiver ${name}?`)) return;
  try {
    await sendJSON("DELETE", `/api/v1/receivers/${encodeURIComponent(name)}`);
    say($("receivers-message"), null);
  } catch (err) {
    say($("receivers-message"), new Error(`Receiver ${name} was not deleted: ${err.message}`));
  }
  await refresh(rule);
}

/** The rule a form describes, as the API takes it; `base` is the rule being edited (its other annotations stay). */
function ruleFromForm(form, base = null) {
  const data = new FormData(form);
  const rule = { name: data.get("name").trim(), type: data.get("type"), expr: data.get("expr").trim() };
  for (const key of ["query", "sample", "for", "receiver"]) {
    const value = (data.get(key) || "").trim();
    if (value) rule[key] = value;
  }
  const labels = parseLabelList(data.get("labels") || "");
  if (Object.keys(labels).length) rule.labels = labels;
  const annotations = { ...(base ? base.annotations : {}) };
  const summary = (data.get("summary") || "").trim();
  if (summary) annotations.summary = summary;
  else delete annotations.summary;
  if (Object.keys(annotations).length) rule.annotations = annotations;
  return rule;
}

/** The rule form: new (POST) or edit (PUT) of one rule; its refusals show under it. */
class RuleForm {
  constructor(onSaved) {
    this.form = $("new-rule");
    this.toggle = $("new-rule-button");
    this.error = $("rule-error");
    this.editing = null;
    this.onSaved = onSaved;
    this.toggle.addEventListener("click", () => (this.form.hidden ? this.open(null) : this.close()));
    $("rule-cancel").addEventListener("click", () => this.close());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  open(rule) {
    this.editing = rule;
    this.form.reset();
    say(this.error, null);
    const f = this.form.elements;
    f.name.readOnly = Boolean(rule);
    $("rule-form-title").textContent = rule ? `Edit rule ${rule.name}` : "New rule";
    $("rule-submit").textContent = rule ? "Save rule" : "Create rule";
    if (rule) {
      f.name.value = rule.name;
      f.type.value = rule.type;
      f.query.value = rule.query === "{}" ? "" : rule.query;
      f.sample.value = rule.sample || "";
      f.expr.value = rule.expr;
      f.for.value = rule.for === "0s" ? "" : rule.for;
      f.receiver.value = rule.receiver || "";
      f.labels.value = formatLabelList(rule.labels || {});
      f.summary.value = (rule.annotations || {}).summary || "";
    }
    this.form.hidden = false;
    this.toggle.setAttribute("aria-expanded", "true");
    (rule ? f.expr : f.name).focus();
  }

  edit(rule) {
    this.open(rulesByName.get(rule.name) || rule);
  }

  close() {
    this.form.hidden = true;
    this.editing = null;
    say(this.error, null);
    this.toggle.setAttribute("aria-expanded", "false");
  }

  async submit() {
    try {
      const body = ruleFromForm(this.form, this.editing);
      if (this.editing) await sendJSON("PUT", `/api/v1/rules/${encodeURIComponent(this.editing.name)}`, body);
      else await sendJSON("POST", "/api/v1/rules", body);
    } catch (err) {
      say(this.error, err); // next to the form, in the server's own words; the form keeps what was typed
      return;
    }
    this.close();
    await this.onSaved();
  }
}

let ruleForm = null;

function receiverForm(onSaved) {
  const form = $("new-receiver");
  const toggle = $("new-receiver-button");
  const close = () => {
    form.hidden = true;
    form.reset();
    say($("receiver-error"), null);
    toggle.setAttribute("aria-expanded", "false");
  };
  toggle.addEventListener("click", () => {
    if (!form.hidden) return close();
    form.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    form.elements.name.focus();
  });
  $("receiver-cancel").addEventListener("click", close);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      await sendJSON("POST", "/api/v1/receivers", { name: data.get("name").trim(), webhook_url: data.get("webhook_url").trim() });
    } catch (err) {
      say($("receiver-error"), err);
      return;
    }
    close();
    await onSaved();
  });
}

function main() {
  renderHeader();
  const rule = new URLSearchParams(window.location.search).get("rule") || "";
  ruleForm = new RuleForm(() => refresh(rule));
  receiverForm(() => refresh(rule));
  refresh(rule);
  window.setInterval(() => refresh(rule), REFRESH_MS);
}

main();
