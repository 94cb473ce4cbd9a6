// The soak test: two tabs of one storefront tracking events without pause, persistence on, one tab on the
// page entry (`shelfwise`) and one on the worker entry (`shelfwise/worker`), in headless Chromium (CPU path).
// Each tab tracks `--rate` events a second (views mostly, some clicks, carts, purchases and searches, on
// random catalogue items) and calls `recommend()` after every 5th. It checks, and prints as a table:
//
// - memory: after the warm-up (the first window), the JS heap of each tab (its page and its worker, from
//   performance.measureUserAgentSpecificMemory) and the wasm module's linear memory stay flat: neither ends
//   more than `--heap-mb` (JS) or `--wasm-mb` (wasm) above its highest warm-up reading;
// - latency: the p95 of recommend() in the last window is within `--p95` (0.2: 20%) of the first window's;
// - nothing lost: at the end both tabs' histories and the stored records equal the last `historyCap` of the
//   events the two tabs tracked (merged by time), and no warning fired.
//
//   node scripts/soak.mjs                                   (30 minutes on the demo bundle, www/ml100k)
//   node scripts/soak.mjs --seconds 60 --bundle cache/golden/bundle --p95 0.5      (what CI runs)
//
// Options: --minutes M | --seconds S (the run's length), --bundle DIR, --rate N (events a second, each tab;
// 50), --window S (seconds a latency window covers: 60, or a third of a shorter run), --out DIR (soak.json
// with every window; target/soak). Build the package first (scripts/build-pkg.sh), and for the default
// bundle `bash scripts/demo-bundle.sh`.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { serve } from "./serve.mjs";
import { launch } from "./browser.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const seconds = arg("seconds") ? Number(arg("seconds")) : 60 * Number(arg("minutes", 30));
const bundleDir = arg("bundle", "www/ml100k");
const rate = Number(arg("rate", 50));
const windowS = Number(arg("window", Math.min(60, Math.floor(seconds / 3))));
const p95Bound = Number(arg("p95", 0.2));
const heapMb = Number(arg("heap-mb", 4));
const wasmMb = Number(arg("wasm-mb", 2));
const outDir = arg("out", "target/soak");
for (const [k, v] of Object.entries({ seconds, rate, windowS, p95Bound, heapMb, wasmMb })) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`soak: --${k} must be a positive number`);
}
if (seconds < 3 * windowS) throw new Error("soak: the run must cover at least three windows");
if (!existsSync(join(bundleDir, "manifest.json"))) {
  throw new Error(`soak: no bundle at ${bundleDir} (bash scripts/demo-bundle.sh builds www/ml100k, or pass --bundle)`);
}
if (!existsSync("pkg/index.js")) throw new Error("soak: no pkg/ (bash scripts/build-pkg.sh)");

const items = JSON.parse(readFileSync(join(bundleDir, "items.json"), "utf8")).map((i) => i.id);
const server = await serve({ port: 0, root: "." });
const origin = `http://127.0.0.1:${server.address().port}`;
const bundleUrl = `${origin}/${relative(resolve("."), resolve(bundleDir)).split("\\").join("/")}/manifest.json`;
const browser = await launch();
const context = await browser.newContext();
const log = (s) => console.log(`soak: ${s}`);

// The page side: one Recommender and its event loop per tab. Everything it keeps is bounded (the last
// 2 x historyCap events it tracked, one window of latencies), so the soak measures shelfwise, not itself.
async function tabMain({ entry, bundle, items, rate, seconds, windowS, seed }) {
  const { Recommender } = await import(`/pkg/${entry}.js`);
  const warnings = [];
  const rec = new Recommender(bundle, { device: "cpu", persist: "indexeddb", storageKey: "soak", cache: true });
  rec.on("warning", (w) => warnings.push(`${w.code}: ${w.message}`));
  await rec.ready;
  const cap = 500; // the default historyCap
  let x = seed >>> 0 || 1;
  const rand = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
  const state = {
    tracked: 0,
    recent: [], // the last 2 x cap tracked events, { type, itemId | query, ts }
    windows: [], // { t, n, p50, p95, max, heap, wasm }
    inFlight: 0,
    failures: [],
    warnings,
    done: false,
  };
  globalThis.__soak = state;
  let lat = [];
  // A window's latencies are taken at once; its memory figures come when the browser has them (at its
  // next garbage collection), without holding up the events.
  const pending = [];
  const measure = (t) => {
    const l = lat.sort((a, b) => a - b);
    lat = [];
    const q = (p) => l[Math.min(l.length - 1, Math.floor(p * l.length))] ?? NaN;
    const w = { t, n: l.length, p50: q(0.5), p95: q(0.95), max: l.at(-1) ?? NaN, heap: NaN, wasm: NaN };
    state.windows.push(w);
    pending.push(
      (async () => {
        try {
          w.heap = (await performance.measureUserAgentSpecificMemory()).breakdown
            .filter((b) => b.types.includes("JavaScript"))
            .reduce((s, b) => s + b.bytes, 0);
        } catch {
          // not cross-origin isolated: no heap figure
        }
        w.wasm = (await rec.memoryUsage()).wasmBytes;
      })(),
    );
  };
  const t0 = performance.now();
  let nextWindow = windowS * 1000;
  const queries = ["space adventure", "romantic comedy", "war film", "animated family", "crime thriller"];
  for (let i = 0; ; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const now = performance.now() - t0;
    if (now >= nextWindow) {
      measure(nextWindow / 1000);
      nextWindow += windowS * 1000;
    }
    if (now >= seconds * 1000) break;
    const r = rand();
    const itemId = items[Math.floor(rand() * items.length)];
    // Queries vary (more than the wasm module's 256 cached ones over a long run).
    const event =
      r < 0.05
        ? { type: "search", query: `${queries[i % queries.length]} ${Math.floor(rand() * 1000)}` }
        : { type: r < 0.85 ? "view" : r < 0.93 ? "click" : r < 0.98 ? "add_to_cart" : "purchase", itemId };
    event.ts = Date.now();
    if (!rec.track(event)) continue; // a repeated view within the debounce window
    state.tracked++;
    state.recent.push(event);
    if (state.recent.length > 2 * cap) state.recent.splice(0, state.recent.length - 2 * cap);
    if (state.tracked % 5 === 0) {
      const s = performance.now();
      state.inFlight++;
      rec.recommend({ k: 10 }).then(
        () => (lat.push(performance.now() - s), state.inFlight--),
        (e) => (state.failures.push(`${e.code}: ${e.message}`), state.inFlight--),
      );
    }
  }
  while (state.inFlight > 0) await new Promise((r) => setTimeout(r, 20));
  await Promise.all(pending);
  await rec.flush();
  state.history = rec.history();
  state.done = true;
  return true;
}

/** Every event record stored for `key`, in time order (read from IndexedDB directly). */
async function storedEvents(key) {
  const db = await new Promise((ok, fail) => {
    const o = indexedDB.open("shelfwise");
    o.onsuccess = () => ok(o.result);
    o.onerror = () => fail(o.error);
  });
  const rows = await new Promise((ok, fail) => {
    const tx = db.transaction("events");
    const r = tx.objectStore("events").getAll();
    r.onsuccess = () => ok(r.result.filter((e) => e.key === key));
    tx.onerror = () => fail(tx.error);
  });
  db.close();
  return rows.sort((a, b) => a.ts - b.ts).map(({ type, itemId, query, ts }) => ({ type, itemId, query, ts }));
}

const mb = (b) => (b / 2 ** 20).toFixed(2);
const sig = ({ type, itemId, query, ts }) => `${ts}|${type}|${itemId ?? ""}|${query ?? ""}`;
let failed = false;
try {
  const tabs = [];
  for (const [i, entry] of ["index", "worker"].entries()) {
    const page = await context.newPage();
    page.on("pageerror", (e) => {
      failed = true;
      console.error(`soak: uncaught error in the ${entry} tab: ${e.message}`);
    });
    await page.goto(`${origin}/tests/e2e/blank.html`);
    tabs.push({ entry, page });
    // Not awaited here: both tabs run at once.
    tabs[i].run = page.evaluate(tabMain, { entry, bundle: bundleUrl, items, rate, seconds, windowS, seed: 7 + i });
  }
  log(`2 tabs (page and worker entries), ${rate} events/s each, recommend() every 5th event, ${seconds} s, windows of ${windowS} s, on ${bundleDir}`);
  const started = Date.now();
  const progress = setInterval(async () => {
    const counts = await Promise.all(tabs.map((t) => t.page.evaluate(() => globalThis.__soak?.tracked ?? 0).catch(() => "?")));
    log(`${Math.round((Date.now() - started) / 1000)} s: ${counts.join(" + ")} events tracked`);
  }, Math.max(10_000, windowS * 1000));
  await Promise.all(tabs.map((t) => t.run));
  clearInterval(progress);

  const results = [];
  for (const t of tabs) results.push({ entry: t.entry, ...(await t.page.evaluate(() => globalThis.__soak)) });
  const stored = await tabs[0].page.evaluate(storedEvents, "soak");

  // The table.
  console.log("\n  tab     window   recommends   p50 ms   p95 ms   max ms   JS heap MB   wasm MB");
  for (const r of results) {
    for (const w of r.windows) {
      const cells = [r.entry.padEnd(6), `${w.t} s`.padStart(8), String(w.n).padStart(12), w.p50.toFixed(1).padStart(8), w.p95.toFixed(1).padStart(8), w.max.toFixed(1).padStart(8), mb(w.heap).padStart(12), mb(w.wasm).padStart(9)];
      console.log(`  ${cells.join(" ")}`);
    }
  }
  console.log("");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "soak.json"), JSON.stringify({ seconds, rate, windowS, bundle: bundleDir, tabs: results.map(({ history, recent, ...r }) => r) }, null, 2));

  // The checks: every one is made and reported, then the run fails if any did.
  const problems = [];
  const check = (ok, what) => {
    if (!ok) problems.push(what);
  };
  for (const r of results) {
    check(r.failures.length === 0, `${r.entry}: ${r.failures.length} recommend() calls failed: ${r.failures.slice(0, 3)}`);
    check(r.warnings.length === 0, `${r.entry}: ${r.warnings.length} warnings: ${r.warnings.slice(0, 3)}`);
    const [first, ...rest] = r.windows;
    const last = r.windows.at(-1);
    const warm = Math.max(first.heap, r.windows[1]?.heap ?? first.heap);
    const heapGrowth = Math.max(...rest.map((w) => w.heap)) - warm;
    const wasmGrowth = last.wasm - first.wasm;
    const ratio = last.p95 / first.p95;
    log(`${r.entry}: ${r.tracked} events; JS heap ${mb(warm)} MB after warm-up, at most ${mb(Math.max(0, heapGrowth))} MB more later; wasm ${mb(first.wasm)} MB, then ${wasmGrowth >= 0 ? "+" : ""}${mb(wasmGrowth)} MB; p95 ${first.p95.toFixed(1)} ms first, ${last.p95.toFixed(1)} ms last (x${ratio.toFixed(2)})`);
    if (Number.isFinite(warm)) check(heapGrowth <= heapMb * 2 ** 20, `${r.entry}: the JS heap grew ${mb(heapGrowth)} MB after warm-up (bound ${heapMb} MB)`);
    check(wasmGrowth <= wasmMb * 2 ** 20, `${r.entry}: the wasm memory grew ${mb(wasmGrowth)} MB after warm-up (bound ${wasmMb} MB)`);
    check(ratio <= 1 + p95Bound, `${r.entry}: p95 went from ${first.p95.toFixed(1)} to ${last.p95.toFixed(1)} ms (bound +${p95Bound * 100}%)`);
  }
  // Nothing lost: the last 500 events of both tabs together, by time, are what each tab and the store hold.
  const cap = 500;
  const order = (a, b) => a.ts - b.ts || (sig(a) < sig(b) ? -1 : 1);
  const tracked = results.flatMap((r) => r.recent).sort(order);
  const expected = tracked.slice(-cap);
  const cutTs = expected[0].ts;
  // Events of the two tabs at the cut's exact time may be kept or dropped by either: compare strictly after it.
  const after = (list) => list.filter((e) => e.ts > cutTs).map(sig).sort();
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const want = after(expected);
  const before = problems.length;
  check(results.every((r) => r.history.length === cap) && stored.length === cap, `histories and store hold ${results.map((r) => r.history.length)} / ${stored.length} events, not ${cap}`);
  for (const r of results) check(same(after(r.history), want), `${r.entry}: its history is not the last ${cap} events of both tabs`);
  check(same(after(stored), want), `the stored records are not the last ${cap} events of both tabs`);
  if (problems.length === before) {
    log(`nothing lost: ${results.reduce((s, r) => s + r.tracked, 0)} events tracked; both histories and the ${stored.length} stored records are the last ${cap} of them`);
  }
  for (const p of problems) console.error(`soak: FAILED: ${p}`);
  if (problems.length) failed = true;
  log(failed ? "FAILED" : "passed");
} catch (e) {
  failed = true;
  console.error(`soak FAILED: ${e.stack ?? e.message}`);
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
