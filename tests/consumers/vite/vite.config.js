import { defineConfig } from "vite";

export default defineConfig({
  // shelfwise's worker entry imports the wasm-bindgen module: the worker must be an ES module.
  worker: { format: "es" },
  // In `vite dev`, pre-bundling would move shelfwise away from its .wasm and worker files.
  optimizeDeps: { exclude: ["shelfwise"] },
});
