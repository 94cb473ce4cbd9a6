// The session-store scenarios of tests/e2e/store-scenarios.mjs (store.mjs runs them in Chromium) in
// Firefox ESR and in WebKitGTK (Safari's engine), whose IndexedDB, Web Locks and BroadcastChannel are
// other implementations than Chromium's. Playwright
// cannot drive Debian's builds of these, so a small W3C WebDriver client does (tests/e2e/webdriver.mjs);
// each tab imports tests/e2e/store-page.js and runs its functions, as in store.mjs. Both entries
// (`shelfwise` and `shelfwise/worker`) run: tabs tracking at once and before their bundle has loaded, a
// third tab and a reload seeing every event, `reset()` in one tab wiping every tab (a queued event
// included), a quiet session folded into the profile once though two tabs see it end, future timestamps,
// bounded warnings and a pinned manifest; then a version-1 database migrated (its upgrade transaction).
//
// Not here (store.mjs covers them in Chromium): the full IndexedDB / Cache API, which needs the DevTools
// protocol's Storage.overrideQuotaForOrigin (WebDriver has no way to shrink an origin's quota), and the
// worker that stops answering, which is a property of the worker plumbing, not of a browser's storage.
//
// WebDriver runs one command at a time in one tab, so where store.mjs runs two tabs' recommend() at once
// (Promise.all), this test starts the call in each tab (execute/sync, not awaited), then collects each.
//
//   bash scripts/setup-browsers.sh          (firefox-esr, geckodriver, webkit2gtk-driver, xvfb)
//   node tests/e2e/store-browsers.mjs --browser firefox --bundle cache/golden/bundle
//   node tests/e2e/store-browsers.mjs --browser webkit --bundle cache/golden/bundle
//
// --entries index,worker (the default) picks the entries; --verbose prints the driver's log as it comes
// (otherwise its last lines are printed on failure); --timeout 240 bounds the whole run, in seconds.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { serve } from "../../scripts/serve.mjs";
import { startDriver } from "./webdriver.mjs";
import { entryScenarios, migrationScenario } from "./store-scenarios.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const browserName = arg("browser", "firefox");
const bundleDir = arg("bundle", "cache/golden/bundle");
const ENTRIES = arg("entries", "index,worker").split(",");
const verbose = process.argv.includes("--verbose");
const timeoutS = Number(arg("timeout", 240)); // the whole run, so that CI never waits on a stuck browser

const step = (s) => console.log(`store (${browserName}): ${s}`);

// scripts/serve.mjs sends COOP: same-origin and COEP: require-corp; every file here is same-origin, so
// neither blocks anything (the module worker and its imports included).
const server = await serve({ port: 0, root: "." });
const origin = `http://127.0.0.1:${server.address().port}`;
const bundlePath = "/" + relative(resolve("."), resolve(bundleDir)).split("\\").join("/") + "/";
const bundleUrl = `${origin}${bundlePath}manifest.json`;
const manifestSha = createHash("sha256").update(readFileSync(join(bundleDir, "manifest.json"))).digest("hex");

const driverLog = [];
const log = (l) => {
  if (verbose) console.log(`  [driver] ${l}`);
  driverLog.push(l);
  if (driverLog.length > 200) driverLog.shift();
};

// Each tab loads tests/e2e/store-page.js with a module script of its own (PREPARE), and every call goes
// through it, its arguments and result as JSON. Not the simpler `import("/tests/e2e/store-page.js")` in
// the WebDriver script itself: Firefox (Marionette) runs each WebDriver script in a sandbox of its own,
// and a module imported from there is evaluated in that sandbox (a new module instance and a new
// globalThis at every call), so the recommender `start` made would be gone by `track`. `wrappedJSObject`
// is the page's own window in Firefox (WebKit has none and runs WebDriver scripts in the page's world).
const PAGE_MODULE = `import * as m from "/tests/e2e/store-page.js";
const call = (fn, json) =>
  Promise.resolve()
    .then(() => m[fn](...JSON.parse(json)))
    .then((v) => JSON.stringify({ ok: v }), (e) => JSON.stringify({ err: String(e) + "\\n" + String((e && e.stack) || "") }));
const t = { call, kicked: null, errors: [] };
t.kick = (fn, json) => ((t.kicked = call(fn, json)), true);
addEventListener("error", (e) => t.errors.push(String(e.message)));
addEventListener("unhandledrejection", (e) => t.errors.push("unhandled rejection: " + String((e.reason && e.reason.stack) || e.reason)));
window.__storeTest = t;
dispatchEvent(new Event("store-test-ready"));`;
const PAGE = "const page = window.wrappedJSObject || window;";
const PREPARE = `const done = arguments[arguments.length - 1]; ${PAGE}
if (page.__storeTest) return done(true);
addEventListener("store-test-ready", () => done(true), { once: true });
const s = document.createElement("script");
s.type = "module";
s.onerror = () => done(false);
s.textContent = arguments[0];
document.head.append(s);`;
// `fn(...args)` of store-page.js in this tab: `{ ok }` or `{ err }` (a rejection is not a WebDriver error).
const RUN = `const done = arguments[arguments.length - 1]; ${PAGE} page.__storeTest.call(arguments[0], arguments[1]).then(done);`;
// The same, started and not awaited (collected by COLLECT), so that two tabs' calls run at once.
const KICK = `${PAGE} return page.__storeTest.kick(arguments[0], arguments[1]);`;
const COLLECT = `const done = arguments[arguments.length - 1]; ${PAGE} page.__storeTest.kicked.then(done);`;
// What Playwright's "pageerror" reports (uncaught errors, unhandled rejections) since the last read.
const READ_ERRORS = `${PAGE} return JSON.stringify(page.__storeTest ? page.__storeTest.errors.splice(0) : []);`;

let driver = null;
const watchdog = setTimeout(async () => {
  console.error(`store (${browserName}) FAILED: the run took more than ${timeoutS} s`);
  await Promise.race([driver?.stop(), new Promise((ok) => setTimeout(ok, 5000))]).catch(() => {});
  process.exit(1);
}, timeoutS * 1000);
watchdog.unref();
let failed = false;
const failures = []; // "<entry>: <message>" for each entry (or the migration) that failed
const t0run = Date.now();
try {
  driver = await startDriver(browserName, { log });
  const s = await driver.session();
  step(`browser: ${s.version} (${browserName === "firefox" ? "geckodriver" : "WebKitWebDriver"}, ${origin})`);
  const home = await s.handle(); // the session's first window stays open (closing the last one ends the session)
  const pageErrors = [];
  const open = new Set();

  const settled = (where, json) => {
    const r = JSON.parse(json);
    if ("err" in r) throw new Error(`in the tab, ${where}: ${r.err}`);
    return r.ok;
  };
  const collectErrors = async (h) => {
    await s.switchTo(h);
    for (const e of JSON.parse(await s.execute(READ_ERRORS))) pageErrors.push(e);
  };
  const prepare = async () => assert.equal(await s.executeAsync(PREPARE, [PAGE_MODULE]), true, "the tab loads store-page.js");
  async function tab() {
    const h = await s.newTab();
    await s.switchTo(h);
    await s.navigate(`${origin}/tests/e2e/blank.html`);
    await prepare();
    open.add(h);
    return h;
  }
  async function reload(h) {
    await collectErrors(h);
    await s.refresh();
    await prepare();
  }
  async function close(h) {
    await collectErrors(h);
    await s.closeWindow();
    open.delete(h);
    await s.switchTo(home);
  }
  /** Runs `fn(...args)` of tests/e2e/store-page.js in tab `h`. */
  async function run(h, fn, ...args) {
    await s.switchTo(h);
    return settled(fn, await s.executeAsync(RUN, [fn, JSON.stringify(args)]));
  }
  /** Starts `fn(...args)` in every tab of `hs`, then awaits each: the calls run at once. */
  async function runAll(hs, fn, ...args) {
    for (const h of hs) {
      await s.switchTo(h);
      await s.execute(KICK, [fn, JSON.stringify(args)]);
    }
    const out = [];
    for (const h of hs) {
      await s.switchTo(h);
      out.push(settled(fn, await s.executeAsync(COLLECT)));
    }
    return out;
  }
  const tabs = { tab, run, runAll, reload, close }; // what store-scenarios.mjs drives

  for (const entry of ENTRIES) {
    try {
      const t = Date.now();
      await entryScenarios(tabs, { entry, bundleUrl, manifestSha, step });
      step(`${entry}: done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    } catch (e) {
      // One entry failing does not keep the other from running: its tabs are closed, and the run fails.
      const first = e.message.split("\n")[0];
      failures.push(first.startsWith(`${entry}:`) ? first : `${entry}: ${first}`);
      console.error(`store (${browserName}) FAILED: ${entry}: ${e.stack ?? e.message}`);
      for (const h of [...open]) await close(h).catch(() => open.delete(h));
      await s.switchTo(home).catch(() => {});
    }
  }

  step("a version-1 database (one record per key) is migrated: its events and session boundary are kept");
  // store.mjs uses a fresh browser context; here every tab is closed and the database deleted instead.
  try {
    const m = await tab();
    const deleted = await s.executeAsync(`const done = arguments[arguments.length - 1];
      const r = indexedDB.deleteDatabase("shelfwise");
      r.onsuccess = () => done("deleted");
      r.onerror = () => done("error: " + r.error); // (blocked: it goes on once the closed tabs let go)`);
    assert.equal(deleted, "deleted", "the database of the scenarios above is deleted");
    await migrationScenario(tabs, m, { bundleUrl });
    await close(m);
  } catch (e) {
    failures.push(`migration: ${e.message.split("\n")[0]}`);
    console.error(`store (${browserName}) FAILED: migration: ${e.stack ?? e.message}`);
  }

  for (const h of open) await collectErrors(h);
  if (failures.length) throw new Error(`${failures.length} of ${ENTRIES.length + 1} parts failed:\n  ${failures.join("\n  ")}`);
  assert.deepEqual(pageErrors, [], "no uncaught page errors");
  step(`passed in ${((Date.now() - t0run) / 1000).toFixed(1)} s`);
} catch (e) {
  failed = true;
  console.error(`store (${browserName}) FAILED: ${e.stack ?? e.message}`);
  if (!verbose && driverLog.length) console.error(`  the driver's last lines:\n${driverLog.slice(-40).map((l) => `    ${l}`).join("\n")}`);
} finally {
  await driver?.stop().catch((e) => console.error(`store (${browserName}): stopping the driver: ${e.message}`));
  server.close();
}
process.exit(failed ? 1 : 0);
