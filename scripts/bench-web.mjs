// Runs www/bench.html in headless Chromium (with --enable-unsafe-webgpu so the GPU row exists) for the
// 100k and 1M catalogues, then www/bench-text.html (all-MiniLM-L6-v2) and www/bench-shop.html (the demo's
// per-event recommend() on the MovieLens-100k bundle), prints the tables and writes
// target/bench-web.json.
//   node scripts/bench-web.mjs [--runs N] [--only ranking|text|shop]
import { writeFileSync } from "node:fs";
import { serve } from "./serve.mjs";
import { launch } from "./browser.mjs";

const i = process.argv.indexOf("--runs");
const runs = i > 0 ? Number(process.argv[i + 1]) : 200;
const j = process.argv.indexOf("--only");
const only = j > 0 ? process.argv[j + 1] : null;
const pages = [
  ["100k", `bench.html?bundle=bundle%2Fmanifest.json&runs=${runs}`, "ranking"],
  ["1M", `bench.html?bundle=${encodeURIComponent("../target/bench-1m/manifest.json")}&runs=${Math.max(20, runs / 4)}`, "ranking"],
  ["MiniLM", `bench-text.html?runs=${Math.max(10, Math.round(runs / 7))}`, "text"],
  ["storefront", `bench-shop.html?bundle=ml100k%2Fmanifest.json&sessions=${Math.max(2, Math.round(runs / 40))}`, "shop"],
].filter((p) => !only || p[2] === only);
const server = await serve({ port: 0, root: "." });
const browser = await launch({ webgpu: true });
const all = {};
let failed = false;
try {
  console.log(`Chromium ${browser.version()}, headless`);
  for (const [name, path] of pages) {
    const page = await browser.newPage();
    page.on("console", (m) => console.log(`[${name}] ${m.text()}`));
    await page.goto(`http://127.0.0.1:${server.address().port}/www/${path}`);
    await page.waitForFunction(() => window.benchResult, null, { timeout: 560_000, polling: 500 });
    all[name] = await page.evaluate(() => window.benchResult);
    failed ||= Boolean(all[name].error);
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
writeFileSync("target/bench-web.json", JSON.stringify(all, null, 2));
console.log("wrote target/bench-web.json");
process.exitCode = failed ? 1 : 0;
