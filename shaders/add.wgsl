// add: element-wise sum of two tensors of the same shape (the residual connections).
//
// Twin: `backend::cpu_nn::CpuNn::add`; parity in tests/nn_parity.rs.
//
// Bindings (group 0):
//   0 uniform      p:   Params
//   1 storage r    a:   array<f32>  [p.n]
//   2 storage r    b:   array<f32>  [p.n]
//   3 storage rw   out: array<f32>  [p.n]

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if i < p.n {
        out[i] = a[i] + b[i];
    }
}
