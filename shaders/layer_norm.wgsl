// layer_norm: LayerNorm over each row, y = (x - mean) / sqrt(var + eps) * gamma + beta, with the biased
// variance. One workgroup per row; mean first, then the variance around it (two passes, as the CPU twin).
//
// Twin: `backend::cpu_nn::CpuNn::layer_norm`; parity in tests/nn_parity.rs.
//
// Bindings (group 0):
//   0 uniform      p:     Params
//   1 storage r    x:     array<f32>  [p.rows * p.cols]
//   2 storage r    gamma: array<f32>  [p.cols]
//   3 storage r    beta:  array<f32>  [p.cols]
//   4 storage rw   out:   array<f32>  [p.rows * p.cols]
//
// Dispatch: p.rows workgroups, folded into x and y when above 65535.

const WG: u32 = 256u;

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WG>;

// Sum of every invocation's `v`; all invocations get the total.
fn workgroup_sum(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if lid < s {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform per workgroup, so the early return keeps the barriers uniform.
    let row = wid.x + wid.y * groups.x;
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    let n = f32(p.cols);
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        s += x[base + j];
    }
    let mean = workgroup_sum(s, lid) / n;
    var q = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        let d = x[base + j] - mean;
        q += d * d;
    }
    let inv = 1.0 / sqrt(workgroup_sum(q, lid) / n + p.eps);
    for (var j = lid; j < p.cols; j += WG) {
        out[base + j] = (x[base + j] - mean) * inv * gamma[j] + beta[j];
    }
}
