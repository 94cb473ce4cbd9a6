# Sourced by the scripts: reads the toolchain choice that scripts/setup.sh wrote, and puts the project's
# npm tools (wasm-opt, playwright-core) on PATH.
if [ ! -f target/toolchain.env ]; then
  echo "target/toolchain.env is missing: run scripts/setup.sh (or make setup) first" >&2
  exit 1
fi
# shellcheck disable=SC1091
source target/toolchain.env
export PATH="$PWD/target/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
# cargo for wasm32: the rustup target as is, or Debian's rustc-web with build-std.
wasm_cargo() { env $WASM_ENV cargo "$@"; }
