// gelu: exact GELU, 0.5 x (1 + erf(x / sqrt 2)), element-wise.
//
// Twin: `backend::cpu_nn::CpuNn::gelu` (libm's erff); parity in tests/nn_parity.rs.
//
// WGSL has no erf. This one is Abramowitz and Stegun's formula 7.1.26 (Handbook of Mathematical
// Functions, 1964), absolute error below 1.5e-7, so GELU differs from the CPU's by at most ~1e-7 |x|.
//
// Bindings (group 0):
//   0 uniform      p:   Params
//   1 storage r    x:   array<f32>  [p.n]
//   2 storage rw   out: array<f32>  [p.n]

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn erf(v: f32) -> f32 {
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(v) * (1.0 - poly * exp(-a * a));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if i < p.n {
        let v = x[i];
        out[i] = 0.5 * v * (1.0 + erf(v * 0.70710678118654752));
    }
}
