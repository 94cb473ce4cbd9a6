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
  #pending = new Map();
  #next = 1;
  #info = null;
  #onProgress = null;

  static async open(source, options) {
    const e = new WorkerEngine();
    e.#onProgress = options.onProgress;
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
    const { onProgress, ...rest } = options;
    try {
      e.#info = await e.#call("open", [src, rest], transfer);
    } catch (err) {
      e.#worker.terminate();
      throw err;
    }
    return e;
  }

  #receive(data) {
    if (data.progress) {
      try {
        this.#onProgress?.(data.progress);
      } catch {
        // a progress handler cannot break loading
      }
      return;
    }
    const p = this.#pending.get(data.id);
    if (!p) return;
    this.#pending.delete(data.id);
    if (data.ok) p.resolve(data.value);
    else p.reject(errorFromWire(data.error));
  }

  #failAll(err) {
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  #call(method, args, transfer = []) {
    if (!this.#worker) return Promise.reject(new ShelfwiseError("DISPOSED", "this recommender was disposed"));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
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

  similar(itemId, options) {
    return this.#call("similar", [itemId, options]);
  }

  search(query, options) {
    return this.#call("search", [query, options]);
  }

  simulateDeviceLoss() {
    return this.#call("simulateDeviceLoss", []);
  }

  async fallbackToCpu() {
    this.#info = await this.#call("fallbackToCpu", []);
  }

  dispose() {
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
