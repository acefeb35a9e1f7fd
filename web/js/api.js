// The Stackyard HTTP API (docs/api.md): JSON in, readable errors out.

/** An API or network failure with a message fit to show: the server's own `{"error": ...}` text when it sent one. */
export class ApiError extends Error {
  constructor(message, status = 0, path = "") {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.path = path;
  }
}

/** `/api/v1/top` + `{type: "cpu", query: ""}` → `/api/v1/top?type=cpu`; empty values are left out, arrays repeat. */
export function apiUrl(path, params = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== "") search.append(key, String(v));
    }
  }
  const qs = search.toString();
  return qs ? `${path}?${qs}` : path;
}

async function readError(response, path) {
  const text = await response.text().catch(() => "");
  let message = "";
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === "string") message = body.error;
    else if (body && typeof body.detail === "string") message = body.detail;
  } catch {
    // not JSON: a proxy's HTML page or plain text
  }
  if (!message) {
    const first = text.replace(/<[^>]*>/g, " ").trim().split("\n")[0].slice(0, 200);
    message = `HTTP ${response.status} ${response.statusText}${first ? `: ${first}` : ""}`;
  }
  return new ApiError(message, response.status, path);
}

/** GET a JSON endpoint. Rejects with ApiError (or the AbortError of `signal`). */
export async function getJSON(path, params = {}, { signal } = {}) {
  return readJSON(fetch(apiUrl(path, params), { signal, headers: { Accept: "application/json" } }), path);
}

/** The JSON answer of a fetch already under way (a page may start one before its modules load). */
export async function readJSON(request, path) {
  let response;
  try {
    response = await request;
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(`Cannot reach the Stackyard server (${err.message})`, 0, path);
  }
  if (!response.ok) throw await readError(response, path);
  try {
    return await response.json();
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(`The server sent a response that is not JSON (${path})`, response.status, path);
  }
}

export const isAbort = (err) => err && err.name === "AbortError";

/** The query endpoints, named. `q` holds the common parameters: type, query, from, to, sample. */
export const api = {
  top: (q, opts) => getJSON("/api/v1/top", q, opts),
  flamegraph: (q, opts) => getJSON("/api/v1/flamegraph", q, opts),
  diff: (q, opts) => getJSON("/api/v1/diff", q, opts),
  sandwich: (q, opts) => getJSON("/api/v1/sandwich", q, opts),
  timeseries: (q, opts) => getJSON("/api/v1/timeseries", q, opts),
  profiles: (q, opts) => getJSON("/api/v1/profiles", q, opts),
  // `range`: {from, to} where pprof sample labels are looked for (series labels are found at any time)
  labelNames: (type, opts, range = {}) => getJSON("/api/v1/labels", { type, ...range }, opts),
  labelValues: (name, type, opts, range = {}) =>
    getJSON(`/api/v1/labels/${encodeURIComponent(name)}/values`, { type, ...range }, opts),
  pprofUrl: (q) => apiUrl("/api/v1/pprof", q),
};

/** POST, PATCH or DELETE with a JSON body; resolves to the JSON answer (null for 204). Rejects with ApiError. */
export async function sendJSON(method, path, body = undefined, params = {}) {
  const url = apiUrl(path, params);
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: body === undefined ? { Accept: "application/json" } : { Accept: "application/json", "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(`Cannot reach the Stackyard server (${err.message})`, 0, path);
  }
  if (!response.ok) throw await readError(response, path);
  if (response.status === 204) return null;
  return response.json();
}

/** The fleet and targets endpoints. */
export const fleet = {
  instances: (opts) => getJSON("/api/v1/fleet", {}, opts),
  profileKinds: (opts) => getJSON("/api/v1/profile-kinds", {}, opts),
  targets: (opts) => getJSON("/api/v1/targets", {}, opts),
  series: (q, opts) => getJSON("/api/v1/series", q, opts),
  addTarget: (body) => sendJSON("POST", "/api/v1/targets", body),
  patchTarget: (id, body) => sendJSON("PATCH", `/api/v1/targets/${id}`, body),
  removeTarget: (id) => sendJSON("DELETE", `/api/v1/targets/${id}`),
  captureTrace: (id, seconds) => sendJSON("POST", `/api/v1/targets/${id}/trace`, undefined, { seconds }),
};
