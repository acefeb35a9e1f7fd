// The targets page: every scrape target and profile kind with its health, last error and last duration;
// add, edit in place, pause, resume and remove targets; capture an execution trace and download it.

import { fleet, isAbort } from "./api.js";
import { $, el, latestLoad } from "./dom.js";
import { renderHeader } from "./header.js";
import { parseLabelList } from "./labels.js";
import { UrlState } from "./state.js";
import { editForm, kindBoxes, readOnlyReason } from "./targetedit.js";
import { ago, apiTime } from "./time.js";

const REFRESH_MS = 10_000;
const state = new UrlState({ service: "" });

renderHeader();

// The server's profile kinds (GET /api/v1/profile-kinds): the add form checks its defaults, the edit form
// offers every one. Without the list the add form sends no kinds, and the server applies its defaults.
let kinds = [];
const kindsLoaded = fleet.profileKinds().then(
  (answer) => {
    kinds = answer.kinds;
    kindBoxes($("add-kinds"), kinds, (kind) => kind.default);
  },
  (err) => {
    $("add-kinds").replaceChildren(el("span", "muted", "the server's default kinds (the list could not be loaded)"));
    notify("error", "The profile kinds could not be loaded", err.message);
  },
);

// ------------------------------------------------------------------ the one message area

let messageTimer = 0;
let messageSource = "";

/**
 * Show one message, replacing whatever was there: `kind` "ok" or "error". A success fades after a few seconds;
 * an error stays until the next message, or until what failed (`source`) works again.
 */
function notify(kind, title, text = "", source = "") {
  clearTimeout(messageTimer);
  const box = $("message");
  box.hidden = false;
  box.dataset.kind = kind;
  box.className = `alert ${kind === "ok" ? "alert-ok" : ""}`;
  box.setAttribute("role", kind === "ok" ? "status" : "alert");
  $("message-title").textContent = title;
  $("message-text").textContent = text;
  $("message-text").hidden = !text;
  messageSource = source;
  if (kind === "ok") messageTimer = setTimeout(clearMessage, 6000);
}

function clearMessage(source = "") {
  if (source && source !== messageSource) return;
  clearTimeout(messageTimer);
  $("message").hidden = true;
  messageSource = "";
}

function showError(title, err) {
  notify("error", title, err.message);
}

$("add-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  let body;
  try {
    body = {
      url: $("add-url").value.trim(),
      service: $("add-service").value.trim(),
      labels: parseLabelList($("add-labels").value),
      interval: $("add-interval").value.trim() || "15s",
    };
    if (kinds.length) body.profiles = [...$("add-kinds").querySelectorAll("input:checked")].map((b) => b.value);
  } catch (err) {
    showError("The target was not added", err);
    return;
  }
  try {
    const created = await fleet.addTarget(body);
    $("add-url").value = "";
    notify("ok", `Added ${created.service} ${created.instance}.`);
    await load();
  } catch (err) {
    showError("The target was not added", err);
  }
});

/** Whether the user is in the middle of something a refresh would undo (an armed Remove, a capture, an edit). */
function busy() {
  return Boolean(document.querySelector(".remove[data-armed='true'], .trace:disabled, .target.editing"));
}

async function act(done, title, fn) {
  try {
    await fn();
    notify("ok", done);
  } catch (err) {
    showError(title, err);
  }
  await load();
}

function statusOf(t) {
  if (t.paused) return "paused";
  if (t.up === true) return "up";
  if (t.up === false) return "down";
  return "waiting";
}
const STATUS_TEXT = { up: "up", down: "down", paused: "paused", waiting: "not scraped yet" };

function healthRow(kind, profile, h) {
  const tr = el("tr", "kind-row");
  tr.dataset.kind = kind;
  const status = !profile.enabled ? "off" : !h ? "waiting" : h.not_served ? "unserved" : h.up === true ? "up" : h.up === false ? "down" : "waiting";
  tr.dataset.status = status;
  const statusCell = el("td", "status");
  // unserved: an optional kind (goroutineleak) the target's Go answers 404 for; asked again hourly
  const words = { off: "disabled", waiting: "not scraped yet", up: "up", down: "down", unserved: "not served by this Go version" };
  statusCell.append(el("span", `dot ${status === "unserved" ? "off" : status}`), el("span", "status-text", words[status]));
  const last = el("td", "num");
  last.append(h && h.last_scrape ? apiTime(h.last_scrape, ago(Date.parse(h.last_scrape))) : "–");
  const duration = el("td", "num", h && h.last_duration_ms != null ? `${h.last_duration_ms.toFixed(h.last_duration_ms < 10 ? 1 : 0)} ms` : "–");
  const err = el("td", "last-error");
  if (h && h.last_error) {
    err.textContent = h.last_error + (h.consecutive_failures > 1 ? ` (${h.consecutive_failures} failures in a row)` : "");
    if (h.up === false) err.classList.add("scrape-error");
  } else err.textContent = "";
  const seconds = profile.seconds ? ` · ${profile.seconds} s` : "";
  tr.append(el("td", "kind-name mono", `${kind}${seconds}`), statusCell, last, duration, err);
  return tr;
}

function actions(t) {
  const box = el("div", "target-actions");
  const readOnly = readOnlyReason(t);
  const edit = el("button", "btn edit", "Edit");
  edit.type = "button";
  if (readOnly) {
    edit.disabled = true;
    edit.title = `This target cannot be edited here. ${readOnly}`;
    const note = el("span", "muted read-only", `from the ${t.source === "file_sd" ? "file_sd files" : "config file"}: read-only`);
    note.title = readOnly;
    box.append(edit, note);
    return box;
  }
  edit.addEventListener("click", () => openEditor(edit.closest(".target"), t));
  const pause = el("button", "btn pause", t.paused ? "Resume" : "Pause");
  pause.type = "button";
  const name = `${t.service} ${t.instance}`;
  pause.addEventListener("click", () =>
    act(`${t.paused ? "Resumed" : "Paused"} ${name}.`, `Could not ${t.paused ? "resume" : "pause"} the target`, () =>
      fleet.patchTarget(t.id, { paused: !t.paused }),
    ),
  );
  const remove = el("button", "btn remove", "Remove");
  remove.type = "button";
  remove.addEventListener("click", () => {
    if (remove.dataset.armed !== "true") {
      remove.dataset.armed = "true";
      remove.textContent = "Click again to remove";
      remove.classList.add("btn-danger");
      setTimeout(() => {
        remove.dataset.armed = "";
        remove.textContent = "Remove";
        remove.classList.remove("btn-danger");
      }, 4000);
      return;
    }
    act(`Removed ${name}.`, "Could not remove the target", () => fleet.removeTarget(t.id));
  });
  const seconds = document.createElement("input");
  seconds.type = "number";
  seconds.min = "1";
  seconds.max = "60";
  seconds.value = "2";
  seconds.className = "input tiny trace-seconds";
  seconds.setAttribute("aria-label", "Trace seconds");
  const trace = el("button", "btn trace", "Capture trace");
  trace.type = "button";
  const result = el("span", "trace-result");
  trace.addEventListener("click", async () => {
    trace.disabled = true;
    result.textContent = `capturing ${seconds.value} s…`;
    try {
      const t0 = await fleet.captureTrace(t.id, seconds.value);
      const a = el("a", "trace-download", `Download trace (${(t0.size / 1024).toFixed(1)} kB)`);
      a.href = t0.download;
      a.download = `trace-${t0.id}.out`;
      result.replaceChildren(a, el("span", "muted", " · open with go tool trace"));
      notify("ok", `Captured a ${t0.seconds} s trace of ${name}.`);
    } catch (err) {
      result.textContent = "";
      showError("The trace was not captured", err);
    } finally {
      trace.disabled = false;
    }
  });
  box.append(edit, pause, remove, seconds, el("span", "muted", "s"), trace, result);
  return box;
}

/** Open the in-place form of target `t` in its card; on success the card is redrawn from the server's answer. */
async function openEditor(card, t) {
  if (card.classList.contains("editing")) return;
  card.classList.add("editing");
  await kindsLoaded; // the form offers the server's kinds
  const close = () => {
    card.classList.remove("editing");
    form.remove();
    card.querySelector("button.edit")?.focus();
  };
  const form = editForm(t, {
    kinds,
    onSaved(updated) {
      const fresh = renderTarget(updated);
      card.replaceWith(fresh);
      fresh.querySelector("button.edit")?.focus();
      notify("ok", `Saved ${updated.service} ${updated.instance}.`);
    },
    onClose: close,
  });
  card.querySelector(".target-head").after(form);
  form.elements.url.focus();
}

function renderTarget(t) {
  const card = el("section", "target");
  card.dataset.id = String(t.id ?? "");
  card.dataset.url = t.url;
  card.dataset.status = statusOf(t);
  const head = el("div", "target-head");
  const status = statusOf(t);
  head.append(el("span", `dot ${status}`), el("strong", "target-service", t.service), el("span", "mono target-url", t.url));
  const labels = el("span", "target-labels");
  for (const [k, v] of Object.entries(t.labels)) labels.append(el("span", "chip mono", `${k}=${v}`));
  head.append(labels, el("span", "muted", `every ${t.interval} · ${STATUS_TEXT[status]}`));
  if (t.owner) {
    // replicas sharing the targets: whose share this one is (null on a single server)
    const owner = el("span", "muted mono target-owner", `replica ${t.owner}`);
    owner.title = "The replica that scrapes this target: its member id, as in /metrics (stackyard_replica_info).";
    head.append(owner);
  }
  head.append(el("span", "spacer"), actions(t));
  const table = el("table", "health-table");
  table.innerHTML = "<thead><tr><th>Profile</th><th>Health</th><th class='num'>Last scrape</th><th class='num'>Duration</th><th>Last error</th></tr></thead>";
  const body = table.createTBody();
  for (const p of t.profiles) body.append(healthRow(p.type, p, t.health[p.type]));
  card.append(head, table);
  return card;
}

/** Fetch and draw the targets; a newer load abandons an older one, whose answer is never drawn. */
const load = latestLoad(async (signal) => {
  const s = state.get();
  if (document.activeElement !== $("service-filter")) $("service-filter").value = s.service;
  try {
    const { targets } = await fleet.targets({ signal });
    if (signal.aborted) return;
    const shown = targets.filter((t) => !s.service || t.service === s.service);
    const list = $("target-list");
    if (!shown.length) {
      list.replaceChildren(el("p", "empty-note", targets.length ? `No target of service “${s.service}”.` : "No targets yet: add one above."));
    } else {
      // a target being edited keeps its card (and the user's unsaved input) until the form is closed
      const editing = new Map([...list.querySelectorAll(".target.editing")].map((card) => [card.dataset.id, card]));
      list.replaceChildren(...shown.map((t) => editing.get(String(t.id ?? "")) || renderTarget(t)));
    }
    const down = shown.filter((t) => statusOf(t) === "down").length;
    $("list-meta").textContent = `${shown.length} target${shown.length === 1 ? "" : "s"}${s.service ? ` of ${s.service}` : ""}`;
    $("targets-summary").textContent = down ? `${down} of ${shown.length} targets down.` : `${shown.length} targets, none down.`;
    $("targets-summary").className = `verdict ${down ? "bad" : "ok"}`;
    clearMessage("load"); // the list loads again: an earlier failure to load it is over
  } catch (err) {
    if (signal.aborted || isAbort(err)) return;
    notify("error", "The targets could not be loaded", err.message, "load");
    $("target-list").replaceChildren(el("p", "empty-note error", "No data: the server did not answer (see the message above)."));
    $("targets-summary").textContent = "Unknown.";
  }
});

let filterTimer = 0;
$("service-filter").addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => state.set({ service: $("service-filter").value.trim() }), 250);
});
$("refresh").addEventListener("click", () => load());
state.subscribe(() => load());
setInterval(() => {
  if (document.visibilityState === "visible" && !busy() && !document.activeElement?.closest?.("form")) load();
}, REFRESH_MS);
load();
