// score_topk: scores one chunk of shard rows against the query, applies the request's filters, and writes
// each tile's best `k` (key, row) pairs, best first. The CPU merges the per-tile lists.
//
// Twin: `backend::cpu::scan` (same formula, same key order); parity tests in tests/gpu_parity.rs.
//
// Bindings (group 0):
//   0 uniform      p:     Params
//   1 storage r    rows:  array<u32>        [chunk_rows * p.row_words]  rows of the chunk, packed as stored:
//                                           f32 bits, two f16 per word, or four i8 per word (little end)
//   2 storage r    attrs: array<vec4<u32>>  [chunk_rows]  x: row scale (f32 bits; 1.0 unless int8)
//                                                         y: category id, bit 31 set when out of stock
//                                                         z: price (f32 bits)  w: popularity (f32 bits)
//   3 storage r    mask:  array<u32>        [ceil(n_total / 32)]  eligible rows by global index (FLAG_MASK)
//   4 storage r    req:   array<u32>        query [p.row_words * per-word lanes] (f32 bits, or i32 for int8),
//                                           then category allow bits at p.cat_allow_at,
//                                           then category boosts (f32 bits) at p.cat_boost_at
//   5 storage rw   out:   array<vec2<u32>>  [(p.out_tile + tiles) * p.k]  (key, global row); key 0 = empty
//
// Specialised by the override constant DTYPE: 0 = f32, 1 = f16, 2 = int8.

override DTYPE: u32 = 0u;

const WG: u32 = 256u;
const TILE: u32 = 1024u;
const NO_ROW: u32 = 0xffffffffu;

const FLAG_MASK: u32 = 1u;
const FLAG_CATS: u32 = 2u;
const FLAG_PRICE: u32 = 4u;
const FLAG_STOCK: u32 = 8u;
const FLAG_POP: u32 = 16u;
const FLAG_BOOST: u32 = 32u;
const FLAG_NEW: u32 = 64u;
const NO_CATEGORY: u32 = 0x7fffffffu;

struct Params {
    chunk_start: u32,   // global index of the chunk's first row
    chunk_rows: u32,    // rows in this chunk
    out_tile: u32,      // index of this chunk's first tile in `out`
    k: u32,             // entries kept per tile (<= TILE)
    row_words: u32,     // u32 words per row
    flags: u32,
    cat_allow_at: u32,  // word offset of the category allow bits in `req`
    cat_boost_at: u32,  // word offset of the category boosts in `req`
    qscale: f32,        // int8 query scale (1.0 otherwise)
    pop_weight: f32,
    price_min: f32,
    price_max: f32,
    new_boost: f32,     // added where popularity is 0 (FLAG_NEW)
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rows: array<u32>;
@group(0) @binding(2) var<storage, read> attrs: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read> req: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<vec2<u32>>;

var<workgroup> keys: array<u32, TILE>;
var<workgroup> idxs: array<u32, TILE>;

// Maps a score to a u32 whose unsigned order is the float order. NaN maps to 0, the empty key.
fn score_key(s: f32) -> u32 {
    if (s != s) {
        return 0u;
    }
    if (s == 0.0) {
        return 0x80000000u; // -0.0 ties with +0.0
    }
    let b = bitcast<u32>(s);
    if ((b & 0x80000000u) != 0u) {
        return ~b;
    }
    return b | 0x80000000u;
}

// Dot product of chunk row `r` with the query, times the row scale.
fn row_dot(r: u32, scale: f32) -> f32 {
    let base = r * p.row_words;
    if (DTYPE == 2u) {
        var acc: i32 = 0;
        for (var w = 0u; w < p.row_words; w++) {
            let v = bitcast<i32>(rows[base + w]);
            let q = 4u * w;
            acc += ((v << 24u) >> 24u) * bitcast<i32>(req[q]);
            acc += ((v << 16u) >> 24u) * bitcast<i32>(req[q + 1u]);
            acc += ((v << 8u) >> 24u) * bitcast<i32>(req[q + 2u]);
            acc += (v >> 24u) * bitcast<i32>(req[q + 3u]);
        }
        return f32(acc) * p.qscale * scale;
    } else if (DTYPE == 1u) {
        var acc: f32 = 0.0;
        for (var w = 0u; w < p.row_words; w++) {
            let h = unpack2x16float(rows[base + w]);
            acc += h.x * bitcast<f32>(req[2u * w]);
            acc += h.y * bitcast<f32>(req[2u * w + 1u]);
        }
        return acc;
    } else {
        var acc: f32 = 0.0;
        for (var w = 0u; w < p.row_words; w++) {
            acc += bitcast<f32>(rows[base + w]) * bitcast<f32>(req[w]);
        }
        return acc;
    }
}

fn score_row(r: u32) -> u32 {
    let g = p.chunk_start + r;
    let a = attrs[r];
    let cat = a.y & 0x7fffffffu;
    if ((p.flags & FLAG_MASK) != 0u && ((mask[g >> 5u] >> (g & 31u)) & 1u) == 0u) {
        return 0u;
    }
    if ((p.flags & FLAG_STOCK) != 0u && (a.y & 0x80000000u) != 0u) {
        return 0u;
    }
    if ((p.flags & FLAG_CATS) != 0u) {
        if (cat == NO_CATEGORY || ((req[p.cat_allow_at + (cat >> 5u)] >> (cat & 31u)) & 1u) == 0u) {
            return 0u;
        }
    }
    if ((p.flags & FLAG_PRICE) != 0u) {
        let price = bitcast<f32>(a.z);
        if (!(price >= p.price_min && price <= p.price_max)) {
            return 0u;
        }
    }
    var s = row_dot(r, bitcast<f32>(a.x));
    if ((p.flags & FLAG_POP) != 0u) {
        s = s + p.pop_weight * bitcast<f32>(a.w);
    }
    if ((p.flags & FLAG_NEW) != 0u && bitcast<f32>(a.w) == 0.0) {
        s = s + p.new_boost;
    }
    if ((p.flags & FLAG_BOOST) != 0u && cat != NO_CATEGORY) {
        s = s + bitcast<f32>(req[p.cat_boost_at + cat]);
    }
    return score_key(s);
}

// True when (ka, ia) ranks before (kb, ib): higher key first, then lower row.
fn before(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
    return ka > kb || (ka == kb && ia < ib);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tile = wid.x;
    let first = tile * TILE;
    for (var j = 0u; j < TILE / WG; j++) {
        let slot = j * WG + lid;
        let r = first + slot;
        var key = 0u;
        if (r < p.chunk_rows) {
            key = score_row(r);
        }
        keys[slot] = key;
        if (key == 0u) {
            idxs[slot] = NO_ROW;
        } else {
            idxs[slot] = p.chunk_start + r;
        }
    }
    workgroupBarrier();

    // Bitonic sort of the tile, best first.
    for (var size = 2u; size <= TILE; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            for (var t = lid; t < TILE / 2u; t += WG) {
                let i = 2u * t - (t & (stride - 1u));
                let j = i + stride;
                let best_first = (i & size) == 0u;
                let ki = keys[i];
                let ii = idxs[i];
                let kj = keys[j];
                let ij = idxs[j];
                if (before(kj, ij, ki, ii) == best_first) {
                    keys[i] = kj;
                    idxs[i] = ij;
                    keys[j] = ki;
                    idxs[j] = ii;
                }
            }
            workgroupBarrier();
        }
    }

    let at = (p.out_tile + tile) * p.k;
    for (var j = lid; j < p.k; j += WG) {
        out[at + j] = vec2<u32>(keys[j], idxs[j]);
    }
}
