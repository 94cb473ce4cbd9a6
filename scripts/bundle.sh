#!/usr/bin/env bash
# Writes a synthetic catalogue bundle with the CLI: ITEMS items of DIM dims, int8, into OUT.
#   scripts/bundle.sh OUT [ITEMS] [DIM]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1 items=${2:-100000} dim=${3:-64}
if [ -f "$out/manifest.json" ] && grep -q "\"item_count\": $items," "$out/manifest.json"; then
  exit 0
fi
data=target/synth-$items-$dim
cargo run -q --release -p shelfwise-cli -- synth --items "$items" --dim "$dim" --out "$data"
cargo run -q --release -p shelfwise-cli -- shard --vectors "$data/vectors.safetensors" \
  --catalog "$data/catalog.jsonl" --dtype int8 --model-id "synthetic-$dim" --shard-items 1048576 --out "$out"
cp "$data/catalog.jsonl" "$out/catalog.jsonl"
