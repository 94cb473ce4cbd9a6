// The demo page: all ranking happens in worker.js; this file only renders.
const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL("./engine-worker.js", import.meta.url), { type: "module" });
const pending = new Map();
let nextId = 1;
let info = null;
let busy = false;
let again = false;

function call(type, args = {}) {
  const id = nextId++;
  worker.postMessage({ id, type, ...args });
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

worker.onmessage = ({ data }) => {
  if (data.type === "progress") {
    const e = data.event;
    if (e.total) $("progress").firstElementChild.style.width = `${(100 * e.loaded) / e.total}%`;
    return;
  }
  const p = pending.get(data.id);
  pending.delete(data.id);
  if (data.ok) p.resolve(data.value);
  else p.reject(Object.assign(new Error(data.error.message), { code: data.error.code }));
};

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const HUES = [12, 38, 160, 200, 260, 300, 90, 340, 180, 220, 60, 280];
function hue(category) {
  let h = 0;
  for (const c of category ?? "") h = (h * 31 + c.charCodeAt(0)) % 997;
  return HUES[h % HUES.length];
}

function options() {
  const o = { k: Number($("k").value) || 10, inStockOnly: $("instock").checked };
  const cat = $("category").value;
  if (cat !== "") o.categories = [Number(cat)];
  const lo = $("pmin").value, hi = $("pmax").value;
  if (lo !== "" || hi !== "") o.priceRange = [lo === "" ? 0 : Number(lo), hi === "" ? 1e9 : Number(hi)];
  const pop = Number($("pop").value);
  if (pop > 0) o.popularityWeight = pop;
  const mmr = Number($("mmr").value);
  if (mmr < 1) o.mmrLambda = mmr;
  const cap = Number($("cap").value);
  if (cap > 0) o.perCategoryCap = cap;
  return o;
}

function render(out) {
  $("backend").textContent = `${out.backend === "webgpu" ? "WebGPU" : "CPU (wasm SIMD)"}`;
  $("timing").textContent = `recommend ${out.timings.totalMs.toFixed(2)} ms`;
  $("queryCard").innerHTML = out.query
    .map((q) => `<span class="chip">Query: <b>${esc(q.title ?? q.id)}</b> · ${esc(q.category)} · <code>${esc(q.id)}</code></span>`)
    .join("");
  $("results").innerHTML = out.items
    .map((it) => `
      <li class="card">
        <div class="thumb" style="background: hsl(${hue(it.category)} 55% 45%)">${esc((it.title ?? it.id).slice(0, 1))}</div>
        <div class="title">${esc(it.title ?? it.id)}</div>
        <div class="meta"><span>${esc(it.category)}</span><span class="price">${it.price != null ? "$" + it.price.toFixed(2) : ""}</span></div>
        ${it.in_stock === false ? '<div class="oos">out of stock</div>' : ""}
        <div class="score">#${it.rank} · score ${it.score.toFixed(4)} · ${esc(it.id)}</div>
      </li>`)
    .join("");
}

async function run() {
  if (!info) return;
  if (busy) { again = true; return; }
  busy = true;
  try {
    const ids = [$("item").value.trim()];
    const second = $("item2").value.trim();
    let weights;
    if (second) { ids.push(second); const w = Number($("blend").value); weights = [1 - w, w]; }
    const o = options();
    if ($("excludeQuery").checked) o.exclude = ids;
    const out = await call("search", { itemIds: ids, weights, options: o });
    $("error").hidden = true;
    render(out);
    document.body.dataset.ready = "true";
  } catch (e) {
    $("error").hidden = false;
    $("error").textContent = `${e.code}: ${e.message}`;
  } finally {
    busy = false;
    if (again) { again = false; run(); }
  }
}

async function load() {
  info = null;
  $("backend").textContent = "loading…";
  try {
    const bundle = new URLSearchParams(location.search).get("bundle") ?? "bundle/manifest.json";
    info = await call("load", { url: new URL(bundle, location.href).href, device: $("device").value });
  } catch (e) {
    $("error").hidden = false;
    $("error").textContent = `${e.code}: ${e.message}`;
    $("backend").textContent = "failed";
    return;
  }
  $("meta").textContent = `${info.size.toLocaleString()} items × ${info.dim} ${info.dtype}, loaded in ${info.loadMs.toFixed(0)} ms` +
    (info.adapter ? ` · ${info.adapter}` : "");
  const sel = $("category");
  sel.length = 1;
  info.categories.forEach((name, i) => sel.add(new Option(name, String(i))));
  if (!$("item").value) $("item").value = await call("randomItem");
  run();
}

for (const id of ["k", "instock", "excludeQuery", "category", "pmin", "pmax", "cap", "item", "item2"]) $(id).addEventListener("change", run);
for (const [id, out, fmt] of [["pop", "popOut", (v) => v], ["mmr", "mmrOut", (v) => (v >= 1 ? "off" : v)], ["blend", "blendOut", (v) => v]]) {
  $(id).addEventListener("input", () => { $(out).textContent = fmt(Number($(id).value)); run(); });
}
$("random").addEventListener("click", async () => { $("item").value = await call("randomItem"); run(); });
$("device").addEventListener("change", load);
$("device").value = new URLSearchParams(location.search).get("device") ?? "auto";
load();
