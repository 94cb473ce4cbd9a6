#!/usr/bin/env bash
# Every test shelfwise has: formatting, clippy (host and wasm32), native tests with GPU parity on Vulkan
# (lavapipe here), the Python interoperability test, and the browser suite twice, in headless Chromium
# without WebGPU (CPU path) and with SwiftShader's WebGPU. Run scripts/setup.sh first (the Makefile does).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (host)"
cargo clippy --workspace --all-targets -q -- -D warnings

step "clippy (wasm32)"
wasm_cargo clippy --target wasm32-unknown-unknown -p shelfwise --lib --test web -q $WASM_BUILD_STD -- -D warnings

step "native tests (GPU parity must find a Vulkan adapter)"
SHELFWISE_REQUIRE_GPU=1 SHELFWISE_PYTHON="$PWD/target/py/bin/python" cargo test --workspace -q

for mode in cpu webgpu; do
  step "browser tests, headless Chromium, $mode"
  if [ "$mode" = webgpu ]; then
    echo '{ "goog:chromeOptions": { "args": ["--enable-unsafe-webgpu"] } }' > webdriver.json
  else
    echo '{ "goog:chromeOptions": { "args": [] } }' > webdriver.json
  fi
  SHELFWISE_EXPECT_BACKEND=$mode WASM_BINDGEN_TEST_TIMEOUT=600 CHROMEDRIVER=$(command -v chromedriver) \
    wasm_cargo test --target wasm32-unknown-unknown -p shelfwise --test web $WASM_BUILD_STD
done
rm -f webdriver.json
step "all tests passed"
