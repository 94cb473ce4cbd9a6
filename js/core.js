// The storefront API over an engine (this thread's, or a worker's): the on-device session store
// (history, debounce, cap, persistence, long-term profile), option checking, events, and the CPU fallback.
import { EVENTS, EVENT_TYPES } from "./contract.js";
import { ShelfwiseError, asShelfwiseError } from "./errors.js";
import { FUTURE_SKEW_MS, SessionStore, isQuota, publicEvent } from "./store.js";

/**
 * The event types `track` takes, by name, from the crate's table (generated into contract.js): whether the
 * model reads each (`modelType`) and whether it names an item or is a search (`subject`). `ignore` marks an
 * item the shopper passed over: it is kept, never recommended, and not read by the model.
 */
const TRACKED = new Map(EVENTS.filter((t) => t.track).map((t) => [t.type, t]));
const EVENT_KEYS = new Set(["type", "itemId", "query", "ts", "dwellMs"]);
/** The longest search query `track` and `search` take, in characters. */
export const MAX_QUERY_CHARS = 1000;
const MAX_ID_CHARS = 256;
/** Recent events sent to the model: it skips unknown items and reads the last `max_len` (50) of the rest. */
const MODEL_EVENTS = 200;
const HOOKS = new Set(["impression", "click", "recommendations", "backendchange", "warning"]);
/** Warnings kept for a `warning` handler attached later; past this the oldest go (one `WARNINGS_DROPPED`). */
const MAX_PENDING_WARNINGS = 50;
const RECOMMEND_KEYS = new Set([
  "k",
  "excludeSeen",
  "exclude",
  "allow",
  "categories",
  "priceRange",
  "inStockOnly",
  "diversity",
  "perCategoryCap",
  "boosts",
  "explain",
  "variant",
  "popularityWeight",
  "newItemBoost",
]);

const DEFAULTS = {
  device: "auto",
  cache: true,
  persist: "none",
  storageKey: "default",
  historyCap: 500,
  debounceMs: 2000,
  sessionGapMs: 30 * 60 * 1000,
  profileWeight: 0.3,
  profileDecay: 0.7,
  downloadTimeoutMs: 30_000,
  workerTimeoutMs: 60_000,
  manifestSha256: null,
};

const LOAD_KEYS = new Set([...Object.keys(DEFAULTS), "onProgress", "wasm"]);

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const bad = (code, message, field) => new ShelfwiseError(code, message, field ? { field } : {});

function checkOptions(options) {
  if (options === undefined) return { ...DEFAULTS };
  if (!isObject(options)) throw bad("INVALID_ARGUMENT", "options must be an object", "options");
  for (const key of Object.keys(options)) {
    if (!LOAD_KEYS.has(key)) throw bad("INVALID_ARGUMENT", `unknown load option \`${key}\``, key);
  }
  const o = { ...DEFAULTS, ...options };
  if (!["auto", "webgpu", "cpu"].includes(o.device)) {
    throw bad("INVALID_ARGUMENT", `device must be "auto", "webgpu" or "cpu", not ${JSON.stringify(o.device)}`, "device");
  }
  if (!["none", "indexeddb"].includes(o.persist)) {
    throw bad("INVALID_ARGUMENT", `persist must be "none" or "indexeddb", not ${JSON.stringify(o.persist)}`, "persist");
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== "function") {
    throw bad("INVALID_ARGUMENT", "onProgress must be a function", "onProgress");
  }
  for (const [key, lo, hi] of [
    ["historyCap", 1, 100000],
    ["debounceMs", 0, 3.6e6],
    ["sessionGapMs", 1, 3.15e10],
    ["profileWeight", 0, 1],
    ["profileDecay", 0, 1],
    ["downloadTimeoutMs", 1, 3.6e6],
    ["workerTimeoutMs", 1, 3.6e6],
  ]) {
    if (typeof o[key] !== "number" || !Number.isFinite(o[key]) || o[key] < lo || o[key] > hi) {
      throw bad("INVALID_ARGUMENT", `${key} must be a number in [${lo}, ${hi}]`, key);
    }
  }
  if (o.manifestSha256 !== null && (typeof o.manifestSha256 !== "string" || !/^[0-9a-fA-F]{64}$/.test(o.manifestSha256))) {
    throw bad("INVALID_ARGUMENT", "manifestSha256 must be the manifest's SHA-256 as 64 hex digits", "manifestSha256");
  }
  if (typeof o.storageKey !== "string" || o.storageKey.length === 0 || o.storageKey.length > 200) {
    throw bad("INVALID_ARGUMENT", "storageKey must be a non-empty string of at most 200 characters", "storageKey");
  }
  return o;
}

/** Checks one `track` event; returns its stored form. Throws a ShelfwiseError. */
export function checkEvent(event, now = Date.now()) {
  if (!isObject(event)) throw bad("INVALID_EVENT", "an event must be an object like { type, itemId }", "event");
  for (const key of Object.keys(event)) {
    if (!EVENT_KEYS.has(key)) throw bad("INVALID_EVENT", `events have no field \`${key}\``, key);
  }
  const { type } = event;
  if (typeof type !== "string") throw bad("INVALID_EVENT", "`type` must be a string", "type");
  const t = TRACKED.get(type);
  if (!t) {
    throw bad("UNKNOWN_EVENT_TYPE", `unknown event type ${JSON.stringify(type.slice(0, 40))}; one of ${EVENT_TYPES.join(", ")}`, "type");
  }
  const out = { type };
  if (t.subject === "query") {
    if (typeof event.query !== "string") throw bad("INVALID_EVENT", `a ${type} event needs a string \`query\``, "query");
    if (event.query.length > MAX_QUERY_CHARS) {
      throw bad("QUERY_TOO_LONG", `a query is at most ${MAX_QUERY_CHARS} characters, not ${event.query.length}`, "query");
    }
    if (event.query.trim() === "") throw bad("INVALID_EVENT", `a ${type} event's \`query\` is empty`, "query");
    if (event.itemId !== undefined) throw bad("INVALID_EVENT", `a ${type} event has no \`itemId\``, "itemId");
    out.query = event.query;
  } else {
    if (typeof event.itemId !== "string" || event.itemId === "") {
      throw bad("INVALID_EVENT", `a ${type} event needs a non-empty string \`itemId\``, "itemId");
    }
    if (event.itemId.length > MAX_ID_CHARS) throw bad("INVALID_EVENT", `an item id is at most ${MAX_ID_CHARS} characters`, "itemId");
    if (event.query !== undefined) throw bad("INVALID_EVENT", `a ${type} event has no \`query\``, "query");
    out.itemId = event.itemId;
  }
  const ts = event.ts ?? now;
  if (typeof ts !== "number" || !Number.isFinite(ts) || ts < 0) {
    throw bad("INVALID_EVENT", "`ts` must be a finite, non-negative number of milliseconds", "ts");
  }
  out.ts = ts;
  if (event.dwellMs !== undefined) {
    if (typeof event.dwellMs !== "number" || !Number.isFinite(event.dwellMs) || event.dwellMs < 0) {
      throw bad("INVALID_EVENT", "`dwellMs` must be a finite, non-negative number", "dwellMs");
    }
    out.dwellMs = event.dwellMs;
  }
  return out;
}

/** A stored event read back (persisted state is untrusted): the event, or null. */
function restoreEvent(e) {
  if (!isObject(e)) return null;
  // The store's own fields (`key`, `uid`) are not the event's; anything else unknown makes it unreadable.
  const { key: _key, uid: _uid, ...event } = e;
  try {
    return checkEvent(event, NaN);
  } catch {
    return null;
  }
}

// ---- the API ------------------------------------------------------------------------------------

/**
 * The storefront recommender. `new Recommender(bundle, options)` starts loading at once and takes
 * `track` calls straight away; `await Recommender.load(bundle, options)` resolves when it is ready.
 */
export class RecommenderCore {
  #opts;
  #engine = null;
  #ready;
  #loadError = null;
  #disposed = false;
  #history = []; // events in time order, each with the `uid` that lets tabs merge each other's events once
  #uids = new Set(); // the uids in #history
  #nextUid = 0; // for events of a page that stores nothing
  #boundary = null; // `ts` of the last event folded into the profile: the session is what comes after it
  #profile = null; // { vector: Float32Array, sessions }
  #storedProfile = null; // { values: number[], sessions }: read back, checked once the engine is up
  #handlers = new Map();
  #pendingWarnings = [];
  #droppedWarnings = 0;
  #lastShown = new Map(); // itemId -> { rank, variant } of the latest impression
  #store = null; // the IndexedDB session store shared by this storage key's tabs (persist: "indexeddb")
  #folding = Promise.resolve();
  #generation = 0; // bumped by reset(): work started before it (a restore, a fold) drops its result
  #backend = null;
  #fallback = null; // the one restart on the CPU after a lost GPU, shared by every call that saw the loss

  constructor(source, options, openEngine) {
    this.#opts = checkOptions(options);
    let restored = Promise.resolve();
    if (this.#opts.persist === "indexeddb") {
      this.#store = new SessionStore({
        key: this.#opts.storageKey,
        cap: this.#opts.historyCap,
        validate: restoreEvent,
        warn: (code, message) => this.#warn(code, message),
        onRemote: (message) => this.#remote(message),
      });
      restored = this.#restore();
    }
    this.#ready = (async () => {
      const [engine] = await Promise.all([
        openEngine(source, {
          device: this.#opts.device,
          cache: this.#opts.cache,
          onProgress: this.#opts.onProgress,
          onWarning: (w) => this.#warn(w.code, w.message),
          wasm: this.#opts.wasm,
          downloadTimeoutMs: this.#opts.downloadTimeoutMs,
          workerTimeoutMs: this.#opts.workerTimeoutMs,
          manifestSha256: this.#opts.manifestSha256,
        }),
        restored,
      ]);
      if (this.#disposed) {
        engine.dispose();
        throw bad("DISPOSED", "the recommender was disposed while it loaded");
      }
      await this.#adoptStoredProfile(engine);
      this.#engine = engine;
      this.#backend = engine.info.backend;
      const info = engine.info;
      this.#progress({ type: "ready", backend: info.backend, items: info.items, loaded: info.bytes, total: info.bytes, cachedBytes: info.cachedBytes });
      // A session that ended while the page was closed becomes part of the long-term profile.
      this.#maybeEndSession(Date.now());
      return this;
    })().catch((e) => {
      this.#loadError = asShelfwiseError(e);
      throw this.#loadError;
    });
    // Calls made before load report the load error themselves; this only keeps it from being unhandled.
    this.#ready.catch(() => {});
  }

  /** Resolves with this recommender once the bundle is loaded (rejects with the load's error). */
  get ready() {
    return this.#ready;
  }

  /** `"webgpu"` or `"cpu"` once loaded, else `null`. */
  get backend() {
    return this.#backend;
  }

  /** Facts about the loaded bundle: items, dim, modelId, categories, takesSearches, bytes. */
  get info() {
    return this.#engine ? { ...this.#engine.info } : null;
  }

  #progress(e) {
    try {
      this.#opts.onProgress?.(e);
    } catch {
      // ignore: a progress handler cannot break the API
    }
  }

  #emit(type, payload) {
    const hs = this.#handlers.get(type);
    if (type === "warning" && (!hs || hs.size === 0)) {
      // Kept for a handler attached later, but not without bound.
      if (this.#pendingWarnings.length >= MAX_PENDING_WARNINGS) {
        this.#pendingWarnings.shift();
        this.#droppedWarnings++;
      }
      this.#pendingWarnings.push(payload);
      return;
    }
    for (const h of hs ?? []) {
      try {
        h(payload);
      } catch (e) {
        // A throwing handler must not break the API; report it once on the console.
        console.error("shelfwise: a", type, "handler threw", e);
      }
    }
  }

  #warn(code, message) {
    if (this.#disposed) return;
    this.#emit("warning", { code, message });
  }

  /** Subscribes to `impression`, `click`, `recommendations`, `backendchange` or `warning`; returns the unsubscribe function. */
  on(type, handler) {
    if (!HOOKS.has(type)) throw bad("INVALID_ARGUMENT", `no event ${JSON.stringify(String(type).slice(0, 40))}; one of ${[...HOOKS].join(", ")}`, "type");
    if (typeof handler !== "function") throw bad("INVALID_ARGUMENT", "the handler must be a function", "handler");
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    this.#handlers.get(type).add(handler);
    if (type === "warning" && (this.#pendingWarnings.length > 0 || this.#droppedWarnings > 0)) {
      const pending = this.#pendingWarnings.splice(0);
      const dropped = this.#droppedWarnings;
      this.#droppedWarnings = 0;
      queueMicrotask(() => {
        if (dropped) this.#warn("WARNINGS_DROPPED", `${dropped} earlier warnings were dropped (at most ${MAX_PENDING_WARNINGS} wait for a handler)`);
        pending.forEach((w) => this.#emit("warning", w));
      });
    }
    return () => this.#handlers.get(type)?.delete(handler);
  }

  #alive() {
    if (this.#disposed) throw bad("DISPOSED", "this recommender was disposed");
  }

  async #engineReady() {
    this.#alive();
    if (!this.#engine) {
      if (this.#loadError) throw this.#loadError;
      await this.#ready;
      this.#alive();
    }
    return this.#engine;
  }

  /** Where the current session starts in #history: after the last event folded into the profile. */
  #sessionStart() {
    const h = this.#history;
    if (this.#boundary === null) return 0;
    let i = h.length;
    while (i > 0 && h[i - 1].ts > this.#boundary) i--;
    return i;
  }

  /** Puts `e` where its time puts it (after events of the same time) and keeps the cap. Returns its index. */
  #insert(e) {
    const h = this.#history;
    let at = h.length;
    while (at > 0 && h[at - 1].ts > e.ts) at--;
    h.splice(at, 0, e);
    this.#uids.add(e.uid);
    if (h.length > this.#opts.historyCap) {
      const dropped = h.splice(0, h.length - this.#opts.historyCap);
      for (const d of dropped) this.#uids.delete(d.uid);
      at -= dropped.length;
    }
    return at;
  }

  /**
   * Records one event. Returns `true` when it was stored, `false` when it repeated a view of the same item
   * within `debounceMs`. Throws a ShelfwiseError for a malformed event; items the bundle does not know
   * are kept in the history (the model skips them).
   */
  track(event) {
    this.#alive();
    const e = checkEvent(event);
    const now = Date.now();
    if (e.ts > now + FUTURE_SKEW_MS) {
      // A `ts` from a clock that runs ahead would keep the session open until that time comes.
      this.#warn("FUTURE_TIMESTAMP", `an event's ts (${e.ts}) was ${Math.round((e.ts - now) / 1000)} s ahead of this device's clock: it was set to now`);
      e.ts = now;
    }
    const h = this.#history;
    if (e.type === "view") {
      const start = this.#sessionStart();
      for (let i = h.length - 1; i >= start; i--) {
        if (e.ts - h[i].ts > this.#opts.debounceMs) break;
        if (h[i].type === "view" && h[i].itemId === e.itemId && e.ts >= h[i].ts) return false;
      }
    }
    this.#maybeEndSession(e.ts);
    // Events may arrive late (a queue flushed after a reconnect): they go where their time puts them.
    e.uid = this.#store ? this.#store.uid() : `page:${this.#nextUid++}`;
    const last = h.at(-1);
    if (this.#insert(e) < this.#history.length - 1) {
      this.#warn("OUT_OF_ORDER", `an event at ${e.ts} arrived after one at ${last.ts}; it was placed by its time`);
    }
    if (e.type === "click" && this.#lastShown.has(e.itemId)) {
      this.#emit("click", { itemId: e.itemId, ...this.#lastShown.get(e.itemId), ts: e.ts });
    }
    this.#store?.append([e]);
    return true;
  }

  /** What another tab of this storage key did: tracked events, a changed profile, or a reset. */
  #remote(message) {
    if (this.#disposed) return;
    switch (message.type) {
      case "append":
        for (const raw of Array.isArray(message.events) ? message.events : []) {
          const e = restoreEvent(raw);
          if (!e || typeof raw.uid !== "string" || this.#uids.has(raw.uid)) continue;
          e.uid = raw.uid;
          this.#insert(e);
        }
        break;
      case "meta": {
        if (typeof message.boundary === "number" && !(message.boundary <= this.#boundary)) this.#boundary = message.boundary;
        const p = readProfile(message.profile);
        if (p) this.#takeProfile(p, this.#generation);
        break;
      }
      case "reset":
        this.#wipe();
        break;
    }
  }

  /** Adopts a profile another tab stored, once the engine has checked it fits this bundle's model. */
  async #takeProfile(p, generation) {
    if (!this.#engine) {
      this.#storedProfile = p;
      return;
    }
    try {
      const vector = await this.#engine.storedProfile(p.values);
      if (vector && generation === this.#generation) this.#profile = { vector, sessions: p.sessions };
    } catch {
      // an engine that went away meanwhile: the next load reads the profile back
    }
  }

  /** After a quiet spell longer than `sessionGapMs`, the session so far is folded into the profile. */
  #maybeEndSession(ts) {
    const h = this.#history;
    const start = this.#sessionStart();
    if (h.length === start || !(ts - h[h.length - 1].ts > this.#opts.sessionGapMs)) return;
    const ended = h.slice(start);
    const through = h[h.length - 1].ts;
    this.#boundary = through;
    const generation = this.#generation;
    this.#folding = this.#folding
      .then(() => (this.#store?.persistent ? this.#foldShared(through, generation) : this.#fold(ended, generation)))
      .catch((e) => {
        if (generation === this.#generation && !this.#disposed) this.#warn("PROFILE_FAILED", String(e?.message ?? e));
      });
  }

  /**
   * The ended session's interest vector joins the page's profile (the engine does the maths). A fold
   * started before a `reset()` (another generation) drops its result: the session it folds was wiped.
   */
  async #fold(ended, generation) {
    if (generation !== this.#generation) return;
    const session = await this.#run((engine) => engine.interest(this.#modelEvents(ended)));
    if (!session || generation !== this.#generation) return;
    const p = this.#profile;
    const vector = await (await this.#engineReady()).foldProfile(p?.vector, session, this.#opts.profileDecay);
    if (generation !== this.#generation) return;
    this.#profile = { vector, sessions: (p?.sessions ?? 0) + 1 };
  }

  /**
   * The same fold for a stored profile, under the storage key's Web Lock: the stored profile (which another
   * tab may have changed) is the one folded into, and a session another tab already folded is not folded
   * twice (the stored boundary is past it).
   */
  async #foldShared(through, generation) {
    await this.#engineReady(); // loading must not hold the lock
    const store = this.#store;
    await store.withLock(async () => {
      if (generation !== this.#generation) return;
      const meta = await store.readMeta();
      if (!meta || generation !== this.#generation) return; // another tab reset the store first
      const from = meta.boundary ?? -Infinity;
      const stored = readProfile(meta.profile);
      if (from >= through) {
        // Another tab folded this session already: its profile is the one to use.
        if (stored) await this.#takeProfile(stored, generation);
        return;
      }
      const events = this.#history.filter((e) => e.ts > from && e.ts <= through);
      const session = await this.#run((engine) => engine.interest(this.#modelEvents(events)));
      if (generation !== this.#generation) return;
      const engine = await this.#engineReady();
      let base = stored ? await engine.storedProfile(stored.values) : undefined;
      let sessions = base ? stored.sessions : 0;
      if (!stored && this.#profile) {
        base = this.#profile.vector;
        sessions = this.#profile.sessions;
      }
      let profile = base ? { vector: base, sessions } : null;
      if (session) profile = { vector: await engine.foldProfile(base, session, this.#opts.profileDecay), sessions: sessions + 1 };
      if (generation !== this.#generation) return;
      const written = await store.writeMeta({
        boundary: through,
        profile: profile ? { vector: Array.from(profile.vector), sessions: profile.sessions } : null,
      });
      if (written && generation === this.#generation) this.#profile = profile;
    });
  }

  /** A profile read back from storage is used if the engine finds it fits this bundle's model. */
  async #adoptStoredProfile(engine) {
    const stored = this.#storedProfile;
    this.#storedProfile = null;
    if (!stored) return;
    const generation = this.#generation;
    const vector = await engine.storedProfile(stored.values);
    if (generation !== this.#generation) return; // reset() wiped it meanwhile
    if (vector) {
      this.#profile = { vector, sessions: stored.sessions };
    } else {
      this.#warn("CORRUPT_HISTORY", "the stored profile does not fit this bundle's model (another width, or a value that is not a finite 32-bit float): it was dropped");
      this.#store?.writeMeta({ boundary: this.#boundary, profile: null }).catch(() => {});
    }
  }

  /** The engine's events for stored ones: the types the model reads, the most recent first cut. */
  #modelEvents(events) {
    const out = [];
    for (const e of events) {
      const t = TRACKED.get(e.type);
      if (!t || t.modelType === null) continue;
      out.push(t.subject === "query" ? { type: e.type, query: e.query } : { type: e.type, itemId: e.itemId });
    }
    return out.slice(-MODEL_EVENTS);
  }

  #searchOptions(opts, engine, forRecommend) {
    if (opts === undefined) opts = {};
    if (!isObject(opts)) throw bad("INVALID_ARGUMENT", "options must be an object", "options");
    const out = {};
    for (const [key, v] of Object.entries(opts)) {
      if (!RECOMMEND_KEYS.has(key)) throw bad("INVALID_ARGUMENT", `unknown option \`${key}\``, key);
      if (v === undefined) continue;
      switch (key) {
        case "excludeSeen":
        case "explain":
          if (typeof v !== "boolean") throw bad("INVALID_ARGUMENT", `${key} must be a boolean`, key);
          break;
        case "variant":
          if (typeof v !== "string" || v.length > 100) throw bad("INVALID_ARGUMENT", "variant must be a string of at most 100 characters", key);
          break;
        case "diversity":
          if (typeof v !== "number" || !(v >= 0 && v <= 1)) throw bad("INVALID_ARGUMENT", "diversity must be a number in [0, 1]", key);
          if (v > 0) out.mmrLambda = 1 - v;
          break;
        case "categories": {
          if (!Array.isArray(v)) throw bad("INVALID_ARGUMENT", "categories must be an array of names", key);
          out.categories = v.map((c) => this.#category(c, engine));
          break;
        }
        case "boosts": {
          if (!isObject(v)) throw bad("INVALID_ARGUMENT", "boosts must be an object { category: boost }", key);
          out.boosts = {};
          for (const [c, b] of Object.entries(v)) {
            if (typeof b !== "number" || !Number.isFinite(b)) throw bad("INVALID_ARGUMENT", `the boost of ${c} must be a finite number`, key);
            out.boosts[String(this.#category(c, engine))] = b;
          }
          break;
        }
        default:
          out[key] = v;
      }
    }
    if (forRecommend && opts.excludeSeen !== false) {
      const seen = this.#history.filter((e) => e.itemId !== undefined).map((e) => e.itemId);
      if (seen.length) out.exclude = [...(Array.isArray(out.exclude) ? out.exclude : []), ...new Set(seen)];
    } else if (forRecommend) {
      const ignored = this.#history.filter((e) => e.type === "ignore").map((e) => e.itemId);
      if (ignored.length) out.exclude = [...(Array.isArray(out.exclude) ? out.exclude : []), ...new Set(ignored)];
    }
    return out;
  }

  #category(c, engine) {
    const names = engine.info.categories;
    const i = typeof c === "string" ? names.indexOf(c) : -1;
    if (i < 0) throw new ShelfwiseError("UNKNOWN_CATEGORY", `no category ${JSON.stringify(String(c).slice(0, 60))} in this bundle`, { field: "categories" });
    return i;
  }

  /** Runs `f(engine)`; if the GPU was lost, restarts on the CPU once and runs it again. */
  async #run(f) {
    const engine = await this.#engineReady();
    try {
      return await f(engine);
    } catch (e) {
      const err = asShelfwiseError(e);
      if (err.code !== "GPU_ERROR" || (this.#backend !== "webgpu" && !this.#fallback)) throw err;
      // Overlapping calls that all saw the loss share one restart and one backendchange; a call that
      // fails after the restart finished just runs again on the CPU.
      this.#fallback ??= (async () => {
        const from = this.#backend;
        await engine.fallbackToCpu();
        this.#alive();
        this.#backend = engine.info.backend;
        this.#emit("backendchange", { from, to: this.#backend, reason: err.message });
      })();
      await this.#fallback;
      this.#alive();
      return await f(engine);
    }
  }

  #finish(out, opts, surface) {
    const explain = opts?.explain !== false;
    const items = out.items.map((it, rank) => (explain ? { ...it, rank } : { id: it.id, score: it.score, rank }));
    const variant = opts?.variant;
    this.#lastShown.clear();
    for (const it of items) this.#lastShown.set(it.id, { rank: it.rank, variant, surface });
    return { items, backend: out.backend, variant, totalMs: out.totalMs, ...(out.timings ? { timings: out.timings } : {}) };
  }

  /**
   * Ranks the catalogue for the current session (blended with the long-term profile when there is one).
   * Options: k, excludeSeen (true), exclude, allow, categories (names), priceRange, inStockOnly, diversity
   * (0 = relevance only … 1 = most diverse; MMR), perCategoryCap, boosts ({ category: add }), explain
   * (true), variant (an A/B label passed to the hooks), popularityWeight, newItemBoost (added to the
   * scores of items with no recorded interactions).
   */
  async recommend(opts) {
    const t0 = performance.now();
    await this.#engineReady();
    // A session that went quiet for `sessionGapMs` is over: fold it into the profile first.
    this.#maybeEndSession(Date.now());
    await this.#folding;
    const out = await this.#run(async (engine) => {
      const search = this.#searchOptions(opts, engine, true);
      const events = this.#modelEvents(this.#history.slice(this.#sessionStart()));
      const p = this.#profile;
      // An empty session ranks by the profile alone, whatever profileWeight says.
      const profile = p ? { vector: p.vector, weight: events.length ? this.#opts.profileWeight : 1 } : undefined;
      return engine.recommend(events, search, profile);
    });
    const result = this.#finish(out, opts, "recommend");
    result.timings = { ...(out.timings ?? {}), totalMs: performance.now() - t0 };
    this.#emit("recommendations", { items: result.items, backend: result.backend, timings: result.timings, variant: result.variant });
    this.#emit("impression", { surface: "recommend", itemIds: result.items.map((i) => i.id), variant: result.variant });
    return result;
  }

  /** Items like `itemId` (item-to-item). */
  async similar(itemId, opts) {
    if (typeof itemId !== "string" || itemId === "") throw bad("INVALID_ARGUMENT", "itemId must be a non-empty string", "itemId");
    const out = await this.#run((engine) => engine.similar(itemId, this.#searchOptions(opts, engine, false)));
    const result = this.#finish(out, opts, "similar");
    this.#emit("impression", { surface: "similar", itemIds: result.items.map((i) => i.id), variant: result.variant });
    return result;
  }

  /** Semantic search over the catalogue for `text` alone (the session is not used or changed). */
  async search(text, opts) {
    if (typeof text !== "string") throw bad("INVALID_ARGUMENT", "the query must be a string", "query");
    if (text.length > MAX_QUERY_CHARS) throw bad("QUERY_TOO_LONG", `a query is at most ${MAX_QUERY_CHARS} characters`, "query");
    if (text.trim() === "") throw bad("INVALID_QUERY", "the query is empty", "query");
    const out = await this.#run((engine) => engine.search(text, this.#searchOptions(opts, engine, false)));
    const result = this.#finish(out, opts, "search");
    this.#emit("impression", { surface: "search", itemIds: result.items.map((i) => i.id), variant: result.variant });
    return result;
  }

  /**
   * What this recommender holds in memory, for monitoring: `{ wasmBytes, historyEvents }`, the wasm
   * module's linear memory (in the worker, for `shelfwise/worker`; it grows, never shrinks) and the events
   * in the history.
   */
  async memoryUsage() {
    const { wasmBytes } = await this.#run((engine) => engine.memoryUsage());
    return { wasmBytes, historyEvents: this.#history.length };
  }

  /** Every stored event, oldest first (copies). */
  history() {
    return this.#history.map(publicEvent);
  }

  /** The long-term profile: `{ vector, sessions }`, or null before any session has ended. */
  profile() {
    const p = this.#profile;
    return p ? { vector: Float32Array.from(p.vector), sessions: p.sessions } : null;
  }

  /** The profile as stored: the adopted one, or one read back that the engine has not checked yet. */
  #profileRecord() {
    const p = this.#profile;
    if (p) return { vector: Array.from(p.vector), sessions: p.sessions };
    const s = this.#storedProfile;
    return s ? { vector: [...s.values], sessions: s.sessions } : null;
  }

  /** The shopper's data on this device, as JSON-ready data (for a "download my data" link). */
  exportHistory() {
    return {
      format: "shelfwise-history",
      version: 1,
      exportedAt: new Date().toISOString(),
      events: this.history(),
      sessionStart: this.#sessionStart(),
      profile: this.#profileRecord(),
    };
  }

  /** Forgets everything about the shopper in this page (reset here, or in another tab). */
  #wipe() {
    this.#generation++;
    this.#history = [];
    this.#uids.clear();
    this.#boundary = null;
    this.#profile = null;
    this.#storedProfile = null;
    this.#lastShown.clear();
    // The encoded searches the engine keeps are the shopper's too.
    this.#engine?.forgetQueries().catch(() => {});
  }

  /**
   * Wipes the shopper's data on this device: history, profile, the stored events and the engine's cached
   * searches, in this tab and every other tab of this storage key. Work in flight (a session being folded
   * into the profile, the stored record being read, events queued for writing) drops its result.
   */
  async reset() {
    this.#alive();
    this.#wipe();
    if (this.#store) {
      try {
        await this.#store.reset();
      } catch (e) {
        this.#warn("STORAGE_FAILED", `the stored history could not be deleted: ${e?.message ?? e}`);
      }
    }
  }

  /**
   * Testing only: destroys the model's GPU device, as a driver reset would. The next call must go on on
   * the CPU with the same results, and `backendchange` fires.
   */
  async __simulateDeviceLoss() {
    const engine = await this.#engineReady();
    await engine.simulateDeviceLoss();
  }

  /** Testing only (`shelfwise/worker`): the worker hangs, as a stuck module would; `workerTimeoutMs` ends it. */
  async __simulateWorkerHang() {
    const engine = await this.#engineReady();
    if (!engine.simulateHang) throw bad("INVALID_ARGUMENT", "only the worker entry (shelfwise/worker) has a worker to hang");
    return engine.simulateHang();
  }

  /** Releases the model and shards. The stored history stays (use `reset` to wipe it); queued writes finish. */
  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#engine?.dispose();
    this.#engine = null;
    this.#handlers.clear();
    this.#store?.close();
  }

  // ---- persistence --------------------------------------------------------------------------------

  /** Reads the stored events and profile, and merges the events tracked meanwhile (by time). */
  async #restore() {
    const generation = this.#generation;
    let stored;
    try {
      stored = await this.#store.open();
    } catch (e) {
      if (isQuota(e)) this.#warn("STORAGE_FULL", `IndexedDB is out of quota, so history stays in memory: ${e?.message ?? e}`);
      else this.#warn("STORAGE_UNAVAILABLE", `IndexedDB is not usable, so history stays in memory: ${e?.message ?? e}`);
      return;
    }
    // reset() was called while the record was read: it is wiped, not merged.
    if (generation !== this.#generation) return;
    const problems = [...stored.problems];
    if (stored.profile !== null) {
      const p = readProfile(stored.profile);
      // Its values are checked by the engine once it is up (they must fit the model, as 32-bit floats).
      if (p) this.#storedProfile = p;
      else problems.push("the profile was unreadable");
    }
    // Events tracked before the stored ones arrived are merged in by time (they are queued for writing).
    const early = this.#history;
    this.#history = [];
    this.#uids.clear();
    for (const e of [...stored.events, ...early]) if (!this.#uids.has(e.uid)) this.#insert(e);
    if (stored.boundary !== null && !(stored.boundary <= this.#boundary)) this.#boundary = stored.boundary;
    if (problems.length) {
      this.#warn("CORRUPT_HISTORY", `the stored history was damaged and has been repaired: ${problems.join("; ")}`);
      if (problems.includes("the profile was unreadable")) this.#store.writeMeta({ boundary: this.#boundary, profile: null }).catch(() => {});
    }
  }

  /** Resolves when every write so far has reached IndexedDB (a profile being folded included). */
  flush() {
    const store = this.#store;
    if (!store) return this.#folding;
    return store
      .flush()
      .then(() => this.#folding)
      .then(() => store.flush());
  }
}

/** A stored profile record `{ vector: number[], sessions }` as `{ values, sessions }`, or null if unreadable. */
function readProfile(p) {
  const ok = isObject(p) && Array.isArray(p.vector) && p.vector.every((x) => typeof x === "number") && Number.isSafeInteger(p.sessions) && p.sessions > 0;
  return ok ? { values: p.vector, sessions: p.sessions } : null;
}

/** The public `Recommender` class over an engine opener (this thread's, or a worker's). */
export function defineRecommender(open) {
  return class Recommender extends RecommenderCore {
    /** Starts loading `bundle` (a manifest URL, or `{ manifest, files }`); calls made before it is ready wait. */
    constructor(bundle, options) {
      super(bundle, options, open);
    }

    /** Loads a bundle and resolves with a ready Recommender (rejects with a ShelfwiseError). */
    static async load(bundle, options) {
      return new this(bundle, options).ready;
    }
  };
}
