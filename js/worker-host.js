// The dedicated worker behind `shelfwise/worker`: one engine, driven by messages
// { id, method, args } and answered with { id, ok, value } or { id, ok: false, error }.
import { LocalEngine } from "./engine.js";
import { errorToWire } from "./errors.js";

let engine = null;

const methods = {
  async open(source, options) {
    engine?.dispose();
    engine = null;
    engine = await LocalEngine.open(source, {
      ...options,
      onProgress: (event) => postMessage({ progress: event }),
      onWarning: (warning) => postMessage({ warning }),
    });
    return engine.info;
  },
  info: () => engine.info,
  recommend: (events, options, profile) => engine.recommend(events, options, profile),
  interest: (events) => engine.interest(events),
  storedProfile: (values) => engine.storedProfile(values),
  foldProfile: (old, session, decay) => engine.foldProfile(old, session, decay),
  forgetQueries: () => engine.forgetQueries(),
  memoryUsage: () => engine.memoryUsage(),
  similar: (itemId, options) => engine.similar(itemId, options),
  search: (query, options) => engine.search(query, options),
  simulateDeviceLoss: () => engine.simulateDeviceLoss(),
  // Testing only: a module that never answers (workerTimeoutMs must stop it).
  simulateHang() {
    for (;;);
  },
  async fallbackToCpu() {
    await engine.fallbackToCpu();
    return engine.info;
  },
  dispose() {
    engine?.dispose();
    engine = null;
  },
};

onmessage = async ({ data }) => {
  const { id, method, args } = data;
  try {
    if (method !== "open" && method !== "dispose" && !engine) {
      throw Object.assign(new Error("the worker has no bundle loaded"), { code: "NOT_LOADED" });
    }
    const value = await methods[method](...args);
    // Vectors (an interest vector, a profile) move to the page rather than being copied.
    const vector = value instanceof Float32Array ? value : value?.interest;
    const transfer = vector instanceof Float32Array ? [vector.buffer] : [];
    postMessage({ id, ok: true, value }, transfer);
  } catch (e) {
    postMessage({ id, ok: false, error: errorToWire(e) });
  }
};
