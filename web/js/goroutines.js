// The goroutines page: goroutine counts per instance (or per any label) over time, with the fleet total;
// a click on a point opens the goroutine flame graph of that moment (the profiles of that step).

import { api, isAbort } from "./api.js";
import { $, latestLoad, showBanner } from "./dom.js";
import { FlameGraph } from "./flamegraph.js";
import { renderHeader } from "./header.js";
import { formatValue } from "./format.js";
import { describeLabels, narrow } from "./labels.js";
import { LineChart } from "./linechart.js";
import { SelectorInput } from "./selector.js";
import { UrlState } from "./state.js";
import { describeRange, parseTimeMs, PRESETS, timeElement } from "./time.js";

const TYPE = "goroutine";
const TOTAL = "__total__";
const state = new UrlState({ query: "", group_by: "instance", from: "now-1h", to: "now", at: "", pick: "", step: "" });

renderHeader();

for (const p of PRESETS) $("range").append(new Option(p.label, p.from));
const groupBy = $("group-by");
function setGroupOptions(names, selected) {
  const wanted = new Set(["instance", "service", ...names]);
  if (selected) wanted.add(selected);
  const options = [new Option("each series", "")];
  for (const n of [...wanted].sort()) options.push(new Option(n, n));
  groupBy.replaceChildren(...options);
  groupBy.value = selected;
}
setGroupOptions([], state.get().group_by);

const chart = new LineChart($("chart"), {
  onPick({ series, t }) {
    state.set({ at: String(t), pick: series ? series.key : TOTAL, step: String(lastStep) }, { push: true });
  },
});
const flame = new FlameGraph($("flamegraph"), {});
flame.setMessage("Pick a point on the chart to see what its goroutines were doing.");

new SelectorInput($("query"), $("query-suggestions"), { getType: () => TYPE, onSubmit: () => submit() });

function submit() {
  state.set({ query: $("query").value.trim(), group_by: groupBy.value, from: $("range").value, to: "now" }, { push: true });
}
$("querybar").addEventListener("submit", (e) => {
  e.preventDefault();
  submit();
});
groupBy.addEventListener("change", () => submit());
$("range").addEventListener("change", () => submit());

/** The banner, and the selector marked invalid when the server named the query as the problem. */
function showError(err) {
  showBanner(err);
  if (err && /^query:/.test(err.message)) $("query").setAttribute("aria-invalid", "true");
  else $("query").removeAttribute("aria-invalid");
}

let lastStep = 60;
let groups = new Map(); // key → labels of the group

/**
 * The fleet total per step: each line's last known count added up. A line without a point in a step (its
 * instance was scraped less often, or pushed) still has its goroutines, so its previous value counts.
 */
export function fleetTotal(series) {
  const times = [...new Set(series.flatMap((line) => line.points.map((p) => p[0])))].sort((a, b) => a - b);
  const at = series.map(() => 0);
  const last = series.map(() => null);
  return times.map((t) => {
    let sum = 0;
    series.forEach((line, k) => {
      while (at[k] < line.points.length && line.points[at[k]][0] <= t) last[k] = line.points[at[k]++][1];
      if (last[k] !== null) sum += last[k];
    });
    return [t, sum];
  });
}

/** The chart: one line per group, and the fleet total (the groups added up per step) when there are several. */
async function loadChart(s, signal) {
  const now = Date.now();
  const fromMs = parseTimeMs(s.from, now);
  const toMs = parseTimeMs(s.to, now);
  $("chart-panel").classList.add("is-loading");
  try {
    const ts = await api.timeseries({ type: TYPE, query: s.query, from: s.from, to: s.to, group_by: s.group_by }, { signal });
    lastStep = ts.step;
    groups = new Map();
    const series = ts.series.map((line) => {
      const key = JSON.stringify(line.labels);
      groups.set(key, line.labels);
      return { key, name: describeLabels(line.labels), points: line.points };
    });
    const total = series.length > 1 ? { key: TOTAL, name: "fleet total", points: fleetTotal(series) } : null;
    chart.setData({ series, total, unit: ts.unit, fromMs, toMs, step: ts.step });
    chart.select(s.pick || null, s.at ? Number(s.at) : null);
    const per = ts.aggregation === "avg" ? "average per profile" : ts.aggregation;
    $("chart-meta").textContent =
      `${per} per ${ts.step} s step${s.group_by ? `, the series of each ${s.group_by} added up` : ""}` +
      (total ? " · fleet total: the sum of every line's last count" : "");
  } catch (err) {
    if (isAbort(err)) return;
    showError(err);
    chart.setMessage("No data: the query failed (see the message above).");
    $("chart-meta").textContent = "";
  } finally {
    if (!signal.aborted) $("chart-panel").classList.remove("is-loading");
  }
}

/** The flame graph of the picked step: every goroutine profile of the group between `at` and `at + step`. */
async function loadMoment(s, signal) {
  if (!s.at) {
    flame.setMessage("Pick a point on the chart to see what its goroutines were doing.");
    $("moment-meta").textContent = "Pick a point on the chart.";
    $("moment-explore").hidden = true;
    return;
  }
  const at = Number(s.at);
  const step = Number(s.step) || lastStep;
  let labels = {};
  if (s.pick && s.pick !== TOTAL) {
    try {
      labels = JSON.parse(s.pick);
    } catch {
      labels = {};
    }
  }
  const q = { type: TYPE, query: narrow(s.query, labels), from: String(at), to: String(at + step - 0.001) };
  $("moment-panel").classList.add("is-loading");
  const who = s.pick === TOTAL || !s.pick ? "the whole selection" : describeLabels(labels);
  try {
    const [graph, list] = await Promise.all([api.flamegraph(q, { signal }), api.profiles({ ...q, limit: 1000 }, { signal })]);
    flame.setData(graph);
    const n = list.profiles.length;
    // The flame graph of several profiles is their average per profile: say so, and for the fleet total
    // say that the chart's number is a sum, so the two are never read as the same thing.
    let what = "";
    if (n > 1 && graph.aggregation === "avg") {
      what = ` · the flame graph is their average per profile (${formatValue(graph.total, graph.unit)} goroutines)`;
      if (s.pick === TOTAL || !s.pick) what += "; the chart's fleet total adds up the instances";
    }
    $("moment-meta").replaceChildren(`${who} · `, timeElement(at * 1000), ` · ${n} profile${n === 1 ? "" : "s"}${what}`);
    const link = $("moment-explore");
    link.href = `/explore?${new URLSearchParams({ type: TYPE, query: q.query, from: q.from, to: q.to })}`;
    link.hidden = false;
  } catch (err) {
    if (isAbort(err)) return;
    showError(err);
    flame.setMessage("No data: the query failed (see the message above).");
  } finally {
    if (!signal.aborted) $("moment-panel").classList.remove("is-loading");
  }
}

function syncForm(s) {
  if (document.activeElement !== $("query")) $("query").value = s.query;
  if (![...groupBy.options].some((o) => o.value === s.group_by)) setGroupOptions([], s.group_by);
  groupBy.value = s.group_by;
  const range = $("range");
  if (![...range.options].some((o) => o.value === s.from)) range.append(new Option(describeRange(s.from, s.to), s.from));
  range.value = s.from;
}

/** The chart when its query changed (`previous`: the state drawn before, null at first), and the picked moment. */
const load = latestLoad(async (signal, previous) => {
  const s = state.get();
  syncForm(s);
  showError(null);
  const chartChanged = !previous || UrlState.differs(s, previous, ["query", "group_by", "from", "to"]);
  const jobs = [];
  if (chartChanged) jobs.push(loadChart(s, signal));
  else chart.select(s.pick || null, s.at ? Number(s.at) : null);
  jobs.push(loadMoment(s, signal));
  await Promise.allSettled(jobs);
});

state.subscribe((s, previous) => load(previous));
api.labelNames(TYPE).then(
  (r) => setGroupOptions(r.names, state.get().group_by),
  () => {}, // the chart's own request reports a server that does not answer
);
load(null);
