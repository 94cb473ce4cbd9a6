#!/usr/bin/env bash
# Installs what the session-store tests need to run outside Chromium (tests/e2e/store-browsers.mjs):
# Firefox ESR with geckodriver, and WebKitGTK (Safari's engine) with its WebKitWebDriver, which needs a
# display (Xvfb). Idempotent: a second run only checks.
#
#   bash scripts/setup-browsers.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup-browsers]\033[0m %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
export PATH="$HOME/.cargo/bin:$PATH"

# --- Debian packages -----------------------------------------------------------------------------
apt_pkgs=(firefox-esr webkit2gtk-driver xvfb xauth)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- geckodriver (not packaged by Debian) ---------------------------------------------------------
if ! have geckodriver; then
  say "cargo install geckodriver --locked (a few minutes on 2 cores)"
  cargo install -q geckodriver --locked
fi

# --- check what the tests will run ---------------------------------------------------------------
webkit_driver=$(command -v WebKitWebDriver || dpkg -L webkit2gtk-driver | grep -m1 '/WebKitWebDriver$' || true)
[ -x "$webkit_driver" ] || { say "WebKitWebDriver not found (dpkg -L webkit2gtk-driver)"; exit 1; }
have firefox-esr || { say "firefox-esr not found"; exit 1; }
have xvfb-run || { say "xvfb-run not found"; exit 1; }

say "ready ($(firefox-esr --version 2>/dev/null | head -1), $(geckodriver --version | head -1), WebKitWebDriver at $webkit_driver)"
