// pool: one vector per sequence from its token states (mean over real tokens, the first token, or the last
// real token), optionally scaled to unit L2 norm.
//
// Twin: `backend::cpu_nn::CpuNn::pool`; parity in tests/nn_parity.rs.
//
// Bindings (group 0):
//   0 uniform      p:    Params
//   1 storage r    x:    array<f32>  [batch * p.len * p.hidden]
//   2 storage r    mask: array<u32>  [batch * p.len]  0 = padding
//   3 storage rw   out:  array<f32>  [batch * p.hidden]
//
// One workgroup per sequence: dispatch (batch). Each invocation owns a strided set of columns and sums
// tokens in order, as the CPU twin does.

const WG: u32 = 256u;
const MEAN: u32 = 0u;
const CLS: u32 = 1u;
const LAST: u32 = 2u;

struct Params {
    len: u32,
    hidden: u32,
    pooling: u32,   // MEAN, CLS or LAST
    normalize: u32, // 1 = unit L2 norm
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let seq0 = wid.x * p.len;
    let o = wid.x * p.hidden;
    var count = 0u;
    var last = 0u;
    for (var t = 0u; t < p.len; t++) {
        if mask[seq0 + t] != 0u {
            count += 1u;
            last = t;
        }
    }
    var sq = 0.0;
    for (var j = lid; j < p.hidden; j += WG) {
        var val = 0.0;
        if p.pooling == CLS {
            val = x[seq0 * p.hidden + j];
        } else if p.pooling == LAST {
            val = x[(seq0 + last) * p.hidden + j];
        } else {
            for (var t = 0u; t < p.len; t++) {
                if mask[seq0 + t] != 0u {
                    val += x[(seq0 + t) * p.hidden + j];
                }
            }
            val = val / f32(max(count, 1u));
        }
        out[o + j] = val;
        sq += val * val;
    }
    if p.normalize == 0u {
        return;
    }
    partial[lid] = sq;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if lid < s {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let norm = max(sqrt(partial[0]), 1e-12);
    for (var j = lid; j < p.hidden; j += WG) {
        out[o + j] = out[o + j] / norm;
    }
}
