"""Writes a two-shard int8 catalogue with nothing but numpy and the `safetensors` package, following
docs/FORMAT.md, plus expected.json: rankings computed here from the scoring rule the doc states.

Usage: python write_shard.py OUT_DIR
The Rust test `a_shard_written_by_python_loads_and_ranks` (tests/format.rs) runs it and compares.
"""
import hashlib
import json
import os
import sys

import numpy as np
from safetensors.numpy import save

DIM = 24
N_CATEGORIES = 5


def quantize(rows):
    """Symmetric int8 per row: scale = max|x| / 127, q = round-half-away-from-zero(x / scale)."""
    rows = rows.astype(np.float32)
    scale = (np.abs(rows).max(axis=1) / np.float32(127.0)).astype(np.float32)
    safe = np.where(scale == 0, np.float32(1.0), scale).astype(np.float32)
    # Round the f32 quotient half away from zero; in f64 the + 0.5 is exact.
    x = (rows / safe[:, None]).astype(np.float64)
    q = np.sign(x) * np.floor(np.abs(x) + 0.5)
    return np.clip(q, -127, 127).astype(np.int8), scale


def write_shard(path, ids, vectors, category, price, in_stock, popularity):
    norms = np.linalg.norm(vectors, axis=1, keepdims=True).astype(np.float32)
    vectors = (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)
    q, scale = quantize(vectors)
    encoded = [i.encode("utf-8") for i in ids]
    offsets = np.zeros(len(ids) + 1, dtype=np.uint32)
    offsets[1:] = np.cumsum([len(e) for e in encoded])
    tensors = {
        "embeddings": q,
        "scales": scale,
        "id_offsets": offsets,
        "id_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
        "category": category.astype(np.uint32),
        "price": price.astype(np.float32),
        "in_stock": in_stock.astype(np.uint8),
        "popularity": popularity.astype(np.float32),
    }
    metadata = {
        "format": "shelfwise-shard",
        "version": "1",
        "dim": str(DIM),
        "normalized": "true",
        "model_id": "python-interop",
        "num_categories": str(N_CATEGORIES),
    }
    data = save(tensors, metadata=metadata)
    with open(path, "wb") as f:
        f.write(data)
    return data, q, scale


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(2024)
    sizes = [700, 333]
    shards, all_q, all_scale, attrs, all_ids = [], [], [], [], []
    start = 0
    for s, n in enumerate(sizes):
        ids = [f"py-{s}-{i:04d}-é" for i in range(n)]
        vectors = rng.normal(size=(n, DIM)).astype(np.float32)
        category = rng.integers(0, N_CATEGORIES, size=n)
        price = np.round(rng.uniform(1, 100, size=n), 2)
        in_stock = rng.uniform(size=n) < 0.8
        popularity = rng.uniform(size=n)
        name = f"part-{s}.safetensors"
        data, q, scale = write_shard(os.path.join(out, name), ids, vectors, category, price, in_stock, popularity)
        shards.append({
            "file": name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "items": n,
            "dtype": "int8",
        })
        all_q.append(q)
        all_scale.append(scale)
        attrs.append((category, price.astype(np.float32), in_stock, popularity.astype(np.float32)))
        all_ids += ids
        start += n
    manifest = {
        "format": "shelfwise-catalog",
        "version": 1,
        "model_id": "python-interop",
        "dim": DIM,
        "dtype": "int8",
        "normalized": True,
        "item_count": sum(sizes),
        "categories": [f"cat{c}" for c in range(N_CATEGORIES)],
        "shards": shards,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)

    q_rows = np.concatenate(all_q).astype(np.int32)
    scales = np.concatenate(all_scale)
    category = np.concatenate([a[0] for a in attrs])
    price = np.concatenate([a[1] for a in attrs])
    in_stock = np.concatenate([a[2] for a in attrs])
    popularity = np.concatenate([a[3] for a in attrs])

    def rank(query, options):
        # The documented rule: the query is quantised like a row, the dot product is an exact integer,
        # score = (f32(dot) * query_scale) * row_scale + popularity_weight * popularity.
        qq, qs = quantize(np.asarray([query], dtype=np.float32))
        dots = q_rows @ qq[0].astype(np.int32)
        scores = (dots.astype(np.float32) * qs[0]) * scales
        w = np.float32(options.get("popularityWeight", 0.0))
        if w != 0:
            scores = scores + w * popularity
        keep = np.ones(len(scores), dtype=bool)
        if options.get("inStockOnly"):
            keep &= in_stock
        if "categories" in options:
            keep &= np.isin(category, options["categories"])
        if "priceRange" in options:
            lo, hi = options["priceRange"]
            keep &= (price >= np.float32(lo)) & (price <= np.float32(hi))
        for item in options.get("exclude", []):
            keep &= np.array([i != item for i in all_ids])
        rows = np.nonzero(keep)[0]
        order = np.lexsort((rows, -scores[rows]))  # score descending, then row ascending
        k = options.get("k", 10)
        return [all_ids[r] for r in rows[order][:k]]

    cases = []
    for name, options in [
        ("plain", {"k": 10}),
        ("stock-and-categories", {"k": 15, "inStockOnly": True, "categories": [1, 3]}),
        ("price-exclude-popularity", {"k": 12, "priceRange": [20.0, 60.5],
                                      "exclude": [all_ids[3], all_ids[800]], "popularityWeight": 0.25}),
    ]:
        query = rng.normal(size=DIM).astype(np.float32)
        cases.append({"name": name, "query": [float(x) for x in query], "options": options,
                      "ids": rank(query, options)})
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"cases": cases}, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
