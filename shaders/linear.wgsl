// linear: a dense layer, y = x W^T + b, with W row-major [out, in] as stored by PyTorch.
//
// Twin: `backend::cpu_nn::CpuNn::linear`; parity in tests/nn_parity.rs.
//
// Bindings (group 0):
//   0 uniform      p:    Params
//   1 storage r    x:    array<f32>  [p.n * p.k]
//   2 storage r    w:    array<f32>  [p.m * p.k]
//   3 storage r    bias: array<f32>  [p.m]
//   4 storage rw   y:    array<f32>  [p.n * p.m]
//
// Tiling: a workgroup of 16 x 16 invocations computes a 64 x 64 block of y, each invocation a 4 x 4
// block. Both operands go through workgroup memory in slices of 16 along k, stored k-major so the inner
// loop reads four consecutive values of each. Dispatch: (ceil(p.m / 64), ceil(p.n / 64)).

const BM: u32 = 64u;   // rows of y per workgroup
const BN: u32 = 64u;   // columns of y per workgroup
const BK: u32 = 16u;   // k per slice

struct Params {
    n: u32,  // rows of x and y
    k: u32,  // inner dimension
    m: u32,  // columns of y
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// [BK][BM] and [BK][BN]: slice index major.
var<workgroup> xs: array<f32, 1024>;
var<workgroup> ws: array<f32, 1024>;

// Four consecutive values of a workgroup array, as a vector.
fn xs4(at: u32) -> vec4<f32> {
    return vec4<f32>(xs[at], xs[at + 1u], xs[at + 2u], xs[at + 3u]);
}

fn ws4(at: u32) -> vec4<f32> {
    return vec4<f32>(ws[at], ws[at + 1u], ws[at + 2u], ws[at + 3u]);
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    // One accumulator per row of this invocation's 4 x 4 block, one lane per column. Named vectors, not
    // an indexed array: drivers keep them in registers.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // 256 invocations load 64 x 16 values of each operand, 16 consecutive k per row.
        for (var t = 0u; t < 4u; t++) {
            let e = li + t * 256u;
            let r = e / BK;
            let kk = e % BK;
            let gk = k0 + kk;
            var xv = 0.0;
            if row0 + r < p.n && gk < p.k {
                xv = x[(row0 + r) * p.k + gk];
            }
            xs[kk * BM + r] = xv;
            var wv = 0.0;
            if col0 + r < p.m && gk < p.k {
                wv = w[(col0 + r) * p.k + gk];
            }
            ws[kk * BN + r] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let a = xs4(kk * BM + lid.y * 4u);
            let b = ws4(kk * BN + lid.x * 4u);
            acc0 = fma(vec4<f32>(a.x), b, acc0);
            acc1 = fma(vec4<f32>(a.y), b, acc1);
            acc2 = fma(vec4<f32>(a.z), b, acc2);
            acc3 = fma(vec4<f32>(a.w), b, acc3);
        }
        workgroupBarrier();
    }
    let r = row0 + lid.y * 4u;
    let c = col0 + lid.x * 4u;
    store(r, c, acc0);
    store(r + 1u, c, acc1);
    store(r + 2u, c, acc2);
    store(r + 3u, c, acc3);
}

// Row `r` of y from column `c` on, plus the bias, where inside the output.
fn store(r: u32, c: u32, v: vec4<f32>) {
    if r >= p.n {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if c + j < p.m {
            y[r * p.m + c + j] = v[j] + bias[c + j];
        }
    }
}
