// Editing a scrape target in place on the Targets page: a form pre-filled with the target's current
// values, sent as PATCH /api/v1/targets/{id} with only the fields that changed (so a profile kind's own
// path, seconds or interval, which the form does not show, is kept as it was). Targets from the config
// file or file_sd files are not in the database: the API cannot change them, so they get no form.
// The profile kinds offered are the server's own list (GET /api/v1/profile-kinds), never a copy of it.

import { fleet } from "./api.js";
import { el } from "./dom.js";
import { formatLabelList, parseLabelList } from "./labels.js";

/** Why a target cannot be edited here, or "" when it can. */
export function readOnlyReason(t) {
  if (t.id !== null && t.id !== undefined) return "";
  return t.source === "file_sd"
    ? "It comes from a file_sd file: change that file and the scraper picks it up."
    : "It comes from the config file: change the file and restart the server.";
}

/**
 * A checkbox per profile kind of the server's list (`kinds`: [{name, description, default}]), checked where
 * `checked(kind)` says; a kind the target has that the list lacks is shown too, so it is never dropped.
 */
export function kindBoxes(container, kinds, checked, extra = []) {
  const known = new Set(kinds.map((k) => k.name));
  const all = [...kinds, ...extra.filter((name) => !known.has(name)).map((name) => ({ name, description: "" }))];
  const boxes = all.map((kind) => {
    const label = el("label", "kind");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = kind.name;
    box.checked = checked(kind);
    label.append(box, ` ${kind.name}`);
    if (kind.description) label.title = kind.description;
    return label;
  });
  container.replaceChildren(...boxes);
}

const sameLabels = (a, b) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

function field(label, name, value, { grow = false, type = "text", placeholder = "" } = {}) {
  const wrap = el("label", grow ? "field grow" : "field", label);
  const input = document.createElement("input");
  input.type = type;
  input.name = name;
  input.className = type === "number" ? "input mono small-input" : "input mono";
  input.spellcheck = false;
  input.value = value ?? "";
  if (placeholder) input.placeholder = placeholder;
  wrap.append(" ", input);
  return wrap;
}

/** The PATCH body: the fields whose value in the form differs from the target's. Throws on bad input. */
function changes(t, form) {
  const value = (name) => form.elements[name].value.trim();
  const body = {};
  if (value("url") !== t.url) body.url = value("url");
  if (value("service") !== t.service) body.service = value("service");
  const labels = parseLabelList(value("labels"));
  if (!sameLabels(labels, t.labels)) body.labels = labels;
  if (value("interval") !== t.interval) body.interval = value("interval");
  // An emptied field goes back to the default (null clears it in the API).
  if (value("timeout") !== (t.timeout ?? "")) body.timeout = value("timeout") || null;
  if (value("path_prefix") !== t.path_prefix) body.path_prefix = value("path_prefix");
  const bytes = value("max_response_bytes");
  if (!bytes && t.max_response_bytes != null) body.max_response_bytes = null;
  if (bytes && Number(bytes) !== t.max_response_bytes) {
    if (!/^\d+$/.test(bytes)) throw new Error(`max_response_bytes: "${bytes}" is not a whole number of bytes`);
    body.max_response_bytes = Number(bytes);
  }
  const checked = new Set([...form.querySelectorAll(".edit-kinds input:checked")].map((b) => b.value));
  const enabled = new Set(t.profiles.filter((p) => p.enabled).map((p) => p.type));
  if (checked.size !== enabled.size || [...checked].some((k) => !enabled.has(k))) {
    const known = new Set(t.profiles.map((p) => p.type));
    body.profiles = [
      ...t.profiles.map((p) => ({
        type: p.type,
        enabled: checked.has(p.type),
        path: p.path,
        seconds: p.seconds,
        ...(p.interval ? { interval: p.interval } : {}),
      })),
      ...[...checked].filter((k) => !known.has(k)),
    ];
  }
  return body;
}

/**
 * The edit form of target `t`, offering the server's profile `kinds`. `onSaved(updated)` gets the server's
 * answer after a successful PATCH, `onClose()` is called on Cancel; a refusal stays in the form with the
 * server's own message.
 */
export function editForm(t, { kinds, onSaved, onClose }) {
  const form = el("form", "target-edit");
  form.autocomplete = "off";
  form.setAttribute("aria-label", `Edit ${t.service} ${t.url}`);
  const fieldset = el("fieldset", "field kinds edit-kinds");
  const boxes = el("span");
  fieldset.append(el("legend", "field-label", "Profiles"), boxes);
  kindBoxes(
    boxes,
    kinds,
    (kind) => t.profiles.some((p) => p.type === kind.name && p.enabled),
    t.profiles.map((p) => p.type),
  );
  const error = el("pre", "alert-message edit-error");
  error.setAttribute("role", "alert");
  error.hidden = true;
  const save = el("button", "btn btn-primary save", "Save");
  save.type = "submit";
  const cancel = el("button", "btn cancel", "Cancel");
  cancel.type = "button";
  cancel.addEventListener("click", onClose);
  const buttons = el("div", "edit-buttons");
  buttons.append(save, cancel);
  form.append(
    field("URL", "url", t.url, { grow: true }),
    field("Service", "service", t.service),
    field("Labels", "labels", formatLabelList(t.labels), { grow: true, placeholder: "env=prod, version=1.5" }),
    field("Interval", "interval", t.interval),
    field("Timeout", "timeout", t.timeout, { placeholder: "default" }),
    field("Path prefix", "path_prefix", t.path_prefix),
    field("Max response bytes", "max_response_bytes", t.max_response_bytes, { type: "number", placeholder: "default" }),
    fieldset,
    buttons,
    error,
  );
  const refuse = (err) => {
    error.textContent = err.message;
    error.hidden = false;
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    let body;
    try {
      body = changes(t, form);
    } catch (err) {
      refuse(err);
      return;
    }
    if (!Object.keys(body).length) {
      onClose();
      return;
    }
    save.disabled = true;
    try {
      onSaved(await fleet.patchTarget(t.id, body));
    } catch (err) {
      refuse(err);
    } finally {
      save.disabled = false;
    }
  });
  form.addEventListener("keydown", (e) => {
    if (e.key === "Escape") onClose();
  });
  return form;
}
