// The session-store scenarios that every browser runs, written once against a small driver interface so
// that tests/e2e/store.mjs (Chromium, through Playwright) and tests/e2e/store-browsers.mjs (Firefox and
// WebKit, through WebDriver) check the same things. A driver gives:
//
//   tab()                 opens a tab on tests/e2e/blank.html, ready to run store-page.js functions
//   run(tab, fn, ...args) runs `fn(...args)` of tests/e2e/store-page.js in that tab and returns its result
//   runAll(tabs, fn, ...) runs the same call in every tab at once and returns their results
//   reload(tab), close(tab)
//
// Each scenario throws an AssertionError whose message starts with the entry it ran on.
import assert from "node:assert/strict";

const views = (ids, t0) => ids.map((itemId, i) => ({ type: "view", itemId, ts: t0 + i }));

/**
 * The scenarios for one entry (`index` or `worker`): tabs tracking at once and before their bundle has
 * loaded, a third tab and a reload seeing every event, `reset()` in one tab wiping every tab (a queued
 * event included), a quiet session folded once though two tabs see it end, future timestamps, bounded
 * warnings and a pinned manifest. `step(text)` reports progress.
 */
export async function entryScenarios(d, { entry, bundleUrl, manifestSha, step }) {
  const { run } = d;
  step(`${entry}: two tabs track at once, before their bundles load; each sees the other's events`);
  const key = `tabs-${entry}`;
  const [a, b] = [await d.tab(), await d.tab()];
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
  const c = await d.tab();
  await run(c, "start", bundleUrl, entry, { storageKey: key });
  await run(c, "ready");
  assert.deepEqual(await run(c, "ids"), ids, `${entry}: a third tab loads all 6 events, in time order`);
  assert.equal((await run(c, "stored", key)).events.length, 6, `${entry}: 6 event records stored`);

  step(`${entry}: reload both tabs; then more events in each; a reload sees all of them`);
  await d.reload(a);
  await d.reload(b);
  await run(a, "start", bundleUrl, entry, { storageKey: key });
  await run(a, "track", views(["200"], t0 + 10));
  await run(b, "start", bundleUrl, entry, { storageKey: key });
  await run(b, "track", views(["201"], t0 + 11));
  await run(a, "flush");
  await run(b, "flush");
  assert.equal(await run(a, "waitFor", 8), 8, `${entry}: tab a sees 8 events`);
  await d.reload(c);
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
  const e4 = await d.tab();
  await run(e4, "start", bundleUrl, entry, { storageKey: key });
  await run(e4, "ready");
  assert.deepEqual(await run(e4, "ids"), ["400"], `${entry}: after the reset, only the later event is stored`);
  const after = await run(e4, "stored", key);
  assert.equal(after.events.length, 1, `${entry}: one event record left`);
  assert.equal(after.meta.profile, null, `${entry}: no profile left`);
  for (const p of [a, b, c, e4]) await d.close(p);

  step(`${entry}: a quiet session that two tabs see end is folded into the profile once`);
  const fkey = `fold-${entry}`;
  const [e, f] = [await d.tab(), await d.tab()];
  await run(e, "start", bundleUrl, entry, { storageKey: fkey });
  await run(f, "start", bundleUrl, entry, { storageKey: fkey });
  await run(e, "ready");
  await run(f, "ready");
  await run(e, "track", views(["50", "181"], Date.now() - 2 * 3600_000));
  await run(e, "flush");
  assert.equal(await run(f, "waitFor", 2), 2, `${entry}: tab f sees the session`);
  // Both tabs find the session over at their next recommend() (sessionGapMs is 30 minutes).
  await d.runAll([e, f], "recommend");
  await run(e, "flush");
  await run(f, "flush");
  const meta = (await run(e, "stored", fkey)).meta;
  assert.equal(meta.profile?.sessions, 1, `${entry}: the stored profile has one session, not two`);
  assert.equal(await run(e, "sessions"), 1, `${entry}: tab e's profile`);
  assert.equal(await run(f, "sessions"), 1, `${entry}: tab f's profile`);
  await run(e, "reset");
  await d.close(e);
  await d.close(f);

  step(`${entry}: future timestamps are set to now; warnings wait for a handler, at most 50`);
  const w = await d.tab();
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
  await d.close(w);
}

/**
 * A version-1 database (one record per key) is migrated: its events and session boundary are kept. `m` is
 * a tab of an origin with no shelfwise database yet.
 */
export async function migrationScenario(d, m, { bundleUrl }) {
  const v1 = [
    { type: "view", itemId: "50", ts: 1000 },
    { type: "view", itemId: "181", ts: 2000 },
    { type: "search", query: "space adventure", ts: Date.now() - 1000 },
  ];
  await d.run(m, "plantVersion1", "old", { format: "shelfwise-state", version: 1, events: v1, sessionStart: 2, profile: null });
  await d.run(m, "start", bundleUrl, "index", { storageKey: "old" });
  await d.run(m, "ready");
  assert.deepEqual(await d.run(m, "history"), v1, "the version-1 events");
  const migrated = await d.run(m, "stored", "old");
  assert.equal(migrated.version, 2, "the database is at version 2");
  assert.equal(migrated.meta.boundary, 2000, "the folded part of the history stays folded");
}
