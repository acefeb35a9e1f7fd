// The sample type <select> of the Explore and Diff pages. A profile kind has several sample types (heap:
// alloc_objects, alloc_space, inuse_objects, inuse_space) and the server knows no list of them apart from
// the stored profiles, so the options are learnt from the answers of each query: the names of one stored
// profile's totals, and the default named by the query's own answer ("sample_type").

import { api } from "./api.js";

/** Options "" (the profile's default, labelled with its name once known) and `names`; selects `selected`. */
export function setSampleOptions(select, names, selected, defaultName = "") {
  const options = [new Option(defaultName ? `${defaultName} (default)` : "default", "")];
  for (const n of names) if (n && n !== defaultName) options.push(new Option(n, n));
  select.replaceChildren(...options);
  select.value = [...select.options].some((o) => o.value === selected) ? selected : "";
}

/**
 * Select `sample` from the URL. A type the options do not list yet (a link opened before any answer, or
 * a new profile type chosen) becomes the only named option until the answers tell the real list.
 */
export function showSample(select, sample) {
  if (![...select.options].some((o) => o.value === sample)) setSampleOptions(select, [sample || ""], sample);
  select.value = sample;
}

/**
 * Once `answered` (a query's answer carrying `sample_type`, or null when it failed) resolves, fill the
 * options with the sample types of one stored profile that `q` (type, query, from, to) matches.
 */
export async function learnSampleTypes(select, q, answered, selected, signal) {
  const profiles = api.profiles({ type: q.type, query: q.query, from: q.from, to: q.to, limit: 1 }, { signal }).catch(() => null);
  const [answer, found] = await Promise.all([answered, profiles]);
  if (signal.aborted || !answer) return;
  const names = found && found.profiles.length ? Object.keys(found.profiles[0].totals) : [answer.sample_type];
  setSampleOptions(select, names, selected, selected ? "" : answer.sample_type);
}
