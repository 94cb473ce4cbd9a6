// embed: the input of a BERT encoder, word + token type + position embeddings of every token.
//
// Twin: `backend::cpu_nn::CpuNn::embed`; parity in tests/nn_parity.rs.
//
// Bindings (group 0):
//   0 uniform      p:        Params
//   1 storage r    tokens:   array<u32>  [2 * p.n]  token ids, then token type ids
//   2 storage r    word:     array<f32>  [vocab * p.hidden]
//   3 storage r    position: array<f32>  [positions * p.hidden]
//   4 storage r    types:    array<f32>  [type_vocab * p.hidden]
//   5 storage rw   out:      array<f32>  [p.n * p.hidden]
//
// Token `r` sits at position `r % p.len`. The host checks ids against the table sizes.

struct Params {
    n: u32,       // tokens (batch * len)
    hidden: u32,
    len: u32,     // tokens per sequence
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> word: array<f32>;
@group(0) @binding(3) var<storage, read> position: array<f32>;
@group(0) @binding(4) var<storage, read> types: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if i >= p.n * p.hidden {
        return;
    }
    let r = i / p.hidden;
    let j = i % p.hidden;
    let w = word[tokens[r] * p.hidden + j];
    let t = types[tokens[p.n + r] * p.hidden + j];
    // (word + type) + position: the order of the reference implementations, and of the CPU twin.
    out[i] = (w + t) + position[(r % p.len) * p.hidden + j];
}
