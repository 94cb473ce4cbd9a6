// The demo's worker: owns the ItemIndex so the page never blocks. Messages in: {id, type, ...};
// replies: {id, ok, value} or {id, ok: false, error: {code, message}}; progress: {type: "progress", event}.
import init, { ItemIndex } from "../pkg/shelfwise.js";

let index = null;
let details = new Map(); // id -> catalogue line (title, category, price, in_stock)

const ready = init();

async function loadCatalogText(url) {
  const res = await fetch(url);
  if (!res.ok) return new Map();
  const map = new Map();
  for (const line of (await res.text()).split("\n")) {
    if (!line) continue;
    const item = JSON.parse(line);
    map.set(item.id, item);
  }
  return map;
}

const handlers = {
  async load({ url, device }) {
    await ready;
    index?.dispose();
    const t0 = performance.now();
    index = await ItemIndex.load(url, {
      device,
      onProgress: (event) => postMessage({ type: "progress", event }),
    });
    const loadMs = performance.now() - t0;
    details = await loadCatalogText(new URL("catalog.jsonl", new URL(url, location.href)).href);
    return {
      backend: index.backend,
      adapter: index.adapter ?? null,
      size: index.size,
      dim: index.dim,
      dtype: index.dtype,
      modelId: index.modelId,
      categories: index.categories,
      loadMs,
    };
  },
  async randomItem() {
    const row = Math.floor(Math.random() * index.size);
    return index.itemId(row);
  },
  async search({ itemIds, weights, options }) {
    const parts = [];
    for (const id of itemIds) {
      const row = index.rowOf(id);
      if (row === undefined) throw Object.assign(new Error(`unknown item ${id}`), { code: "UNKNOWN_ITEM" });
      parts.push(index.itemVector(row));
    }
    const query = new Float32Array(parts.length * index.dim);
    parts.forEach((p, i) => query.set(p, i * index.dim));
    const result = await index.search(query, { ...options, weights });
    return {
      backend: result.backend,
      timings: result.timings,
      items: result.ids.map((id, i) => ({ id, score: result.scores[i], rank: result.ranks[i], ...(details.get(id) ?? {}) })),
      query: itemIds.map((id) => ({ id, ...(details.get(id) ?? {}) })),
    };
  },
};

onmessage = async ({ data }) => {
  const { id, type, ...args } = data;
  try {
    postMessage({ id, ok: true, value: await handlers[type](args) });
  } catch (e) {
    postMessage({ id, ok: false, error: { code: e.code ?? "ERROR", message: String(e.message ?? e) } });
  }
};
