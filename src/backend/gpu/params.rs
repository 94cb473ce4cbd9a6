//! The `Params` uniform of every kernel (binding 0), mirrored field for field by a `#[repr(C)]` struct. A
//! unit test reads each shader's `struct Params` and checks the names and order against these.

use bytemuck::{Pod, Zeroable};

use crate::backend::kernels::Kernel;

/// A kernel's uniform parameters.
pub(super) trait KernelParams: Pod {
    /// The kernels whose `Params` this struct mirrors.
    const KERNELS: &'static [Kernel];
    /// Field names, in order, as the shaders spell them (checked by the tests below).
    #[cfg_attr(not(test), allow(dead_code))]
    const FIELDS: &'static [&'static str];
}

macro_rules! params {
    ($(#[$doc:meta])* $name:ident for [$($kernel:ident),+] { $($field:ident: $ty:ty),+ $(,)? }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
        pub(super) struct $name {
            $(pub $field: $ty),+
        }

        impl KernelParams for $name {
            const KERNELS: &'static [Kernel] = &[$(Kernel::$kernel),+];
            const FIELDS: &'static [&'static str] = &[$(stringify!($field)),+];
        }
    };
}

params! {
    /// `score_topk.wgsl`: one chunk of the catalogue and the request's scalars.
    ScoreTopkParams for [ScoreTopk] {
        chunk_start: u32,
        chunk_rows: u32,
        out_tile: u32,
        k: u32,
        row_words: u32,
        flags: u32,
        cat_allow_at: u32,
        cat_boost_at: u32,
        qscale: f32,
        pop_weight: f32,
        price_min: f32,
        price_max: f32,
        new_boost: f32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
    }
}

params! {
    /// `embed.wgsl`: `n` tokens of `hidden` values, `len` per sequence.
    EmbedParams for [Embed] { n: u32, hidden: u32, len: u32, _pad: u32 }
}

params! {
    /// `linear.wgsl`: `[n, k] x [m, k]^T`.
    LinearParams for [Linear] { n: u32, k: u32, m: u32, _pad: u32 }
}

params! {
    /// `layer_norm.wgsl`.
    LayerNormParams for [LayerNorm] { rows: u32, cols: u32, eps: f32, _pad: u32 }
}

params! {
    /// `add.wgsl` and `gelu.wgsl`: `n` elements.
    ElementwiseParams for [Add, Gelu] { n: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
}

params! {
    /// `attention.wgsl`: sequences of `len`, heads of `dh`, `scale = sqrt(dh)`.
    AttentionParams for [Attention] {
        len: u32,
        hidden: u32,
        dh: u32,
        causal: u32,
        scale: f32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

params! {
    /// `pool.wgsl`: `pooling` is 0 (mean), 1 (CLS) or 2 (last).
    PoolParams for [Pool] { len: u32, hidden: u32, pooling: u32, normalize: u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel's params struct: its kernels and field names.
    fn all() -> Vec<(&'static [Kernel], &'static [&'static str])> {
        fn of<P: KernelParams>() -> (&'static [Kernel], &'static [&'static str]) {
            (P::KERNELS, P::FIELDS)
        }
        vec![
            of::<ScoreTopkParams>(),
            of::<EmbedParams>(),
            of::<LinearParams>(),
            of::<LayerNormParams>(),
            of::<ElementwiseParams>(),
            of::<AttentionParams>(),
            of::<PoolParams>(),
        ]
    }

    /// The field names of `struct Params` in a WGSL source.
    fn wgsl_fields(src: &str) -> Vec<String> {
        let start = src.find("struct Params {").expect("a Params struct");
        let body = &src[start + "struct Params {".len()..];
        let body = &body[..body.find('}').expect("the struct's end")];
        body.lines()
            .map(|l| l.split("//").next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(|l| l.split(':').next().unwrap_or("").trim().to_string())
            .collect()
    }

    #[test]
    fn every_kernel_has_one_params_struct_that_matches_its_shader() {
        for &kernel in Kernel::ALL {
            let owners: Vec<_> = all()
                .into_iter()
                .filter(|(ks, _)| ks.contains(&kernel))
                .collect();
            assert_eq!(
                owners.len(),
                1,
                "{kernel:?} needs exactly one params struct"
            );
            let ours: Vec<String> = owners[0].1.iter().map(|s| s.to_string()).collect();
            assert_eq!(ours, wgsl_fields(kernel.source()), "{kernel:?}");
        }
    }

    #[test]
    fn uniforms_are_whole_16_byte_rows() {
        for size in [
            std::mem::size_of::<ScoreTopkParams>(),
            std::mem::size_of::<EmbedParams>(),
            std::mem::size_of::<LinearParams>(),
            std::mem::size_of::<LayerNormParams>(),
            std::mem::size_of::<ElementwiseParams>(),
            std::mem::size_of::<AttentionParams>(),
            std::mem::size_of::<PoolParams>(),
        ] {
            assert_eq!(size % 16, 0);
        }
    }
}
