// The text-model benchmark: all-MiniLM-L6-v2 in this page, measured in this run.
// - load: Embedder.load from the model folder's URL to ready (fetch, parse and check, weight upload and
//   pipeline creation, one warm-up pass), with the library's own breakdown;
// - the first embedding after load, then the steady state (p50 / p95) for one text of 16, 32 and 128 tokens;
// - a baseline in the same page: plain JS doing only the network's 36 dense layers (Float32Array, i-k-j
//   loops) at the same sizes, so a fraction of the work shelfwise does;
// - WebGPU when the browser has an adapter (SwiftShader in headless CI: a correctness check, never a speed
//   figure), with its vectors compared against the CPU path's.
import init, { Embedder } from "../pkg/shelfwise.js";

const params = new URLSearchParams(location.search);
const model = new URL(params.get("model") ?? "../cache/models/all-MiniLM-L6-v2/", location.href).href;
const RUNS = Number(params.get("runs") ?? 30);
const GPU = params.get("gpu") !== "0";
const log = (s) => { document.getElementById("log").textContent += s + "\n"; console.log(s); };

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function timeIt(runs, fn) {
  const t = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn(i);
    t.push(performance.now() - t0);
  }
  return { runs, p50: quantile(t, 0.5), p95: quantile(t, 0.95), min: Math.min(...t) };
}

// A text of exactly `tokens` tokens with [CLS] and [SEP] for MiniLM's tokenizer: one word piece per word.
const text = (tokens) => Array.from({ length: tokens - 2 }, (_, i) => ["red", "shoe", "bag", "lamp"][i % 4]).join(" ");

// Plain JS: only the dense layers of a 6-layer, 384-wide BERT with 1536 intermediate units.
function jsDenseOnly(len, weights) {
  const { w384, w1536a, w1536b, x, h, y } = weights;
  const mm = (a, n, k, w, m, out) => {
    out.fill(0, 0, n * m);
    for (let i = 0; i < n; i++) for (let p = 0; p < k; p++) {
      const av = a[i * k + p], o = i * m, wo = p * m;
      for (let j = 0; j < m; j++) out[o + j] += av * w[wo + j];
    }
  };
  for (let l = 0; l < 6; l++) {
    for (let q = 0; q < 4; q++) mm(x, len, 384, w384, 384, y);
    mm(x, len, 384, w1536a, 1536, h);
    mm(h, len, 1536, w1536b, 384, y);
  }
  return y[0];
}

async function measure(device, lengths, runs) {
  let ready = null;
  const t0 = performance.now();
  const e = await Embedder.load(model, { device, onProgress: (ev) => { if (ev.type === "ready") ready = ev; } });
  const loadMs = performance.now() - t0;
  const t1 = performance.now();
  await e.embed([text(16)]);
  const firstMs = performance.now() - t1;
  const rows = [];
  for (const len of lengths) {
    const input = [text(len)];
    await e.embed(input); // this length's first pass allocates its buffers
    rows.push({ tokens: len, ...(await timeIt(runs, () => e.embed(input))) });
  }
  return { e, device: e.backend, adapter: e.adapter, loadMs, breakdown: ready, firstMs, rows };
}

async function main() {
  await init();
  log(`model: ${model}, ${RUNS} runs per length`);
  const lengths = [16, 32, 128];
  const cpu = await measure("cpu", lengths, RUNS);
  const rand = (n) => Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const weights = { w384: rand(384 * 384), w1536a: rand(384 * 1536), w1536b: rand(1536 * 384), x: rand(128 * 384), h: new Float32Array(128 * 1536), y: new Float32Array(128 * 384) };
  const js = [];
  for (const len of lengths) js.push({ tokens: len, ...(await timeIt(Math.max(5, RUNS / 3), () => jsDenseOnly(len, weights))) });

  log("");
  log(`CPU path (wasm SIMD): load ${cpu.loadMs.toFixed(0)} ms (parse ${cpu.breakdown.parseMs.toFixed(0)}, setup ${cpu.breakdown.setupMs.toFixed(0)}, warm-up ${cpu.breakdown.warmupMs.toFixed(0)}), first embedding ${cpu.firstMs.toFixed(1)} ms`);
  log("tokens   shelfwise CPU p50   p95      plain-JS dense layers only p50   JS / shelfwise");
  cpu.rows.forEach((r, i) => log(`${String(r.tokens).padEnd(8)} ${r.p50.toFixed(2).padStart(17)} ${r.p95.toFixed(2).padStart(8)} ${js[i].p50.toFixed(2).padStart(32)} ${(js[i].p50 / r.p50).toFixed(2).padStart(16)}`));

  let gpu = null;
  if (GPU) {
    try {
      gpu = await measure("webgpu", [16], Math.min(RUNS, 3));
      const probe = ["wireless noise cancelling headphones", "无线降噪耳机"];
      const a = await cpu.e.embed(probe), b = await gpu.e.embed(probe);
      const worst = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
      if (worst > 1e-4) throw new Error(`WebGPU and CPU vectors differ by ${worst}`);
      log("");
      log(`WebGPU (${gpu.adapter}): load ${gpu.loadMs.toFixed(0)} ms, first embedding ${gpu.firstMs.toFixed(0)} ms, 16 tokens p50 ${gpu.rows[0].p50.toFixed(0)} ms; max |GPU - CPU| = ${worst.toExponential(2)}`);
      if (/software|swiftshader/i.test(gpu.adapter ?? "")) log("(a software adapter: a correctness check, NOT a speed figure)");
      gpu.e.dispose();
    } catch (e) {
      if (e.code !== "GPU_UNAVAILABLE") throw e;
      log("no WebGPU adapter in this browser");
    }
  }
  const strip = (m) => m && { device: m.device, adapter: m.adapter, loadMs: m.loadMs, breakdown: m.breakdown, firstMs: m.firstMs, rows: m.rows };
  window.benchResult = { runs: RUNS, crossOriginIsolated, cpu: strip(cpu), jsDenseOnly: js, gpu: strip(gpu) };
}

main().catch((e) => {
  log(`FAILED: ${e.code ?? ""} ${e.message}`);
  window.benchResult = { error: String(e.message) };
});
