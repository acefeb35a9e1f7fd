// The header shared by every page: brand, navigation (one entry per page), server version.

import { getJSON } from "./api.js";

export const PAGES = [
  { id: "overview", href: "/", label: "Overview" },
  { id: "explore", href: "/explore", label: "Explore" },
  { id: "diff", href: "/diff", label: "Diff" },
  { id: "goroutines", href: "/goroutines", label: "Goroutines" },
  { id: "leaks", href: "/leaks", label: "Leaks" },
  { id: "targets", href: "/targets", label: "Targets" },
  { id: "alerts", href: "/alerts", label: "Alerts" },
];

const LOGO = `<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
<rect x="2" y="3" width="20" height="4.2" rx="1.2" fill="#4c6ef5"/>
<rect x="2" y="8.4" width="12" height="4.2" rx="1.2" fill="#f08c00"/>
<rect x="15" y="8.4" width="7" height="4.2" rx="1.2" fill="#37b24d"/>
<rect x="2" y="13.8" width="7" height="4.2" rx="1.2" fill="#e8590c"/>
<rect x="15" y="13.8" width="4" height="4.2" rx="1.2" fill="#74b816"/>
<rect x="2" y="19.2" width="4" height="2.8" rx="1" fill="#d9480f"/></svg>`;

/** Fill `<header class="app-header" data-page="ID">` with the brand and the navigation. */
export function renderHeader(header = document.querySelector(".app-header")) {
  if (!header) return;
  const current = header.dataset.page;
  const brand = document.createElement("a");
  brand.className = "brand";
  brand.href = "/";
  brand.innerHTML = `${LOGO}<span>Stackyard</span>`;
  const nav = document.createElement("nav");
  nav.className = "nav";
  nav.setAttribute("aria-label", "Pages");
  for (const page of PAGES) {
    const a = document.createElement("a");
    a.href = page.href;
    a.textContent = page.label;
    if (page.id === current) a.setAttribute("aria-current", "page");
    nav.append(a);
  }
  const version = document.createElement("span");
  version.className = "version";
  header.replaceChildren(brand, nav, version);
  getJSON("/healthz")
    .then((h) => {
      version.textContent = `v${h.version}`;
    })
    .catch(() => {
      version.textContent = "server unreachable";
      version.classList.add("down");
    });
}
