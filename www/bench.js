// The browser benchmark: one int8 catalogue, k = 10, an exclude list of 50 ids and in-stock only.
// Everything is measured in this page, in this run:
// - shelfwise on the CPU path (wasm SIMD);
// - a plain-JS Float32Array scan computing the same top-k (rows dequantised once, before timing);
// - a memcpy floor: copying the shard's int8 bytes once (TypedArray.prototype.set);
// - shelfwise on WebGPU when an adapter exists (SwiftShader here: a correctness check, not a speed figure).
import init, { ItemIndex } from "../pkg/shelfwise.js";

const params = new URLSearchParams(location.search);
const bundle = new URL(params.get("bundle") ?? "bundle/manifest.json", location.href).href;
const RUNS = Number(params.get("runs") ?? 200);
const log = (s) => { document.getElementById("log").textContent += s + "\n"; console.log(s); };

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function timeIt(label, runs, fn) {
  for (let i = 0; i < Math.min(10, runs); i++) await fn(i); // warm-up
  const t = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn(i);
    t.push(performance.now() - t0);
  }
  return { label, runs, p50: quantile(t, 0.5), p95: quantile(t, 0.95), min: Math.min(...t) };
}

// Reads a safetensors file: 8-byte little-endian header length, JSON header, then data.
function readSafetensors(buf) {
  const n = Number(new DataView(buf).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
  const base = 8 + n;
  const get = (name, Type) => {
    const t = header[name];
    if (!t) return null;
    const [a, b] = t.data_offsets;
    return new Type(buf.slice(base + a, base + b));
  };
  return { header, get };
}

function jsTopK(rows, dim, q, inStock, excluded, k) {
  const n = inStock.length;
  const bestS = new Float32Array(k).fill(-Infinity);
  const bestR = new Int32Array(k).fill(-1);
  for (let r = 0; r < n; r++) {
    let s = 0;
    const o = r * dim;
    for (let d = 0; d < dim; d++) s += rows[o + d] * q[d];
    if (s <= bestS[k - 1] || !inStock[r] || excluded.has(r)) continue;
    let i = k - 1;
    while (i > 0 && bestS[i - 1] < s) { bestS[i] = bestS[i - 1]; bestR[i] = bestR[i - 1]; i--; }
    bestS[i] = s; bestR[i] = r;
  }
  return bestR;
}

async function main() {
  await init();
  const manifest = await (await fetch(bundle)).json();
  const shardUrl = new URL(manifest.shards[0].file, bundle).href;
  const raw = await (await fetch(shardUrl)).arrayBuffer();
  const st = readSafetensors(raw);
  const q8 = st.get("embeddings", Int8Array);
  const scales = st.get("scales", Float32Array);
  const inStock = st.get("in_stock", Uint8Array);
  const n = manifest.item_count, dim = manifest.dim;
  log(`catalogue: ${n} x ${dim} ${manifest.dtype} (${(q8.byteLength / 1e6).toFixed(1)} MB of rows), k = 10, 50 excluded ids, in stock only, ${RUNS} runs`);

  const cpu = await ItemIndex.load(bundle, { device: "cpu" });
  const queries = [];
  for (let i = 0; i < 16; i++) queries.push(cpu.itemVector((i * 7919) % n));
  const exclude = [];
  for (let i = 0; i < 50; i++) exclude.push(cpu.itemId((i * 104729 + 13) % n));
  const excludedRows = new Set(exclude.map((id) => cpu.rowOf(id)));
  const options = { k: 10, exclude, inStockOnly: true };

  const rows = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) for (let d = 0; d < dim; d++) rows[r * dim + d] = q8[r * dim + d] * scales[r];

  // The two agree on the answer before anything is timed.
  for (const q of queries.slice(0, 4)) {
    const a = (await cpu.search(q, options)).ids.join();
    const b = Array.from(jsTopK(rows, dim, q, inStock, excludedRows, 10), (r) => cpu.itemId(r)).join();
    const overlap = a.split(",").filter((id) => b.split(",").includes(id)).length;
    if (overlap < 8) throw new Error(`plain JS and shelfwise disagree: ${a} vs ${b}`);
  }

  const results = [];
  results.push(await timeIt("shelfwise CPU (wasm SIMD)", RUNS, (i) => cpu.search(queries[i % 16], options)));
  results.push(await timeIt("plain JS Float32Array scan", Math.max(10, RUNS / 10), (i) => jsTopK(rows, dim, queries[i % 16], inStock, excludedRows, 10)));
  const copy = new Int8Array(q8.length);
  results.push(await timeIt("memcpy floor (shard rows, once)", RUNS, () => copy.set(q8)));

  let gpuNote = "no WebGPU adapter in this browser";
  try {
    const gpu = await ItemIndex.load(bundle, { device: "webgpu" });
    gpuNote = `adapter: ${gpu.adapter}`;
    const r = await timeIt("shelfwise WebGPU (SwiftShader: NOT a speed figure)", Math.max(10, RUNS / 10), (i) => gpu.search(queries[i % 16], options));
    r.correctnessOnly = true;
    results.push(r);
    const a = (await cpu.search(queries[0], options)).ids.join();
    const b = (await gpu.search(queries[0], options)).ids.join();
    if (a !== b) throw new Error(`GPU and CPU disagree: ${a} vs ${b}`);
    gpu.dispose();
  } catch (e) {
    if (e.code !== "GPU_UNAVAILABLE") throw e;
  }

  const base = results[0].p50;
  const table = results.map((r) => ({ ...r, ratio: r.p50 / base }));
  log("");
  log("case                                                 p50 ms    p95 ms   x shelfwise CPU p50");
  for (const r of table) log(`${r.label.padEnd(52)} ${r.p50.toFixed(3).padStart(8)} ${r.p95.toFixed(3).padStart(9)} ${r.ratio.toFixed(2).padStart(9)}`);
  const js = table[1], mem = table[2];
  log("");
  log(`shelfwise CPU is ${(js.p50 / base).toFixed(1)}x faster than plain JS, and ${(base / mem.p50).toFixed(2)}x the memcpy floor.`);
  log(gpuNote);
  window.benchResult = { n, dim, runs: RUNS, crossOriginIsolated, results: table, gpu: gpuNote };
}

main().catch((e) => {
  log(`FAILED: ${e.code ?? ""} ${e.message}`);
  window.benchResult = { error: String(e.message) };
});
