// The Leaks page: ranked leak suspects over a time range, each linked to its stack and its trend,
// and the goroutines of every instance at the end of the range, grouped by state and stack.

import { ApiError, getJSON, isAbort } from "./api.js";
import { $, el, latestLoad, showBanner } from "./dom.js";
import { renderHeader } from "./header.js";
import { LineChart } from "./linechart.js";
import { apiTime, parseTimeMs } from "./time.js";

const integer = new Intl.NumberFormat("en-US");
const DEFAULTS = { query: "", from: "now-1h", to: "now" };

/** `stackyard/examples/demo/main.go:212` → `main.go:212`: the file people recognise. */
export function shortLocation(location) {
  const slash = location.lastIndexOf("/");
  return slash >= 0 ? location.slice(slash + 1) : location;
}

function minutes(n) {
  return `${integer.format(n)} minute${n === 1 ? "" : "s"}`;
}

const code = (text, title = "") => el("code", { className: "mono", title }, text);

function labelText(labels) {
  return Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(", ");
}

/**
 * "1,204 goroutines in `chan receive` for over 30 minutes at `main.leakyWorker` (worker.go:42),
 * created by `main.startWorkers`": one sentence per group, as an array of nodes.
 */
export function groupSentence(group) {
  const parts = [`${integer.format(group.count)} goroutine${group.count === 1 ? "" : "s"} in `, code(group.state)];
  const median = Math.floor(group.median_wait_minutes);
  if (median >= 1) parts.push(` for over ${minutes(median)}`);
  if (group.max_wait_minutes > median) parts.push(` (longest ${minutes(group.max_wait_minutes)})`);
  if (group.function) {
    parts.push(" at ", code(group.function), " (", code(shortLocation(group.location), group.location), ")");
  }
  if (group.created_by) parts.push(", created by ", code(group.created_by, group.created_at));
  if (group.locked) parts.push(`, ${integer.format(group.locked)} locked to their OS thread`);
  return parts;
}

function framesList(frames) {
  const list = el("ol", "stack-frames mono");
  for (const f of frames) {
    list.append(el("li", "", el("span", "frame-fn", f.function), el("span", "frame-loc", ` ${f.file}:${f.line}`)));
  }
  return list;
}

function stackDetails(summary, frames, createdBy, createdAt) {
  const details = el("details", "stack", el("summary", "", summary), framesList(frames));
  if (createdBy) details.append(el("p", "frame-created mono", `created by ${createdBy} ${createdAt}`));
  return details;
}

class LeaksPage {
  constructor() {
    // the page's load: a new one (a submitted range, back/forward) abandons the one still running
    this.load = latestLoad((signal) => this.show(signal));
    this.trendController = null;
    this.trend = new LineChart($("trend"), { label: "Goroutines of the suspect's stack over time", empty: "No dumps in this range." });
    this.params = { ...DEFAULTS, ...Object.fromEntries(new URLSearchParams(location.search)) };
    for (const name of ["query", "from", "to"]) $(name).value = this.params[name] || "";
    $("querybar").addEventListener("submit", (event) => {
      event.preventDefault();
      this.params = { query: $("query").value.trim(), from: $("from").value.trim() || DEFAULTS.from, to: $("to").value.trim() || DEFAULTS.to };
      const search = new URLSearchParams(Object.entries(this.params).filter(([, v]) => v));
      history.pushState(null, "", `${location.pathname}?${search}`);
      this.load();
    });
    window.addEventListener("popstate", () => {
      this.params = { ...DEFAULTS, ...Object.fromEntries(new URLSearchParams(location.search)) };
      for (const name of ["query", "from", "to"]) $(name).value = this.params[name] || "";
      this.load();
    });
  }

  /** The suspects and groups of the range in the URL, and the leak profile where a target serves one. */
  async show(signal) {
    const { query, from, to } = this.params;
    showBanner(null);
    $("trend-panel").hidden = true;
    try {
      const [leaks, groups] = await Promise.all([
        getJSON("/api/v1/goroutines/leaks", { query, from, to }, { signal }),
        getJSON("/api/v1/goroutines/groups", { query, at: to }, { signal }),
      ]);
      this.renderSuspects(leaks);
      this.renderGroups(groups);
      await this.loadLeakProfile(signal);
    } catch (err) {
      if (isAbort(err)) return;
      showBanner(err instanceof ApiError ? err : new ApiError(String(err)));
      $("suspects").replaceChildren();
      $("groups").replaceChildren();
    }
  }

  renderSuspects(body) {
    const list = el("ol", "suspects");
    body.suspects.forEach((s, index) => {
      const growth = `+${integer.format(Math.round(s.growth_per_hour))}/hour`;
      const head = el(
        "p",
        "suspect-line",
        el("strong", "", `#${index + 1} `),
        code(s.function || "(unknown)"),
        " (",
        code(shortLocation(s.location), s.location),
        `) in `,
        code(s.state),
        `: ${integer.format(s.count_start)} → ${integer.format(s.count_end)} goroutines, ${growth}, rising ${Math.round(s.rising_fraction * 100)}% of the range`,
        s.waits_growing ? ", waits growing" : "",
        s.created_by ? ", created by " : "",
        s.created_by ? code(s.created_by) : "",
      );
      const where = el("p", "suspect-labels mono", `{${labelText(s.labels)}}`);
      const trend = el("a", { href: "#trend", className: "btn btn-ghost trend-link" }, "Trend");
      trend.addEventListener("click", (event) => {
        event.preventDefault();
        this.showTrend(s);
      });
      const item = el("li", { className: "suspect", id: `suspect-${index + 1}` }, head, where, trend);
      item.dataset.stackId = String(s.stack_id);
      item.append(stackDetails("Stack", s.frames, s.created_by, ""));
      list.append(item);
    });
    $("suspects-meta").replaceChildren(`${body.suspects.length} suspect${body.suspects.length === 1 ? "" : "s"} · `, apiTime(body.from), " to ", apiTime(body.to));
    $("suspects").replaceChildren(body.suspects.length ? list : el("p", "empty", "No stack grew steadily in this range."));
  }

  /** Go's own leak detector (`goroutineleak`, Go with GOEXPERIMENT=goroutineleakprofile): shown where stored. */
  async loadLeakProfile(signal) {
    const { query, from, to } = this.params;
    const params = { type: "goroutineleak", query, from, to };
    let top;
    try {
      top = await getJSON("/api/v1/top", { ...params, limit: 200 }, { signal });
    } catch (err) {
      if (isAbort(err)) throw err;
      $("goleak-panel").hidden = true; // no such profiles here: nothing to show
      return;
    }
    if (!top.profiles) {
      $("goleak-panel").hidden = true;
      return;
    }
    const rows = top.rows.filter((r) => !r.name.startsWith("runtime.")).sort((a, b) => b.cum - a.cum).slice(0, 10);
    const list = el("ul", "groups");
    for (const row of rows) {
      list.append(el("li", "group goleak-row", el("p", "group-line", `${integer.format(Math.round(row.cum))} leaked goroutine${Math.round(row.cum) === 1 ? "" : "s"} under `, code(row.name))));
    }
    const per = top.aggregation === "avg" && top.profiles > 1 ? "average per profile" : "in the profile";
    $("goleak-meta").textContent = `${top.profiles} profile${top.profiles === 1 ? "" : "s"} · ${per}: ${integer.format(Math.round(top.total))} leaked goroutines`;
    $("goleak-explore").href = `/?${new URLSearchParams(Object.entries(params).filter(([, v]) => v))}`;
    $("goleak").replaceChildren(list);
    $("goleak-panel").hidden = false;
  }

  async showTrend(suspect) {
    this.trendController?.abort();
    this.trendController = new AbortController();
    const { from, to } = this.params;
    const instance = `{${labelText(suspect.labels)}}`;
    try {
      const body = await getJSON(`/api/v1/goroutines/stacks/${suspect.stack_id}/trend`, { query: instance, from, to }, { signal: this.trendController.signal });
      const points = body.series.length ? body.series[0].points : [];
      $("trend-meta").textContent = `${suspect.function} on ${instance}`;
      $("trend-panel").hidden = false; // before drawing: the chart takes the panel's width
      this.trend.setData(trendSeries(suspect, points, from, to));
      const last = points[points.length - 1];
      $("trend-hint").textContent = `${points.length} dumps; last: ${last ? integer.format(last.count) : 0} of ${last ? integer.format(last.goroutines) : 0} goroutines · hover a point for its values`;
      $("trend-panel").scrollIntoView({ block: "nearest" });
    } catch (err) {
      if (!isAbort(err)) showBanner(err);
    }
  }

  renderGroups(body) {
    const blocks = [];
    for (const instance of body.instances) {
      const list = el("ul", "groups");
      for (const group of instance.groups) {
        const item = el("li", "group", el("p", "group-line", ...groupSentence(group)));
        item.dataset.stackId = String(group.stack_id);
        item.append(stackDetails("Stack", group.frames, group.created_by, group.created_at));
        list.append(item);
      }
      blocks.push(
        el(
          "div",
          "instance",
          el("h3", "mono", `{${labelText(instance.labels)}}`),
          el("p", "hint", `${integer.format(instance.goroutines)} goroutines in the dump of `, apiTime(instance.time)),
          list,
        ),
      );
    }
    $("groups-meta").replaceChildren("newest dump at or before ", apiTime(body.at));
    $("groups").replaceChildren(...(blocks.length ? blocks : [el("p", "empty", "No goroutine dump stored for these instances at this time.")]));
  }
}

/**
 * The line chart's data for a suspect's trend: its stack's count per dump (the line that matters, with the
 * y axis from 0 so growth reads honestly) beside all the instance's goroutines.
 */
function trendSeries(suspect, points, from, to) {
  const now = Date.now();
  const at = (p) => p.time_ns / 1e9;
  const series = [
    { key: "stack", name: `${suspect.function || "this stack"} (this stack)`, points: points.map((p) => [at(p), p.count]) },
    { key: "all", name: "all goroutines of the instance", points: points.map((p) => [at(p), p.goroutines]) },
  ];
  let fromMs = parseTimeMs(from, now);
  let toMs = parseTimeMs(to, now);
  if (points.length) {
    // the points always fit: a range typed as an odd time still shows every dump
    const first = at(points[0]) * 1000;
    const last = at(points[points.length - 1]) * 1000;
    fromMs = Number.isNaN(fromMs) ? first : Math.min(fromMs, first);
    toMs = Number.isNaN(toMs) ? Math.max(last, first + 1000) : Math.max(toMs, last);
  }
  return { series: points.length ? series : [], total: null, unit: "count", fromMs, toMs, step: 0 };
}

renderHeader();
const page = new LeaksPage();
window.__stackyard = { ...(window.__stackyard || {}), leaks: page };
page.load();
