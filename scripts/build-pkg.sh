#!/usr/bin/env bash
# Builds the npm package folder pkg/ (wasm-pack, release, --target web) and prints the wasm size.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
if [ "$WASM_TOOLCHAIN" = rustup ]; then
  wasm-pack build --release --target web --out-dir pkg .
else
  # wasm-pack's sysroot check fails on Debian's toolchain; --mode force skips it.
  env $WASM_ENV wasm-pack build --release --mode force --target web --out-dir pkg . -- $WASM_BUILD_STD
fi
wasm=pkg/shelfwise_bg.wasm
printf 'wasm size: %s bytes, %s bytes gzip -9\n' "$(stat -c %s $wasm)" "$(gzip -9 -c $wasm | wc -c)"
node scripts/package.mjs pkg
