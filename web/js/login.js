// Sign-in: POST the token to /api/v1/login, which answers with an HttpOnly cookie this script never sees,
// then go back to the page that sent us here.

/** Only same-origin paths: a crafted ?next= must not send a signed-in user to another site. */
export function safeNext(raw) {
  if (typeof raw !== "string" || !raw.startsWith("/") || raw.startsWith("//") || raw.startsWith("/\\")) {
    return "/";
  }
  return raw;
}

async function submit(event) {
  event.preventDefault();
  const input = document.getElementById("token");
  const error = document.getElementById("login-error");
  const button = document.getElementById("login-submit");
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

document.getElementById("login-form")?.addEventListener("submit", submit);
