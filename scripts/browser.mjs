// Launches Debian's Chromium headless through playwright-core (installed by scripts/setup.sh into
// target/tools). `webgpu: true` adds --enable-unsafe-webgpu (SwiftShader's WebGPU on machines without a GPU).
import { createRequire } from "node:module";
import { resolve } from "node:path";

const require = createRequire(resolve("target/tools/package.json"));
const { chromium } = require("playwright-core");

export async function launch({ webgpu = false } = {}) {
  const args = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ];
  if (webgpu) args.push("--enable-unsafe-webgpu");
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true, args });
}
