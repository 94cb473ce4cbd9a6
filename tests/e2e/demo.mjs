// End-to-end test of the demo storefront in headless Chromium (playwright-core driving the system's
// Chromium), in one mode: `cpu` (no WebGPU adapter) or `webgpu` (SwiftShader's WebGPU, model forced onto it).
//
//   node tests/e2e/demo.mjs --mode cpu|webgpu --bundle cache/golden/bundle [--out target/e2e]
//
// It searches, opens three products and checks the rail changed and explains itself; reloads and checks the
// history survived in IndexedDB (also when `track` is called before the stored record is read); corrupts the
// stored history and checks the page recovers with a warning; checks `reset` wipes a profile being folded;
// records every request and checks only page assets and bundle files were fetched, none carrying session
// data; runs the bad-input matrix (tests/e2e/matrix.js) on both entries; checks downloads that stall or run
// past their size fail in time; saves screenshots.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { serve } from "../../scripts/serve.mjs";
import { launch } from "../../scripts/browser.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const mode = arg("mode", "cpu");
const bundleDir = arg("bundle", "cache/golden/bundle");
const outDir = arg("out", "target/e2e");
mkdirSync(outDir, { recursive: true });
const QUERY = "space adventure";

// Misbehaving downloads, under /__test/<how>/ (the bundle's files, but the first shard): `stall` sends the
// headers and half the shard, then nothing; `flood` sends bytes without end. `open` holds the responses whose
// connection the browser has not closed yet.
const misbehaving = { open: new Set() };
function misbehave(req, res, url) {
  const m = url.pathname.match(/^\/__test\/(stall|flood)\/(.+)$/);
  if (!m) return false;
  const [, how, name] = m;
  if (!bundleFiles.has(name)) {
    res.writeHead(404).end();
    return true;
  }
  const body = readFileSync(join(bundleDir, name));
  if (name !== manifest.shards[0].file) {
    res.writeHead(200, { "content-length": body.length, "cache-control": "no-store" }).end(body);
    return true;
  }
  misbehaving.open.add(res);
  res.on("close", () => misbehaving.open.delete(res));
  if (how === "stall") {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
    res.write(body.subarray(0, body.length >> 1));
  } else {
    res.writeHead(200, { "content-type": "application/octet-stream" });
    const chunk = Buffer.alloc(64 * 1024, 7);
    const t = setInterval(() => res.write(chunk), 5);
    res.on("close", () => clearInterval(t));
  }
  return true;
}

const server = await serve({ port: 0, root: ".", handler: misbehave });
const origin = `http://127.0.0.1:${server.address().port}`;
const bundlePath = "/" + relative(resolve("."), resolve(bundleDir)).split("\\").join("/") + "/";
const bundleUrl = `${origin}${bundlePath}manifest.json`;
const manifest = JSON.parse(readFileSync(join(bundleDir, "manifest.json"), "utf8"));
const bundleFiles = new Set(["manifest.json", "items.json", ...manifest.shards.map((s) => s.file)]);
for (const part of [manifest.recommender.interest, manifest.recommender.encoder]) {
  for (const k of ["config", "weights", "tokenizer"]) if (part?.[k]) bundleFiles.add(part[k].file);
}

const browser = await launch({ webgpu: mode === "webgpu" });
const context = await browser.newContext({ viewport: { width: 1360, height: 960 } });
const page = await context.newPage();
const requests = [];
const pageErrors = [];
context.on("request", (r) => requests.push({ url: r.url(), method: r.method(), body: r.postData(), headers: r.headers() }));
page.on("pageerror", (e) => pageErrors.push(e.message));
page.on("console", (m) => {
  if (m.type() === "error" || m.type() === "warning") console.log(`  [page ${m.type()}] ${m.text()}`);
});

const step = (s) => console.log(`e2e (${mode}): ${s}`);
const demoUrl = `${origin}/www/?bundle=${encodeURIComponent(bundleUrl)}&device=${mode === "webgpu" ? "webgpu" : "cpu"}`;
const railVersion = () => page.$eval("#rail", (r) => Number(r.dataset.version));
const rail = () =>
  page.$$eval("#rail .card", (cards) => cards.map((c) => ({ id: c.dataset.id, reason: c.querySelector(".reason")?.textContent ?? "" })));
async function settle(before) {
  await page.waitForFunction((v) => Number(document.getElementById("rail").dataset.version) > v, before, { timeout: 120_000 });
  // Later events may still be queued behind the first refresh: wait until the rail stops changing.
  for (let last = await railVersion(); ; ) {
    await page.waitForTimeout(300);
    const now = await railVersion();
    if (now === last) return;
    last = now;
  }
}

let failed = false;
try {
  step("load the demo");
  await page.goto(demoUrl);
  await page.waitForSelector("body[data-ready=true]", { timeout: 180_000 });
  const badge = await page.textContent("#backend");
  assert.equal(badge, mode === "webgpu" ? "WebGPU" : "CPU · wasm SIMD", "the backend badge");
  const first = await rail();
  assert.ok(first.length > 0, "the rail has items");
  assert.ok(first.every((r) => r.reason === "Popular right now"), "an empty session gets popular items");
  await page.screenshot({ path: join(outDir, `${mode}-1-home.png`) });

  step("search, then open three products");
  let v = await railVersion();
  await page.fill("#q", QUERY);
  await page.click("#searchForm button");
  await page.waitForFunction((q) => document.getElementById("gridTitle").textContent.includes(q), QUERY);
  await settle(v);
  const afterSearch = await rail();
  assert.ok(afterSearch.some((r) => r.reason.includes(QUERY)), `a rail item is explained by the search: ${JSON.stringify(afterSearch)}`);
  const opened = [];
  for (let i = 0; i < 3; i++) {
    v = await railVersion();
    const cardSel = `#grid .card:nth-child(${i + 1})`;
    opened.push(await page.getAttribute(cardSel, "data-id"));
    await page.click(cardSel);
    await page.waitForSelector("#product:not([hidden])");
    await settle(v);
    await page.waitForFunction(() => document.querySelectorAll("#similar .card").length > 0, null, { timeout: 60_000 });
    await page.click("#back");
  }
  const after = await rail();
  assert.notDeepEqual(after.map((r) => r.id), first.map((r) => r.id), "the rail changed");
  assert.ok(after.every((r) => r.reason && r.reason !== "Popular right now"), "every rail item has a session reason");
  assert.ok(after.some((r) => r.reason.startsWith("Because you viewed")), "some rail items are explained by views");
  assert.ok(after.every((r) => !opened.includes(r.id)), "viewed items are not recommended again");
  await page.click(`#grid .card:nth-child(4)`);
  await page.waitForFunction(() => document.querySelectorAll("#similar .card").length > 0, null, { timeout: 60_000 });
  await page.screenshot({ path: join(outDir, `${mode}-2-product.png`) });
  await page.click("#back");
  const timing = await page.textContent("#timing");
  step(`rail after 1 search and 4 products: ${after.length} items; ${timing}`);

  step("reload: the history survives in IndexedDB");
  const before = await page.evaluate(async () => {
    await window.__shop.rec.flush();
    return window.__shop.rec.history();
  });
  assert.ok(before.length >= 5, `history has the events: ${before.length}`);
  await page.reload();
  await page.waitForSelector("body[data-ready=true]", { timeout: 180_000 });
  const restored = await page.evaluate(() => window.__shop.rec.history());
  assert.deepEqual(restored, before, "the history after a reload");
  const restoredRail = await rail();
  assert.ok(restoredRail.every((r) => r.reason !== "Popular right now"), "the restored session still drives the rail");
  await page.screenshot({ path: join(outDir, `${mode}-3-reloaded.png`) });

  step("corrupt the stored history: the page recovers and warns");
  const plant = (what) => page.evaluate(async (what) => (await import("/tests/e2e/store-page.js")).plant("default", what), what);
  for (const [what, records, expect] of [
    [
      "damaged events",
      {
        clear: true,
        events: [
          { key: "default", ts: 3, type: "view" },
          { key: "default", ts: 4, uid: "x:1", type: "teleport", itemId: "1" },
          { key: "default", ts: 5, uid: "x:2", type: "view", itemId: opened[0] },
          { key: "default", ts: 6, uid: "x:3", type: "search", query: 3 },
        ],
      },
      1,
    ],
    ["a meta record that is not shelfwise state", { clear: true, meta: "this is not JSON state" }, 0],
    ["an unreadable profile", { meta: { format: "shelfwise-state", version: 2, epoch: "e", boundary: null, profile: { vector: [NaN], sessions: 1 } } }, 0],
  ]) {
    await plant(records);
    await page.reload();
    await page.waitForSelector("body[data-ready=true]", { timeout: 180_000 });
    const got = await page.evaluate(() => ({ warnings: window.__shop.warnings, history: window.__shop.rec.history() }));
    assert.ok(got.warnings.some((w) => w.code === "CORRUPT_HISTORY"), `${what}: a CORRUPT_HISTORY warning (${JSON.stringify(got.warnings)})`);
    assert.equal(got.history.length, expect, `${what}: the readable events are kept`);
    assert.ok((await rail()).length > 0, `${what}: the rail renders`);
  }
  assert.deepEqual(pageErrors, [], "no uncaught page errors");

  step("reset wipes the device");
  await page.click("#reset");
  await page.waitForFunction(() => window.__shop.rec.history().length === 0);
  await page.evaluate(() => window.__shop.rec.flush());
  const stored = await page.evaluate(async () => (await import("/tests/e2e/store-page.js")).stored("default"));
  assert.deepEqual(stored.events, [], "no events stored after reset");
  assert.equal(stored.meta?.profile ?? null, null, "no profile stored after reset");

  const reload = async () => {
    await page.reload();
    await page.waitForSelector("body[data-ready=true]", { timeout: 180_000 });
  };
  const ENTRIES = ["index", "worker"];

  step("a reload, then `track` at once (before the stored record is read): the stored events are kept");
  // Each page visit makes a recommender and tracks views straight away, as the docs show, then flushes.
  const visit = (ids) =>
    page.evaluate(
      async ([b, entries, ids]) => {
        const out = {};
        for (const entry of entries) {
          const { Recommender } = await import(`/pkg/${entry}.js`);
          const rec = new Recommender(b, { device: "cpu", cache: false, persist: "indexeddb", storageKey: `reload-${entry}` });
          const t = Date.now();
          ids.forEach((id, i) => rec.track({ type: "view", itemId: id, ts: t + i }));
          await rec.flush();
          out[entry] = rec.history().map((e) => e.itemId);
        }
        return out;
      },
      [bundleUrl, ENTRIES, ids],
    );
  await visit(["50", "181", "1", "7", "100"]);
  await reload();
  await visit(["121"]);
  await reload();
  const kept = await page.evaluate(
    async ([b, entries]) => {
      const out = {};
      for (const entry of entries) {
        const { Recommender } = await import(`/pkg/${entry}.js`);
        const rec = await Recommender.load(b, { device: "cpu", cache: false, persist: "indexeddb", storageKey: `reload-${entry}` });
        out[entry] = rec.history().map((e) => e.itemId);
        await rec.reset();
        rec.dispose();
      }
      return out;
    },
    [bundleUrl, ENTRIES],
  );
  for (const entry of ENTRIES) {
    assert.deepEqual(kept[entry], ["50", "181", "1", "7", "100", "121"], `${entry}: all 6 events survive two reloads`);
  }

  step("reset while a quiet session is folded into the profile: nothing comes back after a reload");
  const folding = await page.evaluate(
    async ([b, entries]) => {
      const out = {};
      for (const entry of entries) {
        const { Recommender } = await import(`/pkg/${entry}.js`);
        const rec = await Recommender.load(b, { device: "cpu", cache: false, persist: "indexeddb", storageKey: `fold-${entry}` });
        // A session that went quiet two hours ago (sessionGapMs is 30 minutes): the next event folds it.
        const past = Date.now() - 2 * 3600_000;
        rec.track({ type: "view", itemId: "50", ts: past });
        rec.track({ type: "view", itemId: "181", ts: past + 1000 });
        rec.track({ type: "view", itemId: "1" });
        await rec.reset();
        await rec.flush();
        out[entry] = { history: rec.history().length, profile: rec.profile() };
        rec.dispose();
      }
      return out;
    },
    [bundleUrl, ENTRIES],
  );
  await reload();
  const afterReset = await page.evaluate(
    async ([b, entries]) => {
      const out = {};
      for (const entry of entries) {
        const { Recommender } = await import(`/pkg/${entry}.js`);
        const rec = await Recommender.load(b, { device: "cpu", cache: false, persist: "indexeddb", storageKey: `fold-${entry}` });
        await rec.flush();
        out[entry] = { history: rec.history().length, profile: rec.profile() };
        await rec.reset();
        rec.dispose();
      }
      return out;
    },
    [bundleUrl, ENTRIES],
  );
  for (const entry of ENTRIES) {
    assert.deepEqual(folding[entry], { history: 0, profile: null }, `${entry}: reset wiped the session and the profile`);
    assert.deepEqual(afterReset[entry], { history: 0, profile: null }, `${entry}: nothing stored came back after a reload`);
  }

  step("calls before load, and the long-term profile");
  const prof = await page.evaluate(async (b) => {
    const { Recommender } = await import("/pkg/worker.js");
    // Not awaited: track and recommend are called while the bundle loads.
    const gap = 5000; // well over the time a load takes, so the first session is still open when it ends
    const rec = new Recommender(b, { device: "cpu", cache: false, persist: "indexeddb", storageKey: "profile-test", sessionGapMs: gap });
    rec.track({ type: "view", itemId: "50" });
    rec.track({ type: "view", itemId: "181" });
    rec.track({ type: "search", query: "space adventure" });
    const early = await rec.recommend({ k: 5 });
    await new Promise((r) => setTimeout(r, gap + 500));
    // The session went quiet: it becomes the profile, and an empty session ranks by it.
    const later = await rec.recommend({ k: 5 });
    const profile = rec.profile();
    rec.track({ type: "view", itemId: "1" });
    const blended = await rec.recommend({ k: 5 });
    await rec.flush();
    rec.dispose();
    // A new page visit reads the stored profile back.
    const again = await Recommender.load(b, { device: "cpu", cache: false, persist: "indexeddb", storageKey: "profile-test", sessionGapMs: gap });
    const stored = again.profile();
    await again.reset();
    const wiped = again.profile();
    again.dispose();
    return {
      early: early.items.map((i) => i.reason.kind),
      later: later.items.map((i) => i.reason.kind),
      blended: blended.items.map((i) => i.reason.kind),
      sessions: profile?.sessions,
      dim: profile?.vector.length,
      storedSessions: stored?.sessions,
      wiped,
    };
  }, bundleUrl);
  assert.ok(prof.early.every((k) => k !== "popular" && k !== "profile"), `calls before load see the session: ${prof.early}`);
  assert.equal(prof.sessions, 1, "one ended session in the profile");
  assert.equal(prof.dim, manifest.dim, "the profile is an interest vector");
  assert.ok(prof.later.every((k) => k === "profile"), `an empty session ranks by the profile: ${prof.later}`);
  assert.ok(prof.blended.every((k) => k !== "profile" && k !== "popular"), `a new session explains itself: ${prof.blended}`);
  assert.ok(prof.storedSessions >= 1, "the profile survives in IndexedDB");
  assert.equal(prof.wiped, null, "reset wipes the profile");

  step("a stored profile that is not finite as 32-bit floats is dropped; `rate` is tracked");
  const f32 = await page.evaluate(
    async ([b, dim]) => {
      const key = "f32-test";
      // 1e39 is a finite JSON number, and Infinity as a 32-bit float: it used to make every recommend fail.
      const vector = Array.from({ length: dim }, (_, i) => (i === 0 ? 1e39 : 0.01));
      const meta = { format: "shelfwise-state", version: 2, epoch: "f32", boundary: null, profile: { vector, sessions: 2 } };
      await (await import("/tests/e2e/store-page.js")).plant(key, { meta });
      const { Recommender } = await import("/pkg/worker.js");
      const rec = new Recommender(b, { device: "cpu", cache: false, persist: "indexeddb", storageKey: key });
      const warnings = [];
      rec.on("warning", (w) => warnings.push(w.code));
      await rec.ready;
      const profile = rec.profile();
      const empty = await rec.recommend({ k: 3 });
      rec.track({ type: "rate", itemId: "50" });
      const rated = await rec.recommend({ k: 3 });
      await rec.reset();
      rec.dispose();
      return { warnings, profile, empty: empty.items.map((i) => i.reason.kind), rated: rated.items.map((i) => i.reason.kind) };
    },
    [bundleUrl, manifest.dim],
  );
  assert.ok(f32.warnings.includes("CORRUPT_HISTORY"), `the dropped profile is reported: ${f32.warnings}`);
  assert.equal(f32.profile, null, "the unusable profile is dropped");
  assert.ok(f32.empty.every((k) => k === "popular"), `recommend works without it: ${f32.empty}`);
  assert.ok(f32.rated.every((k) => k === "rated"), `a rating explains the results: ${f32.rated}`);

  step("debounce, the history cap, unknown items, and the hooks");
  const hooks = await page.evaluate(async (b) => {
    const { Recommender } = await import("/pkg/index.js");
    const rec = await Recommender.load(b, { device: "cpu", cache: false, historyCap: 5, debounceMs: 1000 });
    const seen = { impression: [], click: [], recommendations: [] };
    for (const k of Object.keys(seen)) rec.on(k, (e) => seen[k].push(e));
    const t = Date.now();
    const first = rec.track({ type: "view", itemId: "50", ts: t });
    const repeat = rec.track({ type: "view", itemId: "50", ts: t + 500 });
    const later = rec.track({ type: "view", itemId: "50", ts: t + 5000 });
    rec.track({ type: "view", itemId: "not-in-this-catalogue", ts: t + 6000 });
    const out = await rec.recommend({ k: 5, variant: "B" });
    rec.track({ type: "click", itemId: out.items[2].id, ts: t + 7000 });
    for (let i = 0; i < 6; i++) rec.track({ type: "view", itemId: String(100 + i), ts: t + 8000 + i });
    const history = rec.history();
    rec.dispose();
    return { first, repeat, later, reasons: out.items.map((i) => i.reason.kind), clicked: out.items[2].id, seen, history };
  }, bundleUrl);
  assert.deepEqual([hooks.first, hooks.repeat, hooks.later], [true, false, true], "a repeat view within debounceMs is dropped");
  assert.ok(hooks.reasons.every((k) => k === "viewed"), "an unknown item is skipped by the model, the known one drives it");
  assert.equal(hooks.history.length, 5, "the history is capped");
  assert.equal(hooks.history.at(-1).itemId, "105", "the cap drops the oldest events");
  assert.equal(hooks.seen.recommendations.length, 1);
  assert.equal(hooks.seen.impression[0].variant, "B");
  assert.deepEqual(hooks.seen.click.map((c) => [c.itemId, c.rank, c.variant]), [[hooks.clicked, 2, "B"]], "a click on a shown item is reported with its rank");

  step("the bad-input matrix, on both entries");
  for (const entry of ["index", "worker"]) {
    const results = await page.evaluate(
      async ([b, e]) => (await import("/tests/e2e/matrix.js")).run(b, e),
      [bundleUrl, entry],
    );
    const wrong = results.filter((r) => r.got !== r.want);
    for (const r of wrong) console.log(`  ${entry}: ${r.name}: expected ${r.want}, got ${r.got}`);
    assert.equal(wrong.length, 0, `${entry}: ${wrong.length} of ${results.length} bad calls gave the wrong code`);
    step(`  ${entry}: ${results.length} bad calls, each with its typed error code`);
  }

  step("downloads: one retry, then a typed error naming the file");
  const shardName = manifest.shards[0].file;
  const shardUrl = `${origin}${bundlePath}${shardName}`;
  const loadIn = (opts) =>
    page.evaluate(
      async ([b, o]) => {
        const { Recommender } = await import("/pkg/index.js");
        try {
          const rec = await Recommender.load(b, o);
          const info = rec.info;
          rec.dispose();
          return { ok: true, info };
        } catch (e) {
          return { ok: false, code: e.code, file: e.file, message: e.message };
        }
      },
      [bundleUrl, opts],
    );
  let shardHits = 0;
  await context.route(shardUrl, (route) => (++shardHits === 1 ? route.abort("connectionreset") : route.continue()));
  let got = await loadIn({ device: "cpu", cache: false });
  assert.ok(got.ok, `a failed download is retried: ${got.message}`);
  assert.equal(shardHits, 2, "the shard was fetched twice");
  await context.unroute(shardUrl);
  await context.route(shardUrl, (route) => route.fulfill({ status: 200, body: readFileSync(join(bundleDir, shardName)).subarray(0, 1000) }));
  got = await loadIn({ device: "cpu", cache: false });
  assert.equal(got.code, "DOWNLOAD_FAILED", `a partial download, twice: ${got.message}`);
  assert.equal(got.file, shardName, "the error names the file");
  await context.unroute(shardUrl);

  step("downloads that stall, or run past their size, fail in time (both entries)");
  // Races the load against `ms`, so a load that hangs fails the test instead of stalling it.
  const loadWithin = (entry, url, opts, ms) =>
    page.evaluate(
      async ([entry, b, o, ms]) => {
        const { Recommender } = await import(`/pkg/${entry}.js`);
        const t0 = performance.now();
        const hung = new Promise((ok) => setTimeout(() => ok({ ok: false, code: "HUNG" }), ms));
        const load = Recommender.load(b, o).then(
          (rec) => (rec.dispose(), { ok: true }),
          (e) => ({ ok: false, code: e.code, file: e.file, message: e.message }),
        );
        return { ...(await Promise.race([load, hung])), ms: performance.now() - t0 };
      },
      [entry, url, opts, ms],
    );
  const timeoutMs = 500;
  // Fetches of the misbehaving shard, as the browser reports them (the server may see more: Chromium's
  // network stack can resend a request on a new connection without the page asking).
  const fetches = (how) => requests.filter((r) => r.url === `${origin}/__test/${how}/${shardName}`).length;
  for (const entry of ["index", "worker"]) {
    const before = { stall: fetches("stall"), flood: fetches("flood") };
    const opts = { device: "cpu", cache: false, downloadTimeoutMs: timeoutMs };
    got = await loadWithin(entry, `${origin}/__test/stall/manifest.json`, opts, 20_000);
    assert.equal(got.code, "DOWNLOAD_FAILED", `${entry}: a stalled download: ${got.code} ${got.message}`);
    assert.equal(got.file, shardName, `${entry}: the error names the stalled file`);
    assert.ok(got.message.includes("stalled"), got.message);
    assert.equal(fetches("stall") - before.stall, 2, `${entry}: the stalled download was retried once`);
    // Two attempts of `timeoutMs` each, plus the rest of the bundle from this machine.
    assert.ok(got.ms >= 2 * timeoutMs && got.ms < 2 * timeoutMs + 5000, `${entry}: it failed after ${Math.round(got.ms)} ms`);
    const stalledMs = got.ms;
    // No timeout option here: the default (30 s) is not what ends it, the manifest's size is.
    got = await loadWithin(entry, `${origin}/__test/flood/manifest.json`, { device: "cpu", cache: false }, 20_000);
    assert.equal(got.code, "DOWNLOAD_FAILED", `${entry}: an endless download: ${got.code} ${got.message}`);
    assert.equal(got.file, shardName, `${entry}: the error names the endless file`);
    assert.ok(got.message.includes("passed"), got.message);
    assert.equal(fetches("flood") - before.flood, 2, `${entry}: the endless download was retried once`);
    for (let i = 0; i < 50 && misbehaving.open.size > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(misbehaving.open.size, 0, `${entry}: the browser stopped reading both misbehaving downloads`);
    step(`  ${entry}: a ${timeoutMs} ms stall, twice, failed after ${Math.round(stalledMs)} ms; an endless body after ${Math.round(got.ms)} ms`);
  }

  step("the Cache API: a second load reads the cache; a changed manifest replaces what changed");
  await page.evaluate(() => caches.delete("shelfwise-bundles-v1"));
  const cold = await loadIn({ device: "cpu" });
  const warm = await loadIn({ device: "cpu" });
  assert.equal(cold.info.cachedBytes, 0, "the first load downloads");
  assert.equal(warm.info.cachedBytes, warm.info.bytes, "the second load comes from the cache");
  // A re-exported bundle: one shard value changes (the lowest byte of the first embedding value), so does
  // its hash in the manifest.
  const shard = Buffer.from(readFileSync(join(bundleDir, shardName)));
  const headerLen = Number(shard.readBigUInt64LE(0));
  const header = JSON.parse(shard.subarray(8, 8 + headerLen).toString());
  shard[8 + headerLen + header.embeddings.data_offsets[0]] ^= 1;
  const changed = structuredClone(manifest);
  const oldSha = changed.shards[0].sha256;
  changed.shards[0].sha256 = createHash("sha256").update(shard).digest("hex");
  await context.route(bundleUrl, (route) => route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(changed) }));
  await context.route(shardUrl, (route) => route.fulfill({ status: 200, body: shard }));
  const updated = await loadIn({ device: "cpu" });
  await context.unroute(bundleUrl);
  await context.unroute(shardUrl);
  assert.ok(updated.ok, `the changed bundle loads: ${updated.message}`);
  assert.equal(updated.info.cachedBytes, updated.info.bytes - shard.length, "only the changed file is downloaded");
  const keys = await page.evaluate(async () => (await (await caches.open("shelfwise-bundles-v1")).keys()).map((r) => r.url));
  assert.ok(keys.some((k) => k.includes(changed.shards[0].sha256)), "the new shard is cached");
  assert.ok(!keys.some((k) => k.includes(oldSha)), "the old shard left the cache");
  await page.evaluate(() => caches.delete("shelfwise-bundles-v1"));

  if (mode === "webgpu") {
    step("a lost GPU device: the next call runs on the CPU with the same results, and backendchange fires");
    const lost = await page.evaluate(async (b) => {
      const { Recommender } = await import("/pkg/worker.js");
      const rec = await Recommender.load(b, { device: "webgpu", cache: false });
      rec.track({ type: "view", itemId: "50" });
      rec.track({ type: "search", query: "space adventure" });
      const a = await rec.recommend({ k: 10 });
      const changes = [];
      rec.on("backendchange", (e) => changes.push(e));
      await rec.__simulateDeviceLoss();
      const c = await rec.recommend({ k: 10 });
      rec.dispose();
      return {
        before: a.backend,
        after: c.backend,
        same: a.items.map((i) => i.id).join() === c.items.map((i) => i.id).join(),
        worst: Math.max(...a.items.map((it, i) => Math.abs(it.score - c.items[i].score))),
        changes,
      };
    }, bundleUrl);
    assert.equal(lost.before, "webgpu");
    assert.equal(lost.after, "cpu");
    assert.ok(lost.same, "the same items after the fallback");
    assert.ok(lost.worst < 1e-3, `scores within 1e-3 (${lost.worst})`);
    assert.equal(lost.changes.length, 1, "one backendchange event");
    step(`  webgpu -> cpu, same top 10, scores within ${lost.worst.toExponential(1)}`);

    step("a lost GPU device under 8 overlapping calls: one fallback and one backendchange; dispose() during the fallback settles");
    const burst = await page.evaluate(async (b) => {
      const out = {};
      for (const entry of ["/pkg/index.js", "/pkg/worker.js"]) {
        const { Recommender } = await import(entry);
        const rec = await Recommender.load(b, { device: "webgpu", cache: false });
        rec.track({ type: "view", itemId: "50" });
        await rec.recommend({ k: 10 });
        const changes = [];
        rec.on("backendchange", (e) => changes.push(e));
        await rec.__simulateDeviceLoss();
        const results = await Promise.allSettled(Array.from({ length: 8 }, () => rec.recommend({ k: 10 })));
        const onCpu = results.filter((r) => r.status === "fulfilled" && r.value.backend === "cpu").length;
        const errors = results.filter((r) => r.status === "rejected").map((r) => r.reason?.code);
        rec.dispose();
        const rec2 = await Recommender.load(b, { device: "webgpu", cache: false });
        rec2.track({ type: "view", itemId: "50" });
        await rec2.__simulateDeviceLoss();
        const pending = rec2.recommend({ k: 10 }).then(() => "resolved", (e) => e?.code ?? String(e));
        await new Promise((r) => setTimeout(r, 0));
        rec2.dispose();
        const settled = await Promise.race([pending, new Promise((r) => setTimeout(() => r("HUNG"), 20000))]);
        out[entry] = { onCpu, errors, changes: changes.length, settled };
      }
      return out;
    }, bundleUrl);
    for (const [entry, r] of Object.entries(burst)) {
      assert.deepEqual(r.errors, [], `${entry}: no call failed`);
      assert.equal(r.onCpu, 8, `${entry}: all 8 calls answered on the CPU`);
      assert.equal(r.changes, 1, `${entry}: one backendchange for 8 overlapping calls`);
      assert.ok(["DISPOSED", "resolved"].includes(r.settled), `${entry}: dispose() during the fallback: ${r.settled}`);
      step(`  ${entry}: 8 calls on the CPU, 1 backendchange; dispose() during the fallback: ${r.settled}`);
    }
  }

  step("privacy: only page assets and bundle files were fetched, none carrying session data");
  const pageAssets = new Set(["/www/", "/www/shop.css", "/www/shop.js", "/tests/e2e/matrix.js", "/tests/e2e/store-page.js"]);
  for (const r of requests) {
    const u = new URL(r.url);
    assert.equal(u.origin, origin, `a request to another origin: ${r.url}`);
    assert.equal(r.method, "GET", `a ${r.method} request: ${r.url}`);
    assert.ok(!r.body, `a request with a body: ${r.url}`);
    const raw = decodeURIComponent(r.url + JSON.stringify(r.headers)).toLowerCase();
    assert.ok(!raw.includes(QUERY), `a request carries the search: ${r.url}`);
    const isPage = u.pathname === "/www/" && u.search.startsWith("?bundle=");
    const isAsset = pageAssets.has(u.pathname) || u.pathname.startsWith("/pkg/");
    const isBundle = u.pathname.startsWith(bundlePath) && bundleFiles.has(u.pathname.slice(bundlePath.length));
    const isMissingProbe = u.pathname.endsWith("/no-such/manifest.json"); // the matrix's missing-bundle case
    const isMisbehaving = u.pathname.startsWith("/__test/") && bundleFiles.has(u.pathname.replace(/^\/__test\/(stall|flood)\//, ""));
    assert.ok(isPage || ((isAsset || isBundle || isMissingProbe || isMisbehaving) && u.search === ""), `an unexpected request: ${r.url}`);
    for (const id of opened) {
      assert.ok(!u.search.includes(id) || isPage, `a request carries viewed item ${id}: ${r.url}`);
    }
  }
  step(`  ${requests.length} requests, all page assets or bundle files`);
  step("passed");
} catch (e) {
  failed = true;
  console.error(`e2e (${mode}) FAILED: ${e.message}`);
  await page.screenshot({ path: join(outDir, `${mode}-failure.png`) }).catch(() => {});
} finally {
  await browser.close();
  for (const res of misbehaving.open) res.destroy();
  server.close();
}
process.exit(failed ? 1 : 0);
