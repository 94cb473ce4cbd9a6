// Turns wasm-pack's pkg/ into the npm package: adds the JS API (js/) beside the wasm-bindgen module and
// writes package.json with an `exports` map: `shelfwise` (the API on the calling thread), `shelfwise/worker`
// (the same API with the model in a Web Worker) and `shelfwise/wasm` (the low-level wasm-bindgen classes).
//   node scripts/package.mjs [pkg]
import { copyFileSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2] ?? "pkg";
const js = readdirSync("js").filter((f) => f.endsWith(".js") || f.endsWith(".d.ts"));
for (const f of js) copyFileSync(join("js", f), join(out, f));
copyFileSync("README.md", join(out, "README.md"));

const pkg = JSON.parse(readFileSync(join(out, "package.json"), "utf8"));
const files = new Set([...(pkg.files ?? []), ...js, "README.md"]);
Object.assign(pkg, {
  description: "On-device recommendations for web storefronts: a session interest model and exact ranking on WebGPU and wasm SIMD, with nothing leaving the device.",
  main: "index.js",
  module: "index.js",
  types: "index.d.ts",
  exports: {
    ".": { types: "./index.d.ts", default: "./index.js" },
    "./worker": { types: "./worker.d.ts", default: "./worker.js" },
    "./wasm": { types: "./shelfwise.d.ts", default: "./shelfwise.js" },
    "./shelfwise_bg.wasm": "./shelfwise_bg.wasm",
    "./package.json": "./package.json",
  },
  files: [...files].sort(),
  // The worker entry's host script sets `onmessage`: it must never be tree-shaken away.
  sideEffects: ["./worker-host.js", "./snippets/*"],
});
writeFileSync(join(out, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
console.log(`${out}/package.json: exports ${Object.keys(pkg.exports).join(", ")}; ${pkg.files.length} files`);
