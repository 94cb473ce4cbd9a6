// The demo's per-event cost: after each tracked event (views, and a new search every fifth event), one
// recommend({ k: 12, diversity: 0.3, inStockOnly: true }): tokenize and encode the new query, run the
// interest model over the session (up to its 50 events), rank 1,682 items with the filter and MMR.
// Measured from the page, for both entries (the model on the page, and in the worker). The baseline in the
// same run is similar() with the same options: ranking alone, with no model and no text.
import * as page from "../pkg/index.js";
import * as worker from "../pkg/worker.js";

const params = new URLSearchParams(location.search);
const bundle = new URL(params.get("bundle") ?? "ml100k/manifest.json", location.href).href;
const sessions = Number(params.get("sessions") ?? 4);
const device = params.get("device") ?? "cpu";
const EVENTS = 60;
const OPTS = { k: 12, diversity: 0.3, inStockOnly: true };
const WORDS = ["space", "love", "war", "crime", "comedy", "western", "murder", "alien", "family", "music", "ship",
  "city", "night", "ghost", "island", "robot", "spy", "detective", "dragon", "school"];

const log = (s) => {
  document.getElementById("log").textContent += s + "\n";
  console.log(s);
};
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

// A seeded generator, so both entries see the same sessions.
function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
}

async function measure(name, api, ids) {
  const rec = await api.Recommender.load(bundle, { device, cache: false });
  const wall = [];
  const stages = { tokenizeMs: [], modelMs: [], rankMs: [] };
  const base = [];
  const searched = [];
  const rand = rng(7);
  let queries = 0;
  for (let s = 0; s < sessions; s++) {
    await rec.reset();
    for (let e = 0; e < EVENTS; e++) {
      if (e % 5 === 4) {
        const q = `${WORDS[Math.floor(rand() * WORDS.length)]} ${WORDS[Math.floor(rand() * WORDS.length)]} ${queries++}`;
        rec.track({ type: "search", query: q });
      } else {
        rec.track({ type: rand() < 0.8 ? "view" : "add_to_cart", itemId: ids[Math.floor(rand() * ids.length)], ts: Date.now() + e * 5000 });
      }
      const t0 = performance.now();
      const out = await rec.recommend(OPTS);
      wall.push(performance.now() - t0);
      searched.push(e % 5 === 4);
      for (const k of Object.keys(stages)) stages[k].push(out.timings[k]);
      const t1 = performance.now();
      await rec.similar(ids[e % ids.length], OPTS);
      base.push(performance.now() - t1);
    }
  }
  const backend = rec.backend;
  rec.dispose();
  // The first session warms caches and JIT: report the rest.
  const skip = EVENTS;
  const r = {
    entry: name,
    backend,
    calls: wall.length - skip,
    p50: quantile(wall.slice(skip), 0.5),
    p90: quantile(wall.slice(skip), 0.9),
    tokenizeP50: quantile(stages.tokenizeMs.slice(skip), 0.5),
    modelP50: quantile(stages.modelMs.slice(skip), 0.5),
    rankP50: quantile(stages.rankMs.slice(skip), 0.5),
    baselineP50: quantile(base.slice(skip), 0.5),
    searchP50: quantile(wall.slice(skip).filter((_, i) => searched[skip + i]), 0.5),
    // What a shopper's first visit sees: the warm-up session, right after load.
    firstSessionP50: quantile(wall.slice(0, skip), 0.5),
    firstCallMs: wall[0],
    searchTokenizeP50: quantile(stages.tokenizeMs.slice(skip).filter((_, i) => searched[skip + i]), 0.5),
  };
  r.ratio = r.p50 / r.baselineP50;
  log(
    `${name.padEnd(7)} ${backend}: recommend() p50 ${r.p50.toFixed(2)} ms, p90 ${r.p90.toFixed(2)} ms over ${r.calls} calls ` +
      `(inside: tokenize+encode ${r.tokenizeP50.toFixed(2)}, model ${r.modelP50.toFixed(2)}, rank ${r.rankP50.toFixed(2)}); ` +
      `first session after load: p50 ${r.firstSessionP50.toFixed(2)} ms, first call ${r.firstCallMs.toFixed(1)} ms; ` +
      `after a new search: p50 ${r.searchP50.toFixed(2)} ms (tokenize+encode ${r.searchTokenizeP50.toFixed(2)}); ` +
      `baseline similar() p50 ${r.baselineP50.toFixed(2)} ms; ratio ${r.ratio.toFixed(2)}x`,
  );
  return r;
}

try {
  const ids = (await (await fetch(new URL("items.json", bundle))).json()).map((i) => i.id);
  log(`bundle ${bundle}: ${ids.length} items; ${sessions} sessions of ${EVENTS} events; device ${device}; ${navigator.userAgent}`);
  const results = [];
  for (const [name, api] of [["page", page], ["worker", worker]]) results.push(await measure(name, api, ids));
  window.benchResult = { bundle, sessions, events: EVENTS, results };
} catch (e) {
  log(`FAILED: ${e.code ?? ""} ${e.message}`);
  window.benchResult = { error: String(e.message ?? e) };
}
