// A small static file server for the demo and the benchmark page (no dependencies).
// Sends COOP/COEP headers so pages are cross-origin isolated (fine-grained performance.now()).
//
//   node scripts/serve.mjs [--port 8080] [--root .] [--cors] [--open www/]   (--open: print that page's URL)
//
// --cors lets pages of other origins fetch the files (the browser tests fetch the model cache this way).
import { createServer } from "node:http";
import { createReadStream, statSync } from "node:fs";
import { extname, join, normalize, resolve } from "node:path";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".jsonl": "application/x-ndjson",
  ".wasm": "application/wasm",
  ".safetensors": "application/octet-stream",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ts": "text/plain; charset=utf-8",
};

/**
 * Serves `root` on `port` (0: any free port). `handler(req, res, url)`, if given, sees each request first
 * and returns true when it answered it itself (the end-to-end tests' misbehaving downloads).
 */
export function serve({ port = 8080, root = ".", cors = false, handler } = {}) {
  const base = resolve(root);
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    if (handler?.(req, res, url)) return;
    let path = normalize(decodeURIComponent(url.pathname));
    if (path.endsWith("/")) path += "index.html";
    const file = join(base, path);
    if (!file.startsWith(base)) {
      res.writeHead(403).end();
      return;
    }
    let st;
    try {
      st = statSync(file);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${url.pathname}\n`);
      return;
    }
    if (st.isDirectory()) {
      res.writeHead(302, { location: url.pathname + "/" }).end();
      return;
    }
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "content-length": st.size,
      "cache-control": "no-cache",
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
      ...(cors
        ? { "access-control-allow-origin": "*", "cross-origin-resource-policy": "cross-origin" }
        : {}),
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((ok) => server.listen(port, "127.0.0.1", () => ok(server)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : dflt;
  };
  const port = Number(arg("--port", process.env.PORT ?? 8080));
  const root = arg("--root", ".");
  const server = await serve({ port, root, cors: process.argv.includes("--cors") });
  console.log(`serving ${root} at http://localhost:${server.address().port}/`);
  const open = arg("--open", null);
  if (open !== null) console.log(`open http://localhost:${server.address().port}/${open}`);
  console.log("(Ctrl-C to stop)");
}
