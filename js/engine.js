// The engine: the wasm module's BundleRecommender plus the bundle download (SHA-256 verification with
// SubtleCrypto, the Cache API, one retry, progress). It runs wherever it is imported: on the page
// (`shelfwise`) or inside the dedicated worker (`shelfwise/worker`). The manifest is read by the wasm module
// (`bundleFiles`), and the profile's maths is the wasm module's too (`foldProfile`, `storedProfile`).
import init, { BundleRecommender, bundleFiles, foldProfile, sha256Hex as wasmSha256Hex, storedProfile } from "./shelfwise.js";
import { MAX_MANIFEST_BYTES } from "./contract.js";
import { ShelfwiseError, asShelfwiseError } from "./errors.js";

const CACHE_NAME = "shelfwise-bundles-v1";
let wasmReady = null;
let wasmMemory = null; // the module's linear memory, once started

/** Starts (once) and awaits the wasm module. `wasm` may be a URL, a Response, bytes or a Module. */
export function initWasm(wasm) {
  wasmReady ??= init(wasm === undefined ? undefined : { module_or_path: wasm }).then(
    (exports) => ((wasmMemory = exports.memory), exports),
  ).catch((e) => {
    wasmReady = null;
    throw new ShelfwiseError("WASM_INIT_FAILED", `the wasm module did not start: ${e?.message ?? e}`);
  });
  return wasmReady;
}

/**
 * What loading the bundle reads, from the manifest's bytes: `{ files: [{ file, bytes, sha256 }], modelId,
 * categories }`. The wasm module checks the manifest (a `BAD_MANIFEST` error otherwise), so it must be started.
 */
function readManifest(bytes) {
  try {
    return bundleFiles(bytes);
  } catch (e) {
    throw asShelfwiseError(e);
  }
}

async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) return null; // not a secure context: the wasm side still verifies
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** How long a download may go without receiving a byte, by default (the `downloadTimeoutMs` load option). */
export const DOWNLOAD_TIMEOUT_MS = 30_000;

/**
 * Reads a response body, reporting bytes as they arrive. Rejects as soon as the body passes `maxBytes`
 * (cancelling the rest), and when `aborted` rejects (the download's idle timer fired).
 */
async function readBody(res, onBytes, { maxBytes = Infinity, aborted, file }) {
  const tooLong = (n) =>
    new ShelfwiseError("DOWNLOAD_FAILED", `${file}: the body passed the ${maxBytes} bytes the manifest declares (at ${n} bytes, reading stopped)`, {
      file,
    });
  if (!res.body?.getReader) {
    const all = new Uint8Array(await Promise.race([res.arrayBuffer(), aborted]));
    if (all.length > maxBytes) throw tooLong(all.length);
    return all;
  }
  const reader = res.body.getReader();
  const parts = [];
  let n = 0;
  for (;;) {
    let chunk;
    try {
      chunk = await Promise.race([reader.read(), aborted]);
    } catch (e) {
      reader.cancel().catch(() => {});
      throw e;
    }
    const { done, value } = chunk;
    if (done) break;
    n += value.length;
    if (n > maxBytes) {
      reader.cancel().catch(() => {});
      throw tooLong(n);
    }
    parts.push(value);
    onBytes(n);
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Downloads `url` (named `file` in errors), retrying once: a 404 is `MISSING_FILE`; anything else, including
 * a failed `check(bytes)`, is `DOWNLOAD_FAILED` unless `check` throws a ShelfwiseError of its own. An attempt
 * that receives nothing (no headers, or no byte of the body) for `timeoutMs` is aborted, and so is one whose
 * body passes `maxBytes`.
 */
async function download(url, file, { init, onBytes = () => {}, check = () => {}, maxBytes, timeoutMs = DOWNLOAD_TIMEOUT_MS } = {}) {
  let last;
  for (let attempt = 0; attempt < 2; attempt++) {
    const controller = new AbortController();
    let timer;
    let stalled = null;
    let stop;
    // Rejects when the idle timer fires, so a read settles even if a stream ignored the abort.
    const aborted = new Promise((_, reject) => (stop = reject));
    aborted.catch(() => {});
    const idle = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = new ShelfwiseError("DOWNLOAD_FAILED", `${file}: nothing arrived for ${timeoutMs} ms (the download stalled)`, { file });
        stop(stalled);
        controller.abort(stalled);
      }, timeoutMs);
    };
    try {
      idle();
      const res = await Promise.race([fetch(url, { ...init, signal: controller.signal }), aborted]);
      if (res.status === 404 || res.status === 410) {
        throw new ShelfwiseError("MISSING_FILE", `${file}: the server has no such file (HTTP ${res.status})`, { file });
      }
      if (!res.ok) throw new ShelfwiseError("DOWNLOAD_FAILED", `${file}: HTTP ${res.status}`, { file });
      const bytes = await readBody(
        res,
        (n) => {
          idle();
          onBytes(n);
        },
        { maxBytes, aborted, file },
      );
      clearTimeout(timer);
      await check(bytes);
      return bytes;
    } catch (e) {
      last = stalled ?? (e instanceof ShelfwiseError ? e : new ShelfwiseError("DOWNLOAD_FAILED", `${file}: ${e?.message ?? e}`, { file }));
      onBytes(0);
    } finally {
      clearTimeout(timer);
    }
  }
  throw last;
}

/** One file: from the cache when it holds these exact bytes, else downloaded (retried once) and checked. */
async function getFile(entry, base, cache, progress, timeoutMs, cacheFailed) {
  const url = new URL(entry.file, base).href;
  const key = `${url}${url.includes("?") ? "&" : "?"}sha256=${entry.sha256}`;
  const matches = async (bytes) => bytes.length === entry.bytes && [null, entry.sha256].includes(await sha256Hex(bytes));
  if (cache) {
    try {
      const hit = await cache.match(key);
      if (hit) {
        const bytes = new Uint8Array(await hit.arrayBuffer());
        if (await matches(bytes)) {
          progress(bytes.length, true);
          return { bytes, key, cached: true };
        }
        await cache.delete(key);
      }
    } catch {
      // A broken cache only costs a download.
    }
  }
  const bytes = await download(url, entry.file, {
    maxBytes: entry.bytes,
    timeoutMs,
    onBytes: (n) => progress(n, false),
    check: async (b) => {
      if (b.length !== entry.bytes) {
        throw new ShelfwiseError(
          "DOWNLOAD_FAILED",
          `${entry.file}: got ${b.length} bytes, the manifest says ${entry.bytes} (a partial or changed file)`,
          { file: entry.file },
        );
      }
      const sha = await sha256Hex(b);
      if (sha !== null && sha !== entry.sha256) {
        throw new ShelfwiseError("INTEGRITY", `${entry.file}: SHA-256 ${sha} is not the manifest's ${entry.sha256}`, {
          file: entry.file,
        });
      }
    },
  });
  if (cache) {
    try {
      await cache.put(key, new Response(bytes, { headers: { "content-type": "application/octet-stream" } }));
    } catch (e) {
      // Quota or a private mode: the bundle still loads, and the next visit downloads it again.
      cacheFailed(entry.file, e);
    }
  }
  return { bytes, key, cached: false };
}

async function openCache(enabled) {
  if (!enabled || !globalThis.caches) return null;
  try {
    return await caches.open(CACHE_NAME);
  } catch {
    return null;
  }
}

/**
 * Fetches a bundle: `source` is a manifest URL, or `{ manifest, files }` with the manifest's bytes (or
 * text) and a Uint8Array per file name. Returns the manifest's bytes, what it lists (`plan`) and a map of
 * file bytes. The wasm module must be started (`initWasm`): it reads the manifest.
 */
export async function fetchBundle(source, { cache = true, onProgress, onWarning, downloadTimeoutMs, manifestSha256 } = {}) {
  const emit = (e) => {
    try {
      onProgress?.(e);
    } catch {
      // A throwing progress handler must not break loading.
    }
  };
  let warnedCache = false;
  const cacheFailed = (file, e) => {
    if (warnedCache) return;
    warnedCache = true;
    warn("CACHE_FAILED", `${file} could not be kept in the Cache API, so the next visit downloads it again: ${e?.message ?? e}`);
  };
  const warn = (code, message) => {
    try {
      onWarning?.({ code, message });
    } catch {
      // A throwing handler must not break loading.
    }
  };
  // The manifest names every other file and its hash: pinning it pins the whole bundle. The wasm module
  // hashes it: SubtleCrypto is missing outside secure contexts, and a pin must be checked everywhere.
  const pinned = (bytes) => {
    if (!manifestSha256) return;
    const found = wasmSha256Hex(bytes);
    if (found !== manifestSha256.toLowerCase()) {
      throw new ShelfwiseError("INTEGRITY", `manifest.json: SHA-256 ${found} is not the pinned ${manifestSha256.toLowerCase()} (manifestSha256)`, {
        file: "manifest.json",
      });
    }
  };
  if (typeof source === "string" || source instanceof URL) {
    let base;
    try {
      base = new URL(String(source), globalThis.location?.href).href;
    } catch {
      throw new ShelfwiseError("INVALID_ARGUMENT", `not a URL: ${String(source).slice(0, 200)}`, { field: "source" });
    }
    const manifestBytes = await download(base, "manifest.json", {
      init: { cache: "no-cache" },
      timeoutMs: downloadTimeoutMs,
      maxBytes: MAX_MANIFEST_BYTES,
      // A manifest that is not the pinned one fails with INTEGRITY (after the one retry: a cache may lag).
      check: pinned,
    });
    const plan = readManifest(manifestBytes);
    const entries = plan.files;
    const total = entries.reduce((s, f) => s + f.bytes, 0);
    const store = await openCache(cache);
    const files = {};
    const keys = new Set();
    let done = 0;
    let fromCache = 0;
    for (const entry of entries) {
      emit({ type: "download", file: entry.file, loaded: done, total });
      const got = await getFile(
        entry,
        base,
        store,
        (n) => emit({ type: "progress", file: entry.file, loaded: done + n, total }),
        downloadTimeoutMs,
        cacheFailed,
      );
      files[entry.file] = got.bytes;
      keys.add(got.key);
      done += entry.bytes;
      if (got.cached) fromCache += entry.bytes;
    }
    if (store) {
      // A changed manifest leaves files no manifest of this bundle lists any more: drop them.
      const folder = new URL(".", base).href;
      try {
        for (const req of await store.keys()) {
          if (req.url.startsWith(folder) && !keys.has(req.url)) await store.delete(req);
        }
      } catch {
        // Only housekeeping.
      }
    }
    return { manifestBytes, plan, files, total, fromCache };
  }
  if (source !== null && typeof source === "object" && "manifest" in source) {
    const m = source.manifest;
    const manifestBytes =
      typeof m === "string" ? new TextEncoder().encode(m) : m instanceof Uint8Array ? m : m instanceof ArrayBuffer ? new Uint8Array(m) : null;
    if (!manifestBytes) {
      throw new ShelfwiseError("INVALID_ARGUMENT", "`manifest` must be a string, a Uint8Array or an ArrayBuffer", { field: "source" });
    }
    pinned(manifestBytes);
    const plan = readManifest(manifestBytes);
    const files = {};
    let total = 0;
    for (const entry of plan.files) {
      const f = source.files?.[entry.file];
      const bytes = f instanceof Uint8Array ? f : f instanceof ArrayBuffer ? new Uint8Array(f) : null;
      if (!bytes) {
        throw new ShelfwiseError("MISSING_FILE", `\`files\` has no bytes for ${entry.file}`, { file: entry.file });
      }
      files[entry.file] = bytes;
      total += bytes.length;
    }
    emit({ type: "progress", file: null, loaded: total, total });
    return { manifestBytes, plan, files, total, fromCache: 0 };
  }
  throw new ShelfwiseError("INVALID_ARGUMENT", "the bundle must be a manifest URL or { manifest, files }", { field: "source" });
}

/** The bundle's model and shards in this thread. */
export class LocalEngine {
  #rec;
  #bundle;
  #device;
  #disposed = false;

  /** Downloads (or takes) the bundle and starts the model on `device`. */
  static async open(source, { device = "auto", cache = true, onProgress, onWarning, wasm, downloadTimeoutMs, manifestSha256 } = {}) {
    if (!["auto", "webgpu", "cpu"].includes(device)) {
      throw new ShelfwiseError("INVALID_ARGUMENT", `device must be "auto", "webgpu" or "cpu", not ${JSON.stringify(device)}`, {
        field: "device",
      });
    }
    await initWasm(wasm);
    const bundle = await fetchBundle(source, { cache, onProgress, onWarning, downloadTimeoutMs, manifestSha256 });
    const engine = new LocalEngine();
    engine.#bundle = bundle;
    engine.#device = device;
    engine.#rec = await engine.#start(device);
    return engine;
  }

  async #start(device) {
    const b = this.#bundle;
    try {
      // The wasm side checks every file against the manifest again before it parses it.
      return await BundleRecommender.load({ manifest: b.manifestBytes, files: b.files }, { device });
    } catch (e) {
      throw asShelfwiseError(e);
    }
  }

  get info() {
    const plan = this.#bundle.plan;
    return {
      backend: this.#rec.backend,
      items: this.#rec.size,
      dim: this.#rec.dim,
      modelId: plan.modelId,
      categories: plan.categories,
      takesSearches: this.#rec.takesSearches,
      bytes: this.#bundle.total,
      cachedBytes: this.#bundle.fromCache,
    };
  }

  has(id) {
    return typeof id === "string" && this.#rec.has(id);
  }

  /** Destroys the model's GPU device, as a lost GPU would (tests of the fallback). */
  simulateDeviceLoss() {
    this.#rec.simulateDeviceLoss();
  }

  /** Restarts on the CPU (after a lost GPU device) from the bytes already here. */
  async fallbackToCpu() {
    if (this.#disposed) throw new ShelfwiseError("DISPOSED", "this recommender was disposed");
    const old = this.#rec;
    const rec = await this.#start("cpu");
    if (this.#disposed) {
      // dispose() ran while the CPU engine started: it must not outlive this engine.
      rec.dispose();
      throw new ShelfwiseError("DISPOSED", "the recommender was disposed during the fallback to the CPU");
    }
    this.#rec = rec;
    this.#device = "cpu";
    old.dispose();
  }

  async recommend(events, options, profile) {
    return this.#call(() => this.#rec.recommend(events, options, profile));
  }

  /** The session's interest vector (a Float32Array), or undefined when no event could be used. */
  async interest(events) {
    return this.#call(() => this.#rec.interest(events));
  }

  /** A stored profile's values as a Float32Array, or undefined when they do not fit this bundle's model. */
  async storedProfile(values) {
    return this.#call(() => storedProfile(values, this.#rec.dim));
  }

  /** The profile after a session with interest vector `session` ended (`old` may be undefined). */
  async foldProfile(old, session, decay) {
    return this.#call(() => foldProfile(old, session, decay));
  }

  /** How much memory the engine holds: `{ wasmBytes }`, the wasm module's linear memory (it never shrinks). */
  async memoryUsage() {
    return { wasmBytes: wasmMemory?.buffer.byteLength ?? 0 };
  }

  /** Forgets the encoded searches the model keeps (reset()). */
  async forgetQueries() {
    this.#rec?.forgetQueries();
  }

  async similar(itemId, options) {
    return this.#call(() => this.#rec.similar(itemId, options));
  }

  async search(query, options) {
    return this.#call(() => this.#rec.search(query, options));
  }

  async #call(f) {
    try {
      return await f();
    } catch (e) {
      throw asShelfwiseError(e);
    }
  }

  dispose() {
    this.#disposed = true;
    this.#rec?.dispose();
    this.#bundle = null;
  }
}
