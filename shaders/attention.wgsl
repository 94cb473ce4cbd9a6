// attention: multi-head scaled dot-product self-attention on projected q, k, v.
//
// Twin: `backend::cpu_nn::CpuNn::attention`; parity in tests/nn_parity.rs.
//
// For sequence b, head h and query i: softmax over keys j of q_i . k_j / sqrt(head_dim), where keys with
// mask 0 (padding) and, when p.causal is set, keys after i take no weight; the result is the weighted sum
// of v_j. A query with no key left (a causal row before the first real token) gets zeros.
//
// Bindings (group 0):
//   0 uniform      p:    Params
//   1 storage r    q:    array<f32>  [batch * p.len * p.hidden]  head h holds columns h*p.dh .. (h+1)*p.dh
//   2 storage r    k:    array<f32>  same
//   3 storage r    v:    array<f32>  same
//   4 storage r    mask: array<u32>  [batch * p.len]  0 = padding
//   5 storage rw   out:  array<f32>  same as q
//
// One workgroup per (query, head, sequence): dispatch (p.len, heads, batch). Scores of one query row are
// kept in workgroup memory, so p.len <= MAX_LEN (the host checks).

const WG: u32 = 64u;
const MAX_LEN: u32 = 1024u;

struct Params {
    len: u32,
    hidden: u32,
    dh: u32,      // head dimension
    causal: u32,  // 1 = mask later keys
    scale: f32,   // sqrt(dh)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> weights: array<f32, MAX_LEN>;
var<workgroup> partial: array<f32, WG>;

fn keeps(seq0: u32, i: u32, j: u32) -> bool {
    return mask[seq0 + j] != 0u && !(p.causal != 0u && j > i);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = wid.x;
    let head = wid.y * p.dh;
    let seq0 = wid.z * p.len;
    let qi = (seq0 + i) * p.hidden + head;

    // Scores, and this invocation's largest.
    var best = -3.0e38;
    var any = false;
    for (var j = lid; j < p.len; j += WG) {
        var s = 0.0;
        if keeps(seq0, i, j) {
            let kj = (seq0 + j) * p.hidden + head;
            for (var d = 0u; d < p.dh; d++) {
                s = fma(q[qi + d], k[kj + d], s);
            }
            s = s / p.scale;
            best = max(best, s);
            any = true;
        }
        weights[j] = s;
    }
    // -3.0e38 is below any real score, so the maximum over invocations marks "no key" exactly.
    partial[lid] = select(-3.0e38, best, any);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if lid < s {
            partial[lid] = max(partial[lid], partial[lid + s]);
        }
        workgroupBarrier();
    }
    let top = partial[0];
    workgroupBarrier();

    // Unnormalised weights and their sum.
    var sum = 0.0;
    for (var j = lid; j < p.len; j += WG) {
        var e = 0.0;
        if keeps(seq0, i, j) {
            e = exp(weights[j] - top);
        }
        weights[j] = e;
        sum += e;
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if lid < s {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];

    for (var d = lid; d < p.dh; d += WG) {
        var acc = 0.0;
        if total > 0.0 {
            for (var j = 0u; j < p.len; j++) {
                acc = fma(weights[j], v[(seq0 + j) * p.hidden + head + d], acc);
            }
            acc = acc / total;
        }
        out[qi + d] = acc;
    }
}
