// A storefront page built with Vite: shelfwise from npm, the model in a worker, the bundle in public/.
import { Recommender, ShelfwiseError } from "shelfwise/worker";

const status = document.getElementById("status");
try {
  const rec = await Recommender.load("/bundle/manifest.json");
  rec.track({ type: "view", itemId: "50" });
  rec.track({ type: "search", query: "space adventure" });
  const out = await rec.recommend({ k: 10 });
  document.getElementById("items").innerHTML = out.items
    .map((it) => `<li data-id="${it.id}" data-reason="${it.reason.kind}">${it.id} (${it.score.toFixed(3)})</li>`)
    .join("");
  status.textContent = `${out.items.length} items on ${out.backend}`;
  document.body.dataset.ready = "true";
} catch (e) {
  status.textContent = `${e instanceof ShelfwiseError ? e.code : "ERROR"}: ${e.message}`;
  document.body.dataset.ready = "error";
}
