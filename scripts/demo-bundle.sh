#!/usr/bin/env bash
# The demo storefront's default bundle: MovieLens-100k through the whole CLI (convert, distil the text
# encoder, train the text + id interest model, export with int8 item rows) into www/ml100k/. Steps whose
# output already exists are skipped, so a second run only re-exports. On 2 cores the first run takes about
# 20 minutes (mostly distillation and training; each shows a progress bar).
# Run scripts/setup.sh first (it fetches MovieLens-100k and all-MiniLM-L6-v2).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p shelfwise-cli
sw() { ./target/release/shelfwise "$@"; }
D=data/ml100k
sw data ml100k --out $D
[ -f data/encoder/model.safetensors ] ||
  sw distill --teacher cache/models/all-MiniLM-L6-v2 --catalog $D/catalog.jsonl --out data/encoder
[ -f data/runs/text-id/model.safetensors ] ||
  sw train --catalog $D/catalog.jsonl --events $D/events.jsonl --encoder data/encoder --out data/runs/text-id
sw export --model data/runs/text-id --encoder data/encoder --catalog $D/catalog.jsonl --events $D/events.jsonl \
  --out www/ml100k
