// View state lives in the URL's query string, so a shared link reopens the same view and back/forward work.
//
// A page declares its keys and their defaults; values equal to the default are left out of the URL.
// `set(patch, {push: true})` adds a history entry (a new query); `{push: false}` replaces the current one
// (view details such as a search term or the zoomed frame, which should not flood the history).

export class UrlState {
  /** @param {Record<string, string|null>} defaults key → default value (null: absent unless set) */
  constructor(defaults) {
    this.defaults = { ...defaults };
    this.listeners = new Set();
    this.current = this.read();
    window.addEventListener("popstate", () => {
      const previous = this.current;
      this.current = this.read();
      this.emit(previous, "history");
    });
  }

  read() {
    const params = new URLSearchParams(window.location.search);
    const state = {};
    for (const [key, fallback] of Object.entries(this.defaults)) {
      state[key] = params.has(key) ? params.get(key) : fallback;
    }
    return state;
  }

  get() {
    return { ...this.current };
  }

  url(state = this.current) {
    const params = new URLSearchParams();
    for (const [key, fallback] of Object.entries(this.defaults)) {
      const value = state[key];
      if (value !== null && value !== undefined && value !== fallback) params.set(key, value);
    }
    const qs = params.toString();
    return `${window.location.pathname}${qs ? `?${qs}` : ""}`;
  }

  /** Merge `patch` into the state; push a history entry or replace the current one; tell listeners. */
  set(patch, { push = false, silent = false } = {}) {
    const previous = this.current;
    const next = { ...previous, ...patch };
    const changed = Object.keys(this.defaults).some((k) => next[k] !== previous[k]);
    if (!changed) return;
    this.current = next;
    const url = this.url(next);
    if (push) window.history.pushState(null, "", url);
    else window.history.replaceState(null, "", url);
    if (!silent) this.emit(previous, push ? "push" : "replace");
  }

  /** `fn(state, previous, how)` after every change; `how` is "push", "replace" or "history" (back/forward). */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(previous, how) {
    for (const fn of this.listeners) fn(this.get(), previous, how);
  }

  /** Whether any of `keys` differs between two states. */
  static differs(a, b, keys) {
    return keys.some((k) => a[k] !== b[k]);
  }
}
