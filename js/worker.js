// shelfwise/worker: the same API as `shelfwise`, with the model, the shards and the downloads in a dedicated
// Web Worker, so the page's thread never runs them. The session store stays on the page (it is small, and
// IndexedDB and the hooks live there).
import { defineRecommender } from "./core.js";
import { ShelfwiseError, errorFromWire } from "./errors.js";

export { ShelfwiseError } from "./errors.js";
export { EVENT_TYPES } from "./contract.js";
export { MAX_QUERY_CHARS } from "./core.js";

class WorkerEngine {
  #worker;
  #pending = new Map(); // id -> { resolve, reject, method, timer }
  #next = 1;
  #info = null;
  #onProgress = null;
  #onWarning = null;
  #timeoutMs = 60_000;

  static async open(source, options) {
    const e = new WorkerEngine();
    e.#onProgress = options.onProgress;
    e.#onWarning = options.onWarning;
    e.#timeoutMs = options.workerTimeoutMs ?? e.#timeoutMs;
    e.#worker = new Worker(new URL("./worker-host.js", import.meta.url), { type: "module", name: "shelfwise" });
    e.#worker.onmessage = ({ data }) => e.#receive(data);
    e.#worker.onerror = (ev) => {
      ev.preventDefault?.();
      e.#failAll(new ShelfwiseError("WORKER_FAILED", `the shelfwise worker failed: ${ev.message ?? "it could not start"}`));
    };
    let src = source;
    const transfer = [];
    if (typeof source === "string" || source instanceof URL) {
      try {
        src = new URL(String(source), globalThis.location?.href).href;
      } catch {
        throw new ShelfwiseError("INVALID_ARGUMENT", "the bundle URL is not a URL", { field: "source" });
      }
    } else if (source !== null && typeof source === "object" && source.files && typeof source.files === "object") {
      // The bundle's bytes move to the worker (the caller's arrays are detached), rather than being copied.
      for (const f of Object.values(source.files)) {
        const buf = f instanceof ArrayBuffer ? f : f?.buffer;
        if (buf instanceof ArrayBuffer && !transfer.includes(buf)) transfer.push(buf);
      }
    }
    const { onProgress, onWarning, ...rest } = options;
    try {
      e.#info = await e.#call("open", [src, rest], transfer);
    } catch (err) {
      e.#worker?.terminate();
      throw err;
    }
    return e;
  }

  #receive(data) {
    if (data.progress) {
      // Loading is making progress: the open call's clock starts again.
      for (const p of this.#pending.values()) if (p.method === "open") this.#arm(p);
      try {
        this.#onProgress?.(data.progress);
      } catch {
        // a progress handler cannot break loading
      }
      return;
    }
    if (data.warning) {
      this.#onWarning?.(data.warning);
      return;
    }
    const p = this.#pending.get(data.id);
    if (!p) return;
    this.#pending.delete(data.id);
    clearTimeout(p.timer);
    if (data.ok) p.resolve(data.value);
    else p.reject(errorFromWire(data.error));
  }

  #failAll(err) {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.#pending.clear();
  }

  /**
   * (Re)starts a call's clock. A worker that does not answer for `workerTimeoutMs` (a hung or crashed
   * module) is stopped: every call in flight rejects with WORKER_TIMEOUT, and later calls with WORKER_FAILED.
   */
  #arm(p) {
    clearTimeout(p.timer);
    p.timer = setTimeout(() => {
      const err = new ShelfwiseError("WORKER_TIMEOUT", `the shelfwise worker did not answer \`${p.method}\` within ${this.#timeoutMs} ms (workerTimeoutMs): it was stopped`);
      this.#worker?.terminate();
      this.#worker = null;
      this.#dead = new ShelfwiseError("WORKER_FAILED", `the shelfwise worker was stopped after it did not answer \`${p.method}\` within ${this.#timeoutMs} ms`);
      this.#failAll(err);
    }, this.#timeoutMs);
  }

  #dead = null;

  #call(method, args, transfer = []) {
    if (this.#dead) return Promise.reject(this.#dead);
    if (!this.#worker) return Promise.reject(new ShelfwiseError("DISPOSED", "this recommender was disposed"));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const p = { resolve, reject, method, timer: null };
      this.#pending.set(id, p);
      this.#arm(p);
      this.#worker.postMessage({ id, method, args }, transfer);
    });
  }

  get info() {
    return this.#info;
  }

  recommend(events, options, profile) {
    if (!profile) return this.#call("recommend", [events, options, undefined]);
    // A copy of the profile travels by transfer; the page keeps its own.
    const vector = Float32Array.from(profile.vector);
    return this.#call("recommend", [events, options, { vector, weight: profile.weight }], [vector.buffer]);
  }

  interest(events) {
    return this.#call("interest", [events]);
  }

  storedProfile(values) {
    return this.#call("storedProfile", [values]);
  }

  foldProfile(old, session, decay) {
    return this.#call("foldProfile", [old, session, decay]);
  }

  memoryUsage() {
    return this.#call("memoryUsage", []);
  }

  forgetQueries() {
    return this.#call("forgetQueries", []);
  }

  similar(itemId, options) {
    return this.#call("similar", [itemId, options]);
  }

  search(query, options) {
    return this.#call("search", [query, options]);
  }

  simulateDeviceLoss() {
    return this.#call("simulateDeviceLoss", []);
  }

  /** Testing only: the worker spins for ever, as a hung module would (the call timeout must end it). */
  simulateHang() {
    return this.#call("simulateHang", []);
  }

  async fallbackToCpu() {
    this.#info = await this.#call("fallbackToCpu", []);
  }

  dispose() {
    this.#dead = null;
    if (!this.#worker) return;
    this.#worker.postMessage({ id: 0, method: "dispose", args: [] });
    this.#worker.terminate();
    this.#worker = null;
    this.#failAll(new ShelfwiseError("DISPOSED", "this recommender was disposed"));
  }
}

const open = (source, options) => WorkerEngine.open(source, options);

/** The storefront API with the model in a worker. */
export const Recommender = defineRecommender(open);
