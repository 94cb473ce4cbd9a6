// The session store the way shoppers use it, in headless Chromium (playwright-core driving the system's
// Chromium), on both entries (`shelfwise` and `shelfwise/worker`): several tabs of one store tracking at
// once and before their bundle has loaded, a third tab and a reload seeing every event, a quiet session
// folded into the profile once though two tabs see it end, `reset()` in one tab wiping every tab (events
// still queued included), a full IndexedDB and a full Cache API (a tiny quota, through the DevTools
// protocol), a version-1 database migrated, future timestamps, bounded warnings, a pinned manifest and a
// worker that stops answering.
//
//   node tests/e2e/store.mjs --bundle cache/golden/bundle
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { serve } from "../../scripts/serve.mjs";
import { launch } from "../../scripts/browser.mjs";

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
const views = (ids, t0) => ids.map((itemId, i) => ({ type: "view", itemId, ts: t0 + i }));

let failed = false;
try {
  for (const entry of ENTRIES) {
    step(`${entry}: two tabs track at once, before their bundles load; each sees the other's events`);
    const key = `tabs-${entry}`;
    const [a, b] = [await tab(), await tab()];
    await run(a, "start", bundleUrl, entry, { storageKey: key });
    await run(b, "start", bundleUrl, entry, { storageKey: key });
    const ids = ["50", "181", "1", "7", "100", "121"];
    const t0 = Date.now();
    // Interleaved: a, b, a, b, ... each tracking while the other's writes are in flight.
    for (let i = 0; i < ids.length; i++) await run(i % 2 ? b : a, "track", views([ids[i]], t0 + i));
    await run(a, "flush");
    await run(b, "flush");
    for (const [name, p] of [["a", a], ["b", b]]) {
      const got = await run(p, "recommend");
      assert.deepEqual(got.history, ids, `${entry}: tab ${name}'s recommend() saw every tab's events`);
      assert.ok(got.items.every((id) => !ids.includes(id)), `${entry}: tab ${name} does not recommend what another tab viewed`);
    }
    const c = await tab();
    await run(c, "start", bundleUrl, entry, { storageKey: key });
    await run(c, "ready");
    assert.deepEqual(await run(c, "ids"), ids, `${entry}: a third tab loads all 6 events, in time order`);
    assert.equal((await run(c, "stored", key)).events.length, 6, `${entry}: 6 event records stored`);

    step(`${entry}: reload both tabs; then more events in each; a reload sees all of them`);
    await a.reload();
    await b.reload();
    await run(a, "start", bundleUrl, entry, { storageKey: key });
    await run(a, "track", views(["200"], t0 + 10));
    await run(b, "start", bundleUrl, entry, { storageKey: key });
    await run(b, "track", views(["201"], t0 + 11));
    await run(a, "flush");
    await run(b, "flush");
    assert.equal(await run(a, "waitFor", 8), 8, `${entry}: tab a sees 8 events`);
    await c.reload();
    await run(c, "start", bundleUrl, entry, { storageKey: key });
    await run(c, "ready");
    assert.deepEqual(await run(c, "ids"), [...ids, "200", "201"], `${entry}: nothing lost across reloads`);

    step(`${entry}: reset() in one tab wipes every tab, an event still queued in another included`);
    await run(b, "track", views(["300"], t0 + 20)); // queued in b, maybe not written yet
    await run(a, "reset");
    await run(b, "flush");
    for (const [name, p] of [["a", a], ["b", b], ["c", c]]) {
      assert.equal(await run(p, "waitFor", 0), 0, `${entry}: tab ${name} forgot everything`);
    }
    await run(b, "track", views(["400"], Date.now()));
    await run(b, "flush");
    const d = await tab();
    await run(d, "start", bundleUrl, entry, { storageKey: key });
    await run(d, "ready");
    assert.deepEqual(await run(d, "ids"), ["400"], `${entry}: after the reset, only the later event is stored`);
    const after = await run(d, "stored", key);
    assert.equal(after.events.length, 1, `${entry}: one event record left`);
    assert.equal(after.meta.profile, null, `${entry}: no profile left`);
    for (const p of [a, b, c, d]) await p.close();

    step(`${entry}: a quiet session that two tabs see end is folded into the profile once`);
    const fkey = `fold-${entry}`;
    const [e, f] = [await tab(), await tab()];
    await run(e, "start", bundleUrl, entry, { storageKey: fkey });
    await run(f, "start", bundleUrl, entry, { storageKey: fkey });
    await run(e, "ready");
    await run(f, "ready");
    const past = Date.now() - 2 * 3600_000;
    await run(e, "track", views(["50", "181"], past));
    await run(e, "flush");
    assert.equal(await run(f, "waitFor", 2), 2, `${entry}: tab f sees the session`);
    // Both tabs find the session over at their next recommend() (sessionGapMs is 30 minutes).
    await Promise.all([run(e, "recommend"), run(f, "recommend")]);
    await run(e, "flush");
    await run(f, "flush");
    const meta = (await run(e, "stored", fkey)).meta;
    assert.equal(meta.profile?.sessions, 1, `${entry}: the stored profile has one session, not two`);
    assert.equal(await run(e, "sessions"), 1, `${entry}: tab e's profile`);
    assert.equal(await run(f, "sessions"), 1, `${entry}: tab f's profile`);
    await run(e, "reset");
    await e.close();
    await f.close();

    step(`${entry}: future timestamps are set to now; warnings wait for a handler, at most 50`);
    const w = await tab();
    const bounded = await run(w, "boundedWarnings", bundleUrl, entry);
    assert.equal(bounded.got.length, 51, `${entry}: 50 kept warnings and one WARNINGS_DROPPED: ${bounded.got.length}`);
    assert.equal(bounded.got[0], "WARNINGS_DROPPED");
    assert.ok(bounded.got.includes("FUTURE_TIMESTAMP"), `${entry}: the future ts is reported`);
    assert.ok(bounded.lastTs <= bounded.now, `${entry}: the future ts was set to now`);

    step(`${entry}: manifestSha256 pins the manifest`);
    let got = await run(w, "loadOutcome", bundleUrl, entry, { manifestSha256: manifestSha });
    assert.ok(got.ok, `${entry}: the pinned manifest loads: ${got.message}`);
    got = await run(w, "loadOutcome", bundleUrl, entry, { manifestSha256: "0".repeat(64) });
    assert.equal(got.code, "INTEGRITY", `${entry}: another manifest is refused: ${got.message}`);
    assert.equal(got.file, "manifest.json");
    got = await run(w, "loadOutcome", bundleUrl, entry, { manifestSha256: "sha256-abc" });
    assert.equal(got.code, "INVALID_ARGUMENT", `${entry}: a malformed pin`);

    step(`${entry}: a manifest naming a file on another origin or outside its folder: BAD_MANIFEST, no request made`);
    for (const kind of Object.keys(hostilePaths)) {
      const before = { ...outside };
      got = await run(w, "loadOutcome", `${origin}/__hostile/${kind}/manifest.json`, entry, {});
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
  const v1 = [
    { type: "view", itemId: "50", ts: 1000 },
    { type: "view", itemId: "181", ts: 2000 },
    { type: "search", query: "space adventure", ts: Date.now() - 1000 },
  ];
  await run(m, "plantVersion1", "old", { format: "shelfwise-state", version: 1, events: v1, sessionStart: 2, profile: null });
  await run(m, "start", bundleUrl, "index", { storageKey: "old" });
  await run(m, "ready");
  assert.deepEqual(await run(m, "history"), v1, "the version-1 events");
  const migrated = await run(m, "stored", "old");
  assert.equal(migrated.version, 2, "the database is at version 2");
  assert.equal(migrated.meta.boundary, 2000, "the folded part of the history stays folded");
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
