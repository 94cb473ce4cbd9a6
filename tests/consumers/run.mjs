// Installs the npm tarball (`npm pack` of pkg/) into two fresh consumer apps and opens each in headless
// Chromium:
//   - plain: a page with a `<script type="module">` and an import map, whose main.js is the README's JS quick
//     start copied verbatim;
//   - vite: a Vite app (`vite build`, then `vite preview`) importing `shelfwise/worker`.
// Both load the bundle given (copied into the app) and must show recommendations.
//
//   node tests/consumers/run.mjs [--bundle cache/golden/bundle] [--out target/consumers]
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { serve } from "../../scripts/serve.mjs";
import { launch } from "../../scripts/browser.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const bundle = resolve(arg("bundle", "cache/golden/bundle"));
const out = resolve(arg("out", "target/consumers"));
const npm = (cwd, ...args) => execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, stdio: ["ignore", "pipe", "inherit"] }).toString();

/** The README's JS quick start: the ```js block between the quickstart markers. */
export function quickStart(readme = readFileSync("README.md", "utf8")) {
  const m = readme.match(/<!-- quickstart:begin -->\s*```js\n([\s\S]*?)```\s*<!-- quickstart:end -->/);
  if (!m) throw new Error("README.md has no ```js block between <!-- quickstart:begin --> and <!-- quickstart:end -->");
  return m[1];
}

function freePort() {
  return new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function openAndWait(url, until, name) {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const logs = [];
    const errors = [];
    page.on("console", (m) => logs.push(m.text()));
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url);
    const result = await until(page, logs);
    await page.screenshot({ path: join(out, `${name}.png`) });
    assert.deepEqual(errors, [], `${name}: uncaught page errors`);
    return result;
  } finally {
    await browser.close();
  }
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const tarball = join(out, npm("pkg", "pack", "--pack-destination", out, "--silent").trim().split("\n").pop());
console.log(`consumers: packed ${tarball}`);

// ---- the plain page: README quick start, verbatim --------------------------------------------------
{
  const app = join(out, "plain");
  cpSync("tests/consumers/plain", app, { recursive: true });
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "plain-consumer", private: true, type: "module" }, null, 2));
  writeFileSync(join(app, "main.js"), quickStart());
  npm(app, "install", tarball);
  cpSync(bundle, join(app, "bundle"), { recursive: true });
  const server = await serve({ port: 0, root: app });
  try {
    const lines = await openAndWait(
      `http://127.0.0.1:${server.address().port}/index.html`,
      async (page, logs) => {
        await page.waitForFunction(() => true);
        for (let i = 0; i < 600 && !logs.some((l) => l.startsWith("ranked on")); i++) await page.waitForTimeout(200);
        return logs;
      },
      "plain",
    );
    const items = lines.filter((l) => /^\S+ -?\d+\.\d{3} [a-z_]+$/.test(l));
    assert.ok(lines.some((l) => l.startsWith("ranked on")), `plain: the quick start finished (console: ${JSON.stringify(lines.slice(-5))})`);
    assert.equal(items.length, 10, `plain: 10 recommendations logged (${JSON.stringify(lines)})`);
    console.log(`consumers: plain page ran the README quick start: ${items.length} items; ${lines.find((l) => l.startsWith("ranked on"))}`);
  } finally {
    server.close();
  }
}

// ---- the Vite app: vite build, vite preview ----------------------------------------------------------
{
  const app = join(out, "vite");
  cpSync("tests/consumers/vite", app, { recursive: true });
  npm(app, "install");
  npm(app, "install", tarball);
  cpSync(bundle, join(app, "public", "bundle"), { recursive: true });
  execFileSync("npx", ["vite", "build", "--logLevel", "warn"], { cwd: app, stdio: "inherit" });
  const port = await freePort();
  const preview = spawn("npx", ["vite", "preview", "--port", String(port), "--strictPort", "--host", "127.0.0.1"], { cwd: app, stdio: ["ignore", "pipe", "inherit"], detached: true });
  try {
    let ready = false;
    preview.stdout.on("data", (d) => (ready ||= d.toString().includes(String(port))));
    for (let i = 0; i < 150 && !ready; i++) await new Promise((r) => setTimeout(r, 200));
    assert.ok(ready, "vite preview started");
    const got = await openAndWait(
      `http://127.0.0.1:${port}/`,
      async (page) => {
        await page.waitForSelector("body[data-ready]", { timeout: 120_000 });
        return page.evaluate(() => ({
          ready: document.body.dataset.ready,
          status: document.getElementById("status").textContent,
          items: [...document.querySelectorAll("#items li")].map((li) => li.dataset.reason),
        }));
      },
      "vite",
    );
    assert.equal(got.ready, "true", `vite: ${got.status}`);
    assert.equal(got.items.length, 10, "vite: 10 recommendations shown");
    assert.ok(got.items.every((r) => r && r !== "popular"), "vite: every item is explained by the session");
    console.log(`consumers: vite app (build + preview): ${got.status}`);
  } finally {
    process.kill(-preview.pid);
  }
}
console.log("consumers: passed");
