// Sign-in: POST the token to /api/v1/login, which answers with an HttpOnly cookie this script never sees,
// then go back to the page that sent us here.

import { $ } from "./dom.js";

/**
 * Where to go after signing in: ?next= resolved against this page's origin, kept only if it stays there.
 *
 * Checking the raw text is not enough: the browser's URL parser drops tabs and newlines, reads "\\" as "/"
 * and collapses "/./", so "/\t/evil.example" or "/.//evil.example" become "//evil.example", another site.
 * Resolving with the parser itself and comparing origins sees what the browser will do; the absolute URL is
 * returned, so nothing is parsed a second time.
 */
export function safeNext(raw, origin = window.location.origin) {
  const home = new URL("/", origin).href;
  if (typeof raw !== "string" || raw === "") {
    return home;
  }
  let url;
  try {
    url = new URL(raw, origin);
  } catch {
    return home;
  }
  return url.origin === origin ? url.href : home;
}

async function submit(event) {
  event.preventDefault();
  const input = $("token");
  const error = $("login-error");
  const button = $("login-submit");
  error.hidden = true;
  button.disabled = true;
  try {
    const response = await fetch("/api/v1/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: input.value.trim() }),
      credentials: "same-origin",
    });
    if (response.ok) {
      const next = new URLSearchParams(window.location.search).get("next");
      window.location.assign(safeNext(next));
      return;
    }
    const body = await response.json().catch(() => ({}));
    error.textContent = response.status === 401 ? "That token was not accepted." : body.error || `HTTP ${response.status}`;
    error.hidden = false;
  } catch (exc) {
    error.textContent = `Cannot reach the server: ${exc.message}`;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

$("login-form")?.addEventListener("submit", submit);
