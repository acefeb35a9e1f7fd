// What every page's script needs of the document: an element by id, new elements, the error banner, and
// the opening that every page's load() shares. One copy here, so the pages build their DOM one way.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/**
 * A new element: `el("td", "num", "12 ms")`, `el("a", { href: "#trend", className: "btn" }, "Trend", icon)`.
 *
 * `props` is a class name, or properties to set on the element (a name with a dash, `data-rule` or
 * `aria-label`, is set as an attribute). Children are nodes or text; null, undefined and "" add nothing,
 * so a child can be written as `error ? el(...) : null`.
 */
export function el(tag, props = "", ...children) {
  const node = document.createElement(tag);
  if (typeof props === "string") {
    if (props) node.className = props;
  } else {
    for (const [key, value] of Object.entries(props)) {
      if (key.includes("-")) node.setAttribute(key, value);
      else node[key] = value;
    }
  }
  for (const child of children) if (child !== null && child !== undefined && child !== "") node.append(child);
  return node;
}

/** The page's error banner (`#error`, the text in `#error-message`): the server's words for `err`, or hidden. */
export function showBanner(err) {
  $("error").hidden = !err;
  $("error-message").textContent = err ? err.message : "";
}

/**
 * A page's load(), with the opening every page shares. Calling it abandons the load still running: that
 * one's requests are aborted through its `signal`, so a late answer never paints over a newer one. The
 * page is marked busy (`body.is-loading`, which the tests and benchmarks wait on) until the newest load
 * has ended. `work(signal, ...args)` is the page's own part; the returned function passes its arguments on.
 */
export function latestLoad(work) {
  let controller = null;
  return async (...args) => {
    if (controller) controller.abort();
    controller = new AbortController();
    const { signal } = controller;
    document.body.classList.add("is-loading");
    try {
      return await work(signal, ...args);
    } finally {
      if (!signal.aborted) document.body.classList.remove("is-loading");
    }
  };
}
