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

# 32 tokens: the long fixture text is truncated, and SwiftShader (a CPU emulating a GPU) stays quick.
step "native MiniLM vectors for the browser tests to match (shelfwise embed, CPU)"
cargo run -q -p shelfwise-cli -- embed --model cache/models/all-MiniLM-L6-v2 \
  --input tests/fixtures/minilm_browser_texts.json --max-len 32 --out cache/golden/minilm.json

# The browser tests fetch the model and those vectors from here, as a storefront would. Port 0: the
# system picks a free one, which the server prints.
node scripts/serve.mjs --root cache --port 0 --cors > target/assets-server.log 2>&1 &
ASSETS_PID=$!
trap 'kill $ASSETS_PID 2>/dev/null || true; rm -f webdriver.json' EXIT
for _ in $(seq 100); do
  grep -q 'http://localhost:[0-9]*/' target/assets-server.log 2>/dev/null && break
  sleep 0.1
done
ASSETS_PORT=$(grep -o 'http://localhost:[0-9]*/' target/assets-server.log | grep -o '[0-9]*' | tail -1)
[ -n "$ASSETS_PORT" ] || { echo "the assets server did not start:"; cat target/assets-server.log; exit 1; }
export SHELFWISE_ASSETS="http://127.0.0.1:$ASSETS_PORT"

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
step "all tests passed"
