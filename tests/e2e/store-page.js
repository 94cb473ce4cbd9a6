// The page side of the session-store tests (tests/e2e/store.mjs): each tab imports this module and drives
// one Recommender through it, so the test (in Node) only says what each tab does and when.

/** Starts a recommender in this tab (not awaited: `track` works at once, as storefronts use it). */
export async function start(bundle, entry, options) {
  const { Recommender } = await import(`/pkg/${entry}.js`);
  const warnings = [];
  const rec = new Recommender(bundle, { device: "cpu", cache: false, persist: "indexeddb", ...options });
  rec.on("warning", (w) => warnings.push(w));
  globalThis.__store = { rec, warnings };
  return true;
}

const rec = () => globalThis.__store.rec;

export const ready = async () => (await rec().ready, true);
export const track = (events) => events.map((e) => rec().track(e));
export const flush = async () => (await rec().flush(), true);
export const ids = () => rec().history().map((e) => e.itemId ?? e.query);
export const history = () => rec().history();
export const warnings = () => globalThis.__store.warnings.map((w) => w.code);
export const sessions = () => rec().profile()?.sessions ?? 0;
export const reset = async () => (await rec().reset(), true);
export const dispose = () => (rec().dispose(), true);

/** `recommend()`, then what the history was when it ran (what the ranking saw). */
export async function recommend(k = 5) {
  const out = await rec().recommend({ k });
  return { items: out.items.map((i) => i.id), history: ids() };
}

/** Resolves when this tab's history has `n` events, or after `ms` (returns the count either way). */
export async function waitFor(n, ms = 5000) {
  const t0 = performance.now();
  while (rec().history().length !== n && performance.now() - t0 < ms) await new Promise((r) => setTimeout(r, 10));
  return rec().history().length;
}

/** Every record the session store holds for `key` (events and meta), read from IndexedDB directly. */
export function stored(key) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("shelfwise");
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains("events")) {
        db.close();
        return resolve({ events: [], meta: null, version: db.version });
      }
      const tx = db.transaction(["events", "meta"]);
      const out = { events: [], meta: null, version: db.version };
      tx.objectStore("events").getAll().onsuccess = (e) => (out.events = e.target.result.filter((r) => r?.key === key));
      tx.objectStore("meta").get(key).onsuccess = (e) => (out.meta = e.target.result ?? null);
      tx.oncomplete = () => {
        db.close();
        resolve(out);
      };
      tx.onerror = () => reject(tx.error);
    };
  });
}

/** Writes raw records into the store (damaged ones included), as a broken earlier visit might have. */
export function plant(key, { events = [], meta, clear = false }) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("shelfwise");
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(["events", "meta"], "readwrite");
      const store = tx.objectStore("events");
      if (clear) {
        store.openCursor().onsuccess = (e) => {
          const c = e.target.result;
          if (!c) {
            for (const r of events) store.add(r);
            return;
          }
          if (c.value?.key === key) c.delete();
          c.continue();
        };
      } else {
        for (const r of events) store.add(r);
      }
      if (meta !== undefined) tx.objectStore("meta").put(meta, key);
      tx.oncomplete = () => {
        db.close();
        resolve(true);
      };
      tx.onerror = () => reject(tx.error);
    };
  });
}

/** A version-1 database (one whole record per key in `state`), as shelfwise 0.1 left it. */
export function plantVersion1(key, record) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("shelfwise", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("state");
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction("state", "readwrite");
      tx.objectStore("state").put(record, key);
      tx.oncomplete = () => {
        db.close();
        resolve(true);
      };
      tx.onerror = () => reject(tx.error);
    };
  });
}

/** Loads a recommender with `options` and reports how it settled: `{ ok }` or `{ code, file, message }`. */
export async function loadOutcome(bundle, entry, options, ms = 20000) {
  const { Recommender } = await import(`/pkg/${entry}.js`);
  const hung = new Promise((ok) => setTimeout(() => ok({ ok: false, code: "HUNG" }), ms));
  const load = Recommender.load(bundle, { device: "cpu", cache: false, ...options }).then(
    (r) => (r.dispose(), { ok: true }),
    (e) => ({ ok: false, code: e.code, file: e.file, message: e.message }),
  );
  return Promise.race([load, hung]);
}

/** The worker hangs (`shelfwise/worker` only): how the call settled, and how the next call does. */
export async function hang() {
  const t0 = performance.now();
  const code = await rec()
    .__simulateWorkerHang()
    .then(() => "resolved", (e) => e.code);
  const ms = performance.now() - t0;
  const next = await rec()
    .recommend({ k: 3 })
    .then(() => "resolved", (e) => e.code);
  return { code, ms, next };
}

/** Warnings with no handler attached are kept, but at most 50 (then one WARNINGS_DROPPED says so). */
export async function boundedWarnings(bundle, entry) {
  const { Recommender } = await import(`/pkg/${entry}.js`);
  const r = new Recommender(bundle, { device: "cpu", cache: false });
  // Each event is older than the last: 119 OUT_OF_ORDER warnings, and nobody listening yet.
  const t = Date.now();
  for (let i = 0; i < 120; i++) r.track({ type: "view", itemId: String(i + 1), ts: t - i * 10 });
  // A ts a day ahead of the clock is set to now.
  r.track({ type: "view", itemId: "500", ts: t + 86_400_000 });
  const got = [];
  r.on("warning", (w) => got.push(w.code));
  await new Promise((ok) => setTimeout(ok, 0));
  const last = r.history().at(-1);
  r.dispose();
  return { got, lastTs: last.ts, now: Date.now() };
}
