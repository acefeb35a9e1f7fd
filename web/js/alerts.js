// The Alerts page: current alerts with their state, the rules, the receivers and the history of transitions.
// `?rule=NAME` (the generatorURL of notifications) narrows alerts and history to one rule.

import { ApiError, getJSON, isAbort } from "./api.js";
import { renderHeader } from "./header.js";

const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** POST or DELETE with JSON; rejects with ApiError carrying the server's own message. */
async function send(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(`Cannot reach the Stackyard server (${err.message})`, 0, path);
  }
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      const parsed = await response.json();
      if (parsed && typeof parsed.error === "string") message = parsed.error;
    } catch {
      // not JSON
    }
    throw new ApiError(message, response.status, path);
  }
  return response.status === 204 ? null : response.json();
}

function showError(err) {
  $("error").hidden = !err;
  $("error-message").textContent = err ? err.message : "";
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { hour12: false });
}

function formatValue(value) {
  if (value === null || value === undefined) return "";
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return Number(value.toPrecision(4)).toLocaleString("en-US");
}

function labelChips(labels, skip = ["alertname"]) {
  const box = el("div", { class: "labels" });
  for (const [name, value] of Object.entries(labels).sort()) {
    if (!skip.includes(name)) box.append(el("span", { class: "label", text: `${name}=${value}` }));
  }
  return box;
}

function stateBadge(state) {
  return el("span", { class: `state state-${state}`, text: state });
}

function table(headers, rows, empty) {
  if (!rows.length) return el("p", { class: "alerts-empty", text: empty });
  const head = el("tr", {}, ...headers.map((h) => el("th", { text: h })));
  return el("table", { class: "alerts-table" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

function renderCurrent(alerts) {
  const rows = alerts.map((a) =>
    el(
      "tr",
      { "data-rule": a.rule, "data-state": a.state },
      el("td", {}, stateBadge(a.state)),
      el("td", { class: "mono", text: a.rule }),
      el("td", {}, labelChips(a.labels)),
      el("td", { class: "num", text: formatValue(a.value) }),
      el("td", { text: when(a.state === "resolved" ? a.resolved_at : a.active_since) }),
      el("td", { text: a.annotations.summary || a.annotations.description || "" }),
    ),
  );
  const firing = alerts.filter((a) => a.state === "firing").length;
  $("current-meta").textContent = `${firing} firing · ${alerts.length - firing} pending or resolved`;
  $("current").replaceChildren(
    table(["State", "Rule", "Labels", "Value", "Since", "Summary"], rows, "No alerts: every rule is quiet."),
  );
}

function renderRules(body, onDelete) {
  const rows = body.rules.map((r) => {
    const counts = Object.entries(r.alerts)
      .filter(([, n]) => n > 0)
      .map(([state, n]) => `${n} ${state}`)
      .join(", ");
    const actions = el("td");
    if (r.source === "api") {
      const button = el("button", { type: "button", class: "btn btn-ghost", text: "Delete" });
      button.addEventListener("click", () => onDelete(r.name));
      actions.append(button);
    } else {
      actions.append(el("span", { class: "hint", text: "config file" }));
    }
    return el(
      "tr",
      { "data-rule": r.name },
      el("td", { class: "mono", text: r.name }),
      el("td", { text: r.sample ? `${r.type} (${r.sample})` : r.type }),
      el("td", { class: "mono", text: r.query }),
      el("td", { class: "mono" }, r.expr, r.error ? el("div", { class: "rule-error", text: r.error }) : null),
      el("td", { text: r.for }),
      el("td", { text: r.receiver || "" }),
      el("td", {}, labelChips(r.labels, [])),
      el("td", { text: counts || "none" }),
      actions,
    );
  });
  $("rules-meta").textContent = `evaluated every ${body.evaluation_interval}s`;
  $("evaluated").textContent = body.last_evaluation ? `last evaluation ${when(body.last_evaluation)}` : "";
  $("rules").replaceChildren(
    table(
      ["Name", "Type", "Selector", "Expression", "For", "Receiver", "Labels", "Alerts", ""],
      rows,
      "No rules yet: add one here, through POST /api/v1/rules, or in the config file.",
    ),
  );
}

function renderReceivers(receivers) {
  const rows = receivers.map((r) =>
    el(
      "tr",
      {},
      el("td", { class: "mono", text: r.name }),
      el("td", { class: "mono", text: r.webhook_url }),
      el("td", { text: r.source === "api" ? "API" : "config file" }),
    ),
  );
  $("receivers").replaceChildren(table(["Name", "Webhook URL", "Defined in"], rows, "No receivers."));
  const select = document.querySelector("#new-rule select[name=receiver]");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: "(none)" }), ...receivers.map((r) => el("option", { text: r.name })));
  select.value = chosen;
}

function renderHistory(history) {
  const rows = history.map((h) =>
    el(
      "tr",
      { "data-rule": h.rule },
      el("td", { text: when(h.time) }),
      el("td", { class: "mono", text: h.rule }),
      el("td", {}, labelChips(h.labels)),
      el("td", {}, stateBadge(h.from), " → ", stateBadge(h.to)),
      el("td", { class: "num", text: formatValue(h.value) }),
    ),
  );
  $("history-meta").textContent = `${history.length} newest transitions`;
  $("history").replaceChildren(table(["Time", "Rule", "Labels", "Transition", "Value"], rows, "No transitions yet."));
}

async function refresh(rule) {
  document.body.classList.add("is-loading");
  try {
    const [alerts, rules, receivers] = await Promise.all([
      getJSON("/api/v1/alerts", { rule }),
      getJSON("/api/v1/rules"),
      getJSON("/api/v1/receivers"),
    ]);
    renderCurrent(alerts.alerts);
    renderHistory(alerts.history);
    renderRules(rules, async (name) => {
      if (!window.confirm(`Delete rule ${name}?`)) return;
      try {
        await send("DELETE", `/api/v1/rules/${encodeURIComponent(name)}`);
        await refresh(rule);
      } catch (err) {
        showError(err);
      }
    });
    renderReceivers(receivers.receivers);
    showError(null);
  } catch (err) {
    if (!isAbort(err)) showError(err);
  } finally {
    document.body.classList.remove("is-loading");
  }
}

function ruleFromForm(form) {
  const data = new FormData(form);
  const rule = { name: data.get("name").trim(), type: data.get("type"), expr: data.get("expr").trim() };
  for (const key of ["query", "sample", "for", "receiver"]) {
    const value = (data.get(key) || "").trim();
    if (value) rule[key] = value;
  }
  const summary = (data.get("summary") || "").trim();
  if (summary) rule.annotations = { summary };
  return rule;
}

function main() {
  renderHeader();
  const rule = new URLSearchParams(window.location.search).get("rule") || "";
  const form = $("new-rule");
  const toggle = $("new-rule-button");
  toggle.addEventListener("click", () => {
    form.hidden = !form.hidden;
    toggle.setAttribute("aria-expanded", String(!form.hidden));
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await send("POST", "/api/v1/rules", ruleFromForm(form));
      form.reset();
      form.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      await refresh(rule);
    } catch (err) {
      showError(err);
    }
  });
  refresh(rule);
  window.setInterval(() => refresh(rule), REFRESH_MS);
}

main();
