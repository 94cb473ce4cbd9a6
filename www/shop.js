// Reelhouse, the demo storefront: every recommendation comes from shelfwise running in a Web Worker in this
// tab. Query parameters: bundle (manifest URL, default ml100k/manifest.json), device (auto | webgpu | cpu),
// persist (indexeddb, the default, or none).
import { Recommender } from "../pkg/worker.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const bundleUrl = new URL(params.get("bundle") ?? "ml100k/manifest.json", location.href).href;
const PAGE = 24;

const state = { items: new Map(), order: [], shown: 0, cart: 0, current: null, query: null, warnings: [], rec: null };
// For the end-to-end tests: what the page saw.
window.__shop = state;

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const HUES = { Action: 8, Adventure: 28, Animation: 48, "Children's": 64, Comedy: 88, Crime: 200, Documentary: 150,
  Drama: 262, Fantasy: 290, "Film-Noir": 220, Horror: 350, Musical: 318, Mystery: 236, Romance: 334, "Sci-Fi": 188,
  Thriller: 16, War: 110, Western: 36 };
function poster(item, big = false) {
  const g = item?.categories?.[0];
  const h = HUES[g] ?? 30;
  const bg = `linear-gradient(160deg, hsl(${h} 62% 52%), hsl(${(h + 40) % 360} 55% 28%))`;
  return `<div class="poster${big ? " big" : ""}" style="background:${bg}"><span class="year">${esc(item?.year ?? "")}</span>${esc(item?.title ?? "")}</div>`;
}

function reasonText(r) {
  if (!r) return "";
  const title = (id) => state.items.get(id)?.title ?? id;
  switch (r.kind) {
    case "searched": return `Because you searched “${r.query}”`;
    case "viewed": return `Because you viewed ${title(r.itemId)}`;
    case "clicked": return `Because you opened ${title(r.itemId)}`;
    case "added_to_cart": return `Goes with ${title(r.itemId)} in your cart`;
    case "purchased": return `Because you bought ${title(r.itemId)}`;
    case "favorited": return `Because you liked ${title(r.itemId)}`;
    case "similar": return `Like ${title(r.itemId)}`;
    case "profile": return "From your earlier visits";
    case "popular": return "Popular right now";
    default: return r.kind;
  }
}

function card(id, { reason, rank } = {}) {
  const it = state.items.get(id) ?? { title: id, categories: [] };
  const stock = it.in_stock === false ? '<span class="oos">out of stock</span>' : "";
  return `<li class="card" data-id="${esc(id)}"${rank !== undefined ? ` data-rank="${rank}"` : ""}>
    ${poster(it)}
    <div class="body">
      <div class="title">${esc(it.title)}</div>
      <div class="genres">${esc((it.categories ?? []).join(" · "))}</div>
      <div class="row"><span class="price">${it.price != null ? "$" + it.price.toFixed(2) : ""}</span>${stock}</div>
      ${reason ? `<div class="reason" title="${esc(reasonText(reason))}">${esc(reasonText(reason))}</div>` : ""}
    </div></li>`;
}

function showError(e) {
  $("error").hidden = false;
  $("error").textContent = `${e.code ?? "ERROR"}: ${e.message}`;
}

const rec = new Recommender(bundleUrl, {
  device: params.get("device") ?? "auto",
  persist: params.get("persist") ?? "indexeddb",
  onProgress: (e) => {
    if (e.total) $("progress").firstElementChild.style.width = `${(100 * e.loaded) / e.total}%`;
    if (e.type === "ready") setTimeout(() => ($("progress").style.visibility = "hidden"), 300);
  },
});
state.rec = rec;
rec.on("warning", (w) => {
  state.warnings.push(w);
  console.warn(`shelfwise warning ${w.code}: ${w.message}`);
});
rec.on("backendchange", (e) => ($("backend").textContent = `${e.to} (was ${e.from})`));

// ---- the rail --------------------------------------------------------------------------------------

let railBusy = false;
let railAgain = false;
async function refreshRail() {
  if (railBusy) { railAgain = true; return; }
  railBusy = true;
  try {
    const out = await rec.recommend({ k: 12, diversity: Number($("diversity").value), inStockOnly: $("instock").checked });
    $("rail").innerHTML = out.items.map((r) => card(r.id, r)).join("");
    $("rail").dataset.version = String(Number($("rail").dataset.version) + 1);
    $("backend").textContent = out.backend === "webgpu" ? "WebGPU" : "CPU · wasm SIMD";
    $("timing").textContent = `recommend ${out.timings.totalMs.toFixed(1)} ms`;
    $("error").hidden = true;
    document.body.dataset.ready = "true";
  } catch (e) {
    showError(e);
  } finally {
    railBusy = false;
    if (railAgain) { railAgain = false; refreshRail(); }
  }
}

function track(event) {
  try {
    rec.track(event);
  } catch (e) {
    showError(e);
    return;
  }
  refreshRail();
}

// ---- the grid --------------------------------------------------------------------------------------

function renderGrid(ids, title, more) {
  $("gridTitle").textContent = title;
  $("grid").innerHTML = ids.map((id) => card(id)).join("");
  $("more").hidden = !more;
}

function browseAll() {
  state.query = null;
  state.shown = Math.min(PAGE, state.order.length);
  renderGrid(state.order.slice(0, state.shown), "All films", state.shown < state.order.length);
}

async function search(q) {
  state.query = q;
  track({ type: "search", query: q });
  try {
    const out = await rec.search(q, { k: PAGE, inStockOnly: $("instock").checked });
    renderGrid(out.items.map((r) => r.id), `Results for “${q}”`, false);
  } catch (e) {
    showError(e);
  }
}

// ---- the product page ------------------------------------------------------------------------------

async function openProduct(id, fromRail) {
  const it = state.items.get(id);
  if (!it) return;
  if (fromRail) rec.track({ type: "click", itemId: id });
  state.current = id;
  $("product").hidden = false;
  $("pPoster").outerHTML = poster(it, true).replace('class="poster big"', 'id="pPoster" class="poster big"');
  $("pTitle").textContent = it.title;
  $("pMeta").textContent = [it.year, (it.categories ?? []).join(", ")].filter(Boolean).join(" · ");
  $("pPrice").textContent = it.price != null ? `$${it.price.toFixed(2)}` : "";
  $("pStock").innerHTML = it.in_stock === false ? '<span class="oos">Out of stock</span>' : '<span class="in">In stock</span>';
  $("addToCart").disabled = it.in_stock === false;
  window.scrollTo({ top: 0 });
  track({ type: "view", itemId: id });
  try {
    const out = await rec.similar(id, { k: 10, inStockOnly: $("instock").checked });
    if (state.current === id) $("similar").innerHTML = out.items.map((r) => card(r.id)).join("");
  } catch (e) {
    showError(e);
  }
}

// ---- wiring ----------------------------------------------------------------------------------------

for (const list of ["rail", "grid", "similar"]) {
  $(list).addEventListener("click", (ev) => {
    const li = ev.target.closest(".card");
    if (li) openProduct(li.dataset.id, list === "rail");
  });
}
$("searchForm").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("q").value.trim();
  if (q) search(q);
  else browseAll();
});
$("more").addEventListener("click", () => {
  const next = Math.min(state.shown + PAGE, state.order.length);
  $("grid").insertAdjacentHTML("beforeend", state.order.slice(state.shown, next).map((id) => card(id)).join(""));
  state.shown = next;
  $("more").hidden = next >= state.order.length;
});
$("back").addEventListener("click", () => {
  $("product").hidden = true;
  state.current = null;
});
$("home").addEventListener("click", (ev) => {
  ev.preventDefault();
  $("product").hidden = true;
  $("q").value = "";
  browseAll();
});
$("addToCart").addEventListener("click", () => {
  state.cart += 1;
  $("cart").textContent = `cart ${state.cart}`;
  track({ type: "add_to_cart", itemId: state.current });
});
$("favorite").addEventListener("click", () => track({ type: "favorite", itemId: state.current }));
$("diversity").addEventListener("input", () => {
  $("diversityOut").textContent = $("diversity").value;
  refreshRail();
});
$("instock").addEventListener("change", refreshRail);
$("reset").addEventListener("click", async () => {
  await rec.reset();
  state.cart = 0;
  $("cart").textContent = "cart 0";
  refreshRail();
});

async function start() {
  try {
    const res = await fetch(new URL("items.json", bundleUrl));
    if (!res.ok) throw Object.assign(new Error(`items.json: HTTP ${res.status}`), { code: "MISSING_FILE" });
    for (const it of await res.json()) {
      // MovieLens files "The Shadow" as "Shadow, The": show it as a shop would.
      it.title = it.title.replace(/^(.*), (The|A|An)$/, "$2 $1");
      state.items.set(it.id, it);
      state.order.push(it.id);
    }
    browseAll();
    await rec.ready;
    const info = rec.info;
    $("meta").textContent = `${info.items.toLocaleString()} films · model ${info.modelId} · bundle ${(info.bytes / 1e6).toFixed(1)} MB` +
      (info.cachedBytes ? ` (${(info.cachedBytes / 1e6).toFixed(1)} MB from this browser's cache)` : "");
    await refreshRail();
  } catch (e) {
    $("backend").textContent = "failed";
    showError(e);
  }
}
start();
