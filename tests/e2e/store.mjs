// The session store the way shoppers use it, in headless Chromium (playwright-core driving the system's
// Chromium), on both entries (`shelfwise` and `shelfwise/worker`): several tabs of one store tracking at
// once and before their bundle has loaded, a third tab and a reload seeing every event, a quiet session
// folded into the profile once though two tabs see it end, `reset()` in one tab wiping every tab (events
// still queued included), a full IndexedDB and a full Cache API (a tiny quota, through the DevTools
// protocol), a version-1 database migrated, future timestamps, bounded warnings, a pinned manifest and a
// worker that stops answering. The scenarios every browser runs are in tests/e2e/store-scenarios.mjs;
// the quota, the hostile manifests and the hung worker are Chromium's alone (see store-browsers.mjs).
//
//   node tests/e2e/store.mjs --bundle cache/golden/bundle
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { serve } from "../../scripts/serve.mjs";
import { launch } from "../../scripts/browser.mjs";
import { entryScenarios, migrationScenario } from "./store-scenarios.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const bundleDir = arg("bundle", "cache/golden/bundle");
const ENTRIES = ["index", "worker"];

// Hostile manifests, under /__hostile/<kind>/manifest.json: the bundle's manifest with its first shard's
// path pointing elsewhere (another origin, or out of the bundle's folder). Every request a page makes to
// those places is counted here, and the second server counts every request it gets.
const manifestText = readFileSync(join(bundleDir, "manifest.json"), "utf8");
const outside = { parent: 0, other: 0 };
const other = await serve({
  port: 0,
  handler: (req, res) => (outside.other++, res.writeHead(404).end(), true),
});
const otherOrigin = `http://127.0.0.1:${other.address().port}`;
const hostilePaths = { cross: `${otherOrigin}/shard-000.safetensors`, parent: "../secret/shard-000.safetensors", rooted: "/secret/shard-000.safetensors" };
const server = await serve({
  port: 0,
  root: ".",
  handler: (req, res, url) => {
    if (url.pathname.includes("/secret/")) outside.parent++;
    const m = url.pathname.match(/^\/__hostile\/(cross|parent|rooted)\/manifest\.json$/);
    if (!m) return false;
    const manifest = JSON.parse(manifestText);
    manifest.shards[0].file = hostilePaths[m[1]];
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(manifest));
    return true;
  },
});
const origin = `http://127.0.0.1:${server.address().port}`;
const bundlePath = "/" + relative(resolve("."), resolve(bundleDir)).split("\\").join("/") + "/";
const bundleUrl = `${origin}${bundlePath}manifest.json`;
const manifestSha = createHash("sha256").update(readFileSync(join(bundleDir, "manifest.json"))).digest("hex");

const browser = await launch();
const context = await browser.newContext();
const pageErrors = [];
const tabs = [];
async function tab(ctx = context) {
  const p = await ctx.newPage();
  p.on("pageerror", (e) => pageErrors.push(e.message));
  p.on("console", (m) => {
    if (m.type() === "error") console.log(`  [page error] ${m.text()}`);
  });
  await p.goto(`${origin}/tests/e2e/blank.html`);
  tabs.push(p);
  return p;
}
/** Runs `fn(...args)` of tests/e2e/store-page.js in tab `p`. */
const run = (p, fn, ...args) => p.evaluate(async ([fn, args]) => (await import("/tests/e2e/store-page.js"))[fn](...args), [fn, args]);
const step = (s) => console.log(`store: ${s}`);

const driver = {
  tab,
  run,
  runAll: (ps, fn, ...args) => Promise.all(ps.map((p) => run(p, fn, ...args))),
  reload: (p) => p.reload(),
  close: (p) => p.close(),
};

let failed = false;
try {
  for (const entry of ENTRIES) {
    await entryScenarios(driver, { entry, bundleUrl, manifestSha, step });

    step(`${entry}: a manifest naming a file on another origin or outside its folder: BAD_MANIFEST, no request made`);
    const w = await tab();
    for (const kind of Object.keys(hostilePaths)) {
      const before = { ...outside };
      const got = await run(w, "loadOutcome", `${origin}/__hostile/${kind}/manifest.json`, entry, {});
      assert.equal(got.code, "BAD_MANIFEST", `${entry}: ${kind}: ${got.code} ${got.message}`);
      assert.deepEqual(outside, before, `${entry}: ${kind}: nothing was fetched from there`);
    }
    await w.close();
  }

  step("worker: a call the worker never answers rejects with WORKER_TIMEOUT, and later calls with WORKER_FAILED");
  const h = await tab();
  await run(h, "start", bundleUrl, "worker", { persist: "none", workerTimeoutMs: 1500 });
  await run(h, "ready");
  const hung = await run(h, "hang");
  assert.equal(hung.code, "WORKER_TIMEOUT", `the hung call: ${hung.code}`);
  assert.ok(hung.ms >= 1400 && hung.ms < 6000, `it settled after ${Math.round(hung.ms)} ms`);
  assert.equal(hung.next, "WORKER_FAILED", `the next call: ${hung.next}`);
  await h.close();

  step("a full IndexedDB and Cache API (quota through the DevTools protocol): one warning each, nothing fails");
  for (const entry of ENTRIES) {
    // A fresh context, its quota set before anything is stored (Chrome reads an origin's quota when its
    // IndexedDB first opens): room for the database and some events, not for 200 long searches.
    const ctx = await browser.newContext();
    const q = await tab(ctx);
    const cdp = await ctx.newCDPSession(q);
    await cdp.send("Storage.overrideQuotaForOrigin", { origin, quotaSize: 90_000 });
    const key = `quota-${entry}`;
    await run(q, "start", bundleUrl, entry, { storageKey: key, cache: true });
    await run(q, "ready");
    const many = Array.from({ length: 200 }, (_, i) => `${"boots ".repeat(70)}${i}`);
    for (let i = 0; i < many.length; i++) {
      await run(q, "track", [{ type: "search", query: many[i], ts: Date.now() }]);
      if (i % 10 === 9) await run(q, "flush");
    }
    await run(q, "flush");
    const got = await run(q, "recommend");
    const codes = await run(q, "warnings");
    const kept = (await run(q, "stored", key)).events.length;
    assert.deepEqual(got.history, many, `${entry}: all 200 events kept in memory`);
    assert.ok(got.items.length > 0, `${entry}: recommend() works`);
    assert.ok(kept > 0 && kept < many.length, `${entry}: the quota stopped the writes part-way (${kept} stored)`);
    assert.equal(codes.filter((c) => c === "STORAGE_FULL").length, 1, `${entry}: one STORAGE_FULL warning: ${codes}`);
    assert.ok(!codes.includes("STORAGE_FAILED"), `${entry}: no warning per event: ${codes}`);
    assert.equal(codes.filter((c) => c === "CACHE_FAILED").length, 1, `${entry}: one CACHE_FAILED warning: ${codes}`);
    await ctx.close();
    step(`  ${entry}: 200 events in memory, ${kept} stored before the quota ran out, warnings ${JSON.stringify(codes)}`);
  }

  step("a version-1 database (one record per key) is migrated: its events and session boundary are kept");
  const fresh = await browser.newContext();
  const m = await tab(fresh);
  await migrationScenario(driver, m, { bundleUrl });
  await fresh.close();

  assert.deepEqual(pageErrors, [], "no uncaught page errors");
  step("passed");
} catch (e) {
  failed = true;
  console.error(`store FAILED: ${e.stack ?? e.message}`);
} finally {
  await browser.close();
  server.close();
  other.close();
}
process.exit(failed ? 1 : 0);
