// The on-device session store behind `persist: "indexeddb"`: events are appended one record each (a write
// never replaces what another page or an earlier visit stored), every tab of one storage key sees the others'
// events through a BroadcastChannel, the long-term profile is changed under a Web Lock, and `reset()` wipes
// every tab. Nothing here leaves the device.
//
// The database (`shelfwise`, version 2):
// - `events`: one record per event, `{ key, uid, ts, type, itemId | query, dwellMs? }` (auto-increment
//   keys), indexed by `[key, ts]`, so a storage key's history reads back in time order;
// - `meta`: one record per storage key, `{ format: "shelfwise-state", version: 2, epoch, boundary, profile }`.
//   `epoch` changes at every `reset()`: a page whose epoch is not the stored one missed a reset, and drops
//   the writes it had queued instead of bringing wiped events back. `boundary` is the `ts` of the last
//   event already folded into `profile` (`{ vector: number[], sessions }`);
// - version 1's `state` store (one whole record per key) is migrated on upgrade and then deleted.

const DB = "shelfwise";
const DB_VERSION = 2;
const EVENTS = "events";
const META = "meta";
const LEGACY = "state";
const BY_KEY = "byKey";
const randomId = () => Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
const newEpoch = () => `${Date.now().toString(36)}-${randomId()}`;
const range = (key) => IDBKeyRange.bound([key, -Infinity], [key, Infinity]);
/** Whether `e` is the platform saying storage is out of quota. */
export const isQuota = (e) => e?.name === "QuotaExceededError" || /quota/i.test(String(e?.message ?? ""));

/** An event's fields as stored and as `history()` shows them (no `uid`, no `key`). */
export const publicEvent = ({ type, itemId, query, ts, dwellMs }) => {
  const out = { type };
  if (itemId !== undefined) out.itemId = itemId;
  if (query !== undefined) out.query = query;
  out.ts = ts;
  if (dwellMs !== undefined) out.dwellMs = dwellMs;
  return out;
};

/** Runs `run(tx)` in one transaction over `stores`; resolves with what `run` returned once it commits. */
function transaction(db, stores, mode, run) {
  return new Promise((resolve, reject) => {
    let tx;
    try {
      tx = db.transaction(stores, mode);
    } catch (e) {
      return reject(e);
    }
    let out;
    try {
      out = run(tx);
    } catch (e) {
      try {
        tx.abort();
      } catch {
        // already finished
      }
      return reject(e);
    }
    tx.oncomplete = () => resolve(typeof out === "function" ? out() : out);
    tx.onabort = () => reject(tx.error ?? new Error("the IndexedDB transaction was aborted"));
  });
}

/** Version 1 kept one whole record per key in `state`: each becomes event records and a meta record. */
function migrateLegacy(db, tx, validate) {
  if (!db.objectStoreNames.contains(LEGACY)) return;
  const events = tx.objectStore(EVENTS);
  const meta = tx.objectStore(META);
  tx.objectStore(LEGACY).openCursor().onsuccess = (ev) => {
    const c = ev.target.result;
    if (!c) {
      db.deleteObjectStore(LEGACY);
      return;
    }
    const key = c.key;
    const v = c.value;
    if (typeof key === "string" && v && Array.isArray(v.events)) {
      let boundary = null;
      v.events.forEach((e, i) => {
        const ok = validate(e);
        if (!ok) return;
        events.add({ ...ok, key, uid: `v1:${i}` });
        if (Number.isSafeInteger(v.sessionStart) && i < v.sessionStart) boundary = Math.max(boundary ?? -Infinity, ok.ts);
      });
      meta.put({ format: "shelfwise-state", version: 2, epoch: newEpoch(), boundary, profile: v.profile ?? null }, key);
    }
    c.continue();
  };
}

function openDb(validate) {
  return new Promise((resolve, reject) => {
    if (!globalThis.indexedDB) return reject(new Error("IndexedDB is not available"));
    let open;
    try {
      open = indexedDB.open(DB, DB_VERSION);
    } catch (e) {
      return reject(e);
    }
    open.onupgradeneeded = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains(EVENTS)) db.createObjectStore(EVENTS, { autoIncrement: true }).createIndex(BY_KEY, ["key", "ts"]);
      if (!db.objectStoreNames.contains(META)) db.createObjectStore(META);
      migrateLegacy(db, open.transaction, validate);
    };
    open.onerror = () => reject(open.error);
    open.onblocked = () => reject(new Error("another page holds an older version of the shelfwise database open"));
    open.onsuccess = () => resolve(open.result);
  });
}

/**
 * One storage key's events and profile in IndexedDB, shared by every tab. `validate(raw)` returns a stored
 * event's checked form or null; `warn(code, message)` reports a problem; `onRemote(message)` receives what
 * other tabs did: `{ type: "append", events }`, `{ type: "meta", boundary, profile }`, `{ type: "reset" }`.
 */
export class SessionStore {
  #key;
  #cap;
  #validate;
  #warn;
  #onRemote;
  #db = null; // a promise of the open connection
  #channel = null;
  #epoch = null;
  #queue = []; // events tracked and not yet written
  #writing = Promise.resolve();
  #writeScheduled = false;
  #memoryOnly = false; // out of quota, or no IndexedDB: from now on this page keeps its history in memory
  #gen = 0; // bumped by reset(): a write scheduled before it takes nothing
  #failing = false; // the last write failed (warned once until a write succeeds)
  #closed = false;
  #resetting = 0; // reset() calls not yet committed
  #uid = randomId();
  #next = 0;

  constructor({ key, cap, validate, warn, onRemote }) {
    this.#key = key;
    this.#cap = cap;
    this.#validate = validate;
    this.#warn = warn;
    this.#onRemote = onRemote;
    if (globalThis.BroadcastChannel) {
      this.#channel = new BroadcastChannel(`shelfwise:${key}`);
      this.#channel.onmessage = ({ data }) => {
        if (this.#closed || !data || typeof data.type !== "string") return;
        // What another tab wrote before this page's reset() commits is wiped by it: not merged here.
        if (this.#resetting > 0 && data.type !== "reset") return;
        this.#remote(data);
      };
    }
  }

  /** Whether writes reach IndexedDB (false without it, or once it ran out of quota). */
  get persistent() {
    return !this.#memoryOnly && this.#epoch !== null;
  }

  /** A new event's id, unique across tabs (it lets a tab merge another tab's events once). */
  uid() {
    return `${this.#uid}:${this.#next++}`;
  }

  #remote(msg) {
    if (msg.type === "reset") {
      if (msg.epoch === this.#epoch) return;
      this.#epoch = msg.epoch;
      this.#queue = [];
    }
    this.#onRemote(msg);
  }

  #post(msg) {
    try {
      this.#channel?.postMessage(msg);
    } catch {
      // a closed channel: nobody to tell
    }
  }

  #connection() {
    this.#db ??= openDb(this.#validate).then((db) => {
      // Another page upgrading the database asks this one to let go; the next write reopens it.
      db.onversionchange = () => {
        db.close();
        this.#db = null;
      };
      return db;
    });
    this.#db.catch(() => (this.#db = null));
    return this.#db;
  }

  /**
   * Reads the stored state (repairing damaged records) and starts the store: `{ events, boundary,
   * profile, problems }`, events in time order. Writes queued before it wait for it.
   */
  open() {
    const opened = (async () => {
      const db = await this.#connection();
      const now = Date.now();
      const problems = [];
      const events = [];
      let meta;
      let future = 0;
      await transaction(db, [EVENTS, META], "readwrite", (tx) => {
        const metas = tx.objectStore(META);
        metas.get(this.#key).onsuccess = (ev) => {
          const m = ev.target.result;
          const ok =
            m && typeof m === "object" && m.format === "shelfwise-state" && m.version === 2 && typeof m.epoch === "string";
          if (m !== undefined && !ok) problems.push("the stored state was not shelfwise state");
          meta = ok ? m : { format: "shelfwise-state", version: 2, epoch: newEpoch(), boundary: null, profile: null };
          if (!ok) metas.put(meta, this.#key);
        };
        tx.objectStore(EVENTS).index(BY_KEY).openCursor(range(this.#key)).onsuccess = (ev) => {
          const c = ev.target.result;
          if (!c) return;
          const raw = c.value;
          const e = this.#validate(raw);
          if (!e || typeof raw.uid !== "string") {
            c.delete();
            problems.push("unreadable");
          } else if (e.ts > now + FUTURE_SKEW_MS) {
            // A clock that ran ahead would keep this session open for ever: the event is set to now.
            future++;
            c.update({ ...raw, ts: now });
            events.push({ ...e, ts: now, uid: raw.uid });
          } else {
            events.push({ ...e, uid: raw.uid });
          }
          c.continue();
        };
      });
      this.#epoch = meta.epoch;
      const unreadable = problems.filter((p) => p === "unreadable").length;
      const out = problems.filter((p) => p !== "unreadable");
      if (unreadable) out.push(`${unreadable} unreadable events were dropped`);
      if (future) this.#warn("FUTURE_TIMESTAMP", `${future} stored events were more than a minute ahead of this device's clock: they were set to now`);
      events.sort((a, b) => a.ts - b.ts);
      const boundary = typeof meta.boundary === "number" && Number.isFinite(meta.boundary) ? meta.boundary : null;
      if (meta.boundary !== null && meta.boundary !== undefined && boundary === null) out.push("the session boundary was unreadable");
      return { events, boundary, profile: meta.profile ?? null, problems: out };
    })();
    this.#writing = opened.then(
      () => {},
      () => {
        // No IndexedDB here (a private mode, say): the history stays in memory, and nothing is queued.
        this.#memoryOnly = true;
        this.#queue = [];
      },
    );
    return opened;
  }

  /** Queues events for writing (one transaction covers every event queued before it starts). */
  append(events) {
    if (this.#memoryOnly || this.#closed) return;
    this.#queue.push(...events);
    if (this.#writeScheduled) return;
    this.#writeScheduled = true;
    const gen = this.#gen;
    this.#writing = this.#writing.then(() => this.#write(gen));
  }

  async #write(gen) {
    if (gen !== this.#gen) return; // reset() came after it was scheduled; a later write takes the queue
    this.#writeScheduled = false;
    if (this.#memoryOnly || this.#queue.length === 0 || this.#epoch === null) return;
    const batch = this.#queue;
    this.#queue = [];
    let stale = null;
    try {
      const db = await this.#connection();
      await transaction(db, [EVENTS, META], "readwrite", (tx) => {
        const events = tx.objectStore(EVENTS);
        tx.objectStore(META).get(this.#key).onsuccess = (ev) => {
          const m = ev.target.result;
          if (m?.epoch !== this.#epoch) {
            // Another tab reset the store after this page read it: what was queued here is wiped too.
            stale = m?.epoch ?? newEpoch();
            if (!m) tx.objectStore(META).put({ format: "shelfwise-state", version: 2, epoch: stale, boundary: null, profile: null }, this.#key);
            return;
          }
          for (const e of batch) events.add({ ...publicEvent(e), key: this.#key, uid: e.uid });
          const index = events.index(BY_KEY);
          index.count(range(this.#key)).onsuccess = (c) => {
            let extra = c.target.result - this.#cap;
            if (extra <= 0) return;
            index.openCursor(range(this.#key)).onsuccess = (cur) => {
              const k = cur.target.result;
              if (!k || extra-- <= 0) return;
              k.delete();
              k.continue();
            };
          };
        };
      });
      this.#failing = false;
    } catch (e) {
      if (isQuota(e)) {
        this.#memoryOnly = true;
        this.#queue = [];
        this.#warn("STORAGE_FULL", `IndexedDB is out of quota, so this page keeps the history in memory from now on: ${e?.message ?? e}`);
      } else {
        // Kept for the next write; one warning until a write succeeds.
        this.#queue = [...batch, ...this.#queue];
        if (!this.#failing) this.#warn("STORAGE_FAILED", `the history could not be stored (it is kept for the next write): ${e?.message ?? e}`);
        this.#failing = true;
      }
      return;
    }
    if (stale !== null) {
      this.#remote({ type: "reset", epoch: stale });
      return;
    }
    this.#post({ type: "append", events: batch.map((e) => ({ ...publicEvent(e), uid: e.uid })) });
  }

  /** The stored profile and boundary, as another tab may have left them (`null` if this page missed a reset). */
  async readMeta() {
    const db = await this.#connection();
    const m = await transaction(db, [META], "readonly", (tx) => {
      let out;
      tx.objectStore(META).get(this.#key).onsuccess = (ev) => (out = ev.target.result);
      return () => out;
    });
    if (!m || m.epoch !== this.#epoch) return null;
    return { boundary: typeof m.boundary === "number" ? m.boundary : null, profile: m.profile ?? null };
  }

  /** Stores the profile and the boundary it covers, and tells the other tabs. False if a reset came first. */
  async writeMeta({ boundary, profile }) {
    if (this.#memoryOnly || this.#closed) return true;
    const db = await this.#connection();
    let ok = false;
    await transaction(db, [META], "readwrite", (tx) => {
      const metas = tx.objectStore(META);
      metas.get(this.#key).onsuccess = (ev) => {
        const m = ev.target.result;
        if (!m || m.epoch !== this.#epoch) return;
        ok = true;
        metas.put({ ...m, boundary, profile }, this.#key);
      };
    });
    if (ok) this.#post({ type: "meta", boundary, profile });
    return ok;
  }

  /**
   * Runs `f` holding this storage key's Web Lock, so one tab at a time folds a session into the profile
   * (without Web Locks, as in old browsers, `f` just runs).
   */
  withLock(f) {
    if (!globalThis.navigator?.locks?.request) return f();
    return navigator.locks.request(`shelfwise:${this.#key}`, f);
  }

  /**
   * Wipes this key's events and profile on the device, in every tab. Events queued before it are dropped;
   * events tracked after it are written after the wipe.
   */
  reset() {
    this.#queue = [];
    this.#gen++;
    this.#writeScheduled = false;
    this.#resetting++;
    const wipe = this.#writing.then(async () => {
      const epoch = newEpoch();
      const db = await this.#connection();
      await transaction(db, [EVENTS, META], "readwrite", (tx) => {
        tx.objectStore(EVENTS).index(BY_KEY).openCursor(range(this.#key)).onsuccess = (ev) => {
          const c = ev.target.result;
          if (!c) return;
          c.delete();
          c.continue();
        };
        // What stays says nothing about the shopper: a fresh epoch, so other tabs know their queued events
        // were wiped.
        tx.objectStore(META).put({ format: "shelfwise-state", version: 2, epoch, boundary: null, profile: null }, this.#key);
      });
      this.#epoch = epoch;
      this.#memoryOnly = false;
      this.#failing = false;
      this.#post({ type: "reset", epoch });
    });
    const done = () => this.#resetting--;
    wipe.then(done, done);
    this.#writing = wipe.catch(() => {});
    return wipe;
  }

  /** Resolves once every write queued so far has finished (or failed, with its warning). */
  flush() {
    return this.#writing;
  }

  /** Stops listening to other tabs; writes already queued still finish, then the connection closes. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel?.close();
    this.#channel = null;
    this.#writing.finally(() => this.#db?.then((db) => db.close()).catch(() => {}));
  }
}

/** How far ahead of this device's clock an event's `ts` may be before it is set to now. */
export const FUTURE_SKEW_MS = 60_000;
