//! Dense layers on the CPU, `y = x W^T + b`, with `W` packed once at load.
//!
//! A Transformer on a short text is dominated by streaming its weight matrices: a general matrix product
//! (matrixmultiply, gemm) re-packs the weights on every call, which for 16 tokens costs as much as the
//! arithmetic. Here each matrix is packed once into panels of `NR` output columns, k-major, so a panel is
//! read front to back with unit stride, and a register-blocked micro-kernel computes `MR x NR` outputs per
//! pass over a panel:
//! - x86-64 with AVX2 and FMA (detected at run time): 6 x 16, twelve 8-wide accumulators;
//! - wasm32 with SIMD128: 4 x 8, eight 4-wide accumulators (multiply then add; wasm has no fused form);
//! - anything else: the same blocking in plain Rust.
//!
//! Natively, large products split their panels across the machine's cores (scoped threads, each filling
//! its own columns). In wasm everything runs on the calling thread.

use std::ops::Range;

#[cfg(target_arch = "x86_64")]
const NR: usize = 16;
#[cfg(not(target_arch = "x86_64"))]
const NR: usize = 8;
#[cfg(target_arch = "x86_64")]
const MR: usize = 6;
#[cfg(not(target_arch = "x86_64"))]
const MR: usize = 4;

/// Multiply-adds above which a native product is split across threads (starting one costs up to 0.1 ms).
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_MIN_MACS: usize = 16 << 20;

/// `W` (`[m, k]`, row-major as PyTorch stores it) in panels of `NR` rows of `W`, each stored k-major and
/// zero-padded to `NR`.
#[derive(Clone, Debug)]
pub struct PackedMatrix {
    k: usize,
    m: usize,
    data: Vec<f32>,
}

impl PackedMatrix {
    /// Packs `w` (`m * k` values). Returns `None` when the length does not match.
    pub fn new(w: &[f32], m: usize, k: usize) -> Option<PackedMatrix> {
        if w.len() != m.checked_mul(k)? {
            return None;
        }
        let panels = m.div_ceil(NR);
        let mut data = vec![0.0; panels * k * NR];
        for p in 0..panels {
            let panel = &mut data[p * k * NR..(p + 1) * k * NR];
            for j in 0..NR.min(m - p * NR) {
                let row = &w[(p * NR + j) * k..(p * NR + j + 1) * k];
                for (kk, &v) in row.iter().enumerate() {
                    panel[kk * NR + j] = v;
                }
            }
        }
        Some(PackedMatrix { k, m, data })
    }

    /// Input width.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output width.
    pub fn m(&self) -> usize {
        self.m
    }

    fn panels(&self) -> usize {
        self.m.div_ceil(NR)
    }

    fn panel(&self, p: usize) -> &[f32] {
        &self.data[p * self.k * NR..(p + 1) * self.k * NR]
    }
}

/// `y = x W^T + b`: `x` is `[n, k]`, `bias` `[m]`, and the result `[n, m]`, all row-major.
///
/// # Panics
/// When the lengths disagree with `n` and `w` (callers check shapes first).
pub fn linear(x: &[f32], n: usize, w: &PackedMatrix, bias: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), n * w.k, "x must be [n, k]");
    assert_eq!(bias.len(), w.m, "bias must be [m]");
    let mut y = vec![0.0; n * w.m];
    if n == 0 || w.m == 0 {
        return y;
    }
    let panels = w.panels();
    let threads = threads_for(n * w.k * w.m).min(panels);
    if threads <= 1 {
        compute(x, n, w, bias, 0..panels, &mut y, w.m);
        return y;
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let per = panels.div_ceil(threads);
        let ranges: Vec<Range<usize>> = (0..threads)
            .map(|t| (t * per).min(panels)..((t + 1) * per).min(panels))
            .filter(|r| !r.is_empty())
            .collect();
        let parts: Vec<(Range<usize>, Vec<f32>)> = std::thread::scope(|s| {
            let handles: Vec<_> = ranges[1..]
                .iter()
                .map(|r| {
                    let r = r.clone();
                    s.spawn(move || {
                        let cols = (r.end * NR).min(w.m) - r.start * NR;
                        let mut part = vec![0.0; n * cols];
                        compute(x, n, w, bias, r.clone(), &mut part, cols);
                        (r, part)
                    })
                })
                .collect();
            let r0 = ranges[0].clone();
            let cols = (r0.end * NR).min(w.m) - r0.start * NR;
            let mut part = vec![0.0; n * cols];
            compute(x, n, w, bias, r0.clone(), &mut part, cols);
            let mut parts = vec![(r0, part)];
            // A panicking worker can only mean a bug here; re-raise it on the caller's thread.
            parts.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
            );
            parts
        });
        for (r, part) in parts {
            let c0 = r.start * NR;
            let cols = (r.end * NR).min(w.m) - c0;
            for (i, row) in part.chunks_exact(cols).enumerate() {
                y[i * w.m + c0..i * w.m + c0 + cols].copy_from_slice(row);
            }
        }
    }
    y
}

#[cfg(not(target_arch = "wasm32"))]
fn threads_for(macs: usize) -> usize {
    if macs < PARALLEL_MIN_MACS {
        return 1;
    }
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(target_arch = "wasm32")]
fn threads_for(_macs: usize) -> usize {
    1
}

/// Panels `panels` of `x W^T + b` into `out` (`[n, out_cols]`), whose column 0 is the first panel's.
fn compute(
    x: &[f32],
    n: usize,
    w: &PackedMatrix,
    bias: &[f32],
    panels: Range<usize>,
    out: &mut [f32],
    out_cols: usize,
) {
    let k = w.k;
    let c0 = panels.start * NR;
    for p in panels {
        let panel = w.panel(p);
        for r0 in (0..n).step_by(MR) {
            let rows = MR.min(n - r0);
            // Missing rows of a short block repeat the first; their results are not stored.
            let row = |i: usize| {
                let r = r0 + if i < rows { i } else { 0 };
                &x[r * k..(r + 1) * k]
            };
            let a: [&[f32]; MR] = std::array::from_fn(row);
            let mut tile = [[0.0f32; NR]; MR];
            micro_kernel(&a, panel, &mut tile);
            for (i, t) in tile.iter().enumerate().take(rows) {
                for (j, &v) in t.iter().enumerate() {
                    let c = p * NR + j;
                    if c < w.m {
                        out[(r0 + i) * out_cols + c - c0] = v + bias[c];
                    }
                }
            }
        }
    }
}

/// `tile[i][j] = sum_k a[i][k] * panel[k * NR + j]`.
fn micro_kernel(a: &[&[f32]; MR], panel: &[f32], tile: &mut [[f32; NR]; MR]) {
    let k = a[0].len();
    debug_assert!(a.iter().all(|r| r.len() == k) && panel.len() == k * NR);
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked above); every row holds `k` values and the
            // panel `k * NR` (checked by the callers' slicing and asserted in debug builds).
            unsafe { x86::kernel_6x16(a, panel, tile) };
            return;
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        wasm::kernel_4x8(a, panel, tile);
        return;
    }
    #[allow(unreachable_code)]
    portable_kernel(a, panel, tile);
}

fn portable_kernel(a: &[&[f32]; MR], panel: &[f32], tile: &mut [[f32; NR]; MR]) {
    for (kk, b) in panel.chunks_exact(NR).enumerate() {
        for i in 0..MR {
            let av = a[i][kk];
            for j in 0..NR {
                tile[i][j] += av * b[j];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    static YES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *YES.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2 and FMA; every `a[i]` must hold `k` values and `panel` `k * NR`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel_6x16(a: &[&[f32]; MR], panel: &[f32], tile: &mut [[f32; NR]; MR]) {
        let k = a[0].len();
        let mut c = [[_mm256_setzero_ps(); 2]; MR];
        let b = panel.as_ptr();
        let rows: [*const f32; MR] = std::array::from_fn(|i| a[i].as_ptr());
        for kk in 0..k {
            // SAFETY: kk < k, so the reads stay inside each row and inside the panel.
            unsafe {
                let b0 = _mm256_loadu_ps(b.add(kk * NR));
                let b1 = _mm256_loadu_ps(b.add(kk * NR + 8));
                for i in 0..MR {
                    let av = _mm256_set1_ps(*rows[i].add(kk));
                    c[i][0] = _mm256_fmadd_ps(av, b0, c[i][0]);
                    c[i][1] = _mm256_fmadd_ps(av, b1, c[i][1]);
                }
            }
        }
        for i in 0..MR {
            // SAFETY: each tile row holds NR = 16 floats.
            unsafe {
                _mm256_storeu_ps(tile[i].as_mut_ptr(), c[i][0]);
                _mm256_storeu_ps(tile[i].as_mut_ptr().add(8), c[i][1]);
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use super::{MR, NR};
    use std::arch::wasm32::*;

    pub(super) fn kernel_4x8(a: &[&[f32]; MR], panel: &[f32], tile: &mut [[f32; NR]; MR]) {
        let mut c = [[f32x4_splat(0.0); 2]; MR];
        for (kk, b) in panel.chunks_exact(NR).enumerate() {
            // SAFETY: `b` holds NR = 8 floats; wasm loads need no alignment.
            let (b0, b1) = unsafe {
                (
                    v128_load(b.as_ptr() as *const v128),
                    v128_load(b.as_ptr().add(4) as *const v128),
                )
            };
            for i in 0..MR {
                let av = f32x4_splat(a[i][kk]);
                c[i][0] = f32x4_add(c[i][0], f32x4_mul(av, b0));
                c[i][1] = f32x4_add(c[i][1], f32x4_mul(av, b1));
            }
        }
        for i in 0..MR {
            // SAFETY: each tile row holds NR = 8 floats.
            unsafe {
                v128_store(tile[i].as_mut_ptr() as *mut v128, c[i][0]);
                v128_store(tile[i].as_mut_ptr().add(4) as *mut v128, c[i][1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn matches_a_plain_product_at_awkward_sizes() {
        let mut rng = Rng::new(9);
        for &(n, k, m) in &[
            (1, 1, 1),
            (5, 3, 17),
            (7, 33, 15),
            (13, 64, 16),
            (200, 96, 130),
            (64, 384, 1536),
        ] {
            let x: Vec<f32> = (0..n * k).map(|_| rng.normal()).collect();
            let w: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..m).map(|_| rng.normal()).collect();
            let y = linear(&x, n, &PackedMatrix::new(&w, m, k).unwrap(), &b);
            for i in 0..n {
                for j in 0..m {
                    let want: f64 = (0..k)
                        .map(|t| x[i * k + t] as f64 * w[j * k + t] as f64)
                        .sum::<f64>()
                        + b[j] as f64;
                    let got = y[i * m + j] as f64;
                    assert!(
                        (got - want).abs() <= 1e-5 * (k as f64).sqrt() * (1.0 + want.abs()),
                        "{n}x{k}x{m} at ({i}, {j}): {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn portable_kernel_agrees_with_the_simd_one() {
        let mut rng = Rng::new(10);
        let k = 37;
        let rows: Vec<Vec<f32>> = (0..MR)
            .map(|_| (0..k).map(|_| rng.normal()).collect())
            .collect();
        let a: [&[f32]; MR] = std::array::from_fn(|i| rows[i].as_slice());
        let panel: Vec<f32> = (0..k * NR).map(|_| rng.normal()).collect();
        let (mut t1, mut t2) = ([[0.0; NR]; MR], [[0.0; NR]; MR]);
        micro_kernel(&a, &panel, &mut t1);
        portable_kernel(&a, &panel, &mut t2);
        for i in 0..MR {
            for j in 0..NR {
                assert!((t1[i][j] - t2[i][j]).abs() <= 1e-4, "({i}, {j})");
            }
        }
    }

    #[test]
    fn rejects_a_wrong_length() {
        assert!(PackedMatrix::new(&[1.0; 5], 2, 3).is_none());
    }
}
