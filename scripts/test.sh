#!/usr/bin/env bash
# Every test shelfwise has: formatting, clippy (host and wasm32), native tests with GPU parity on Vulkan
# (lavapipe here), the Python interoperability test, the browser suite twice, in headless Chromium without
# WebGPU (CPU path) and with SwiftShader's WebGPU, then the npm package: the demo storefront end to end in
# both modes, and the packed tarball in a Vite app and a plain page. Run scripts/setup.sh first (the Makefile does).
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

# A small MovieLens bundle for the browser's parity test: its numbers do not matter, only that the browser
# ranks exactly as the trainer did (parity.json holds the trainer's top 10 for 100 test users).
step "a quick MovieLens-100k bundle (distil, train, export) for the browser parity test"
sw() { cargo run -q -p shelfwise-cli -- "$@"; }
sw data ml100k --out cache/golden/ml100k
sw distill --teacher cache/models/all-MiniLM-L6-v2 --catalog cache/golden/ml100k/catalog.jsonl \
  --out cache/golden/encoder --vocab 1500 --dim 32 --layers 1 --intermediate 64 --epochs 1 --pairs-per-word 0.2
sw train --catalog cache/golden/ml100k/catalog.jsonl --events cache/golden/ml100k/events.jsonl \
  --encoder cache/golden/encoder --out cache/golden/model --dim 32 --max-epochs 2
sw export --model cache/golden/model --encoder cache/golden/encoder --catalog cache/golden/ml100k/catalog.jsonl \
  --events cache/golden/ml100k/events.jsonl --dtype f32 --out cache/golden/bundle

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
kill $ASSETS_PID 2>/dev/null || true

# The npm package: wasm-pack's release build plus the JS API (js/), as pkg/.
step "npm package (wasm-pack release build and the JS API)"
bash scripts/build-pkg.sh

# The demo storefront on the quick MovieLens bundle above, driven by Playwright in both modes: search, open
# products, reload (IndexedDB), corrupt the stored history, reset, the bad-input matrix, and the privacy
# check on every request. Screenshots land in target/e2e/.
for mode in cpu webgpu; do
  step "demo storefront end to end, headless Chromium, $mode"
  node tests/e2e/demo.mjs --mode $mode --bundle cache/golden/bundle --out target/e2e
done

# The session store the way shoppers use it: several tabs, reloads, reset() across tabs, a tiny quota, a
# version-1 database, hostile manifest paths, a pinned manifest, a worker that stops answering.
step "session store and load faults, headless Chromium, both entries"
node tests/e2e/store.mjs --bundle cache/golden/bundle

# The 30-minute soak (node scripts/soak.mjs, docs/RELIABILITY.md) in one minute: two tabs, 50 events/s each,
# memory flat, no event lost. Latency may vary more on a shared 2-core machine than in a long run: +50%.
step "soak, 60 seconds (two tabs, both entries, persistence on)"
node scripts/soak.mjs --seconds 60 --bundle cache/golden/bundle --p95 0.5

# Each cargo-fuzz target for 10 s from the committed seeds alone (the long campaigns: docs/RELIABILITY.md).
step "fuzz smoke: every cargo-fuzz target, 10 s each"
bash scripts/fuzz.sh --smoke 10

step "npm pack, installed into a Vite app and a plain module page (the README's quick start, verbatim)"
node tests/consumers/run.mjs --bundle cache/golden/bundle --out target/consumers

step "all tests passed"
