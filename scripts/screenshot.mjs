// Opens the demo in headless Chromium, waits until it has ranked, and saves a screenshot.
//   node scripts/screenshot.mjs [out.png] [--webgpu]   (--webgpu also selects the WebGPU device)
import { serve } from "./serve.mjs";
import { launch } from "./browser.mjs";

const out = process.argv.find((a) => a.endsWith(".png")) ?? "target/demo.png";
const webgpu = process.argv.includes("--webgpu");
const server = await serve({ port: 0, root: "." });
const browser = await launch({ webgpu });
try {
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.on("console", (m) => console.log(`[page] ${m.text()}`));
  page.on("pageerror", (e) => console.log(`[page error] ${e.message}`));
  await page.goto(`http://127.0.0.1:${server.address().port}/www/engine.html${webgpu ? "?device=webgpu" : ""}`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 120_000 });
  const badge = await page.textContent("#backend");
  const cards = await page.locator(".card").count();
  await page.screenshot({ path: out, fullPage: false });
  console.log(`demo ranked ${cards} items on ${badge}; screenshot: ${out}`);
  if (cards === 0) process.exitCode = 1;
} finally {
  await browser.close();
  server.close();
}
