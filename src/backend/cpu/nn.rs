//! The CPU twin of the Transformer ops: dense layers on [`gemm`](super::gemm) (weights packed once, SIMD
//! micro-kernels), the rest on ndarray. It is the fallback in browsers without WebGPU and the oracle for
//! the GPU kernels.

use ndarray::{Array1, Array2};

use super::fastmath;
use super::gemm::{self, PackedMatrix};
use crate::error::{Error, Result};
use crate::model::weights::{LinearWeights, NormWeights};
use crate::model::{NnBackend, Pooling};

/// The CPU backend for [`crate::model::Bert`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuNn;

/// `W` packed for [`gemm::linear`] and the bias `[out]`.
#[derive(Clone, Debug)]
pub struct CpuLinear {
    w: PackedMatrix,
    b: Vec<f32>,
}

#[derive(Clone, Debug)]
pub struct CpuNorm {
    gamma: Array1<f32>,
    beta: Array1<f32>,
    eps: f32,
}

fn matrix(v: &[f32], cols: usize) -> Array2<f32> {
    Array2::from_shape_vec((v.len() / cols, cols), v.to_vec())
        .unwrap_or_else(|_| Array2::zeros((0, cols)))
}

impl NnBackend for CpuNn {
    type Tensor = Array2<f32>;
    type Linear = CpuLinear;
    type Norm = CpuNorm;
    type Table = Array2<f32>;

    fn upload_linear(&self, w: &LinearWeights) -> Result<CpuLinear> {
        let packed = PackedMatrix::new(&w.w, w.out_dim, w.in_dim)
            .filter(|_| w.b.len() == w.out_dim)
            .ok_or_else(|| {
                Error::invalid(
                    "weights",
                    format!(
                        "a dense layer's values do not make [{}, {}]",
                        w.out_dim, w.in_dim
                    ),
                )
            })?;
        Ok(CpuLinear {
            w: packed,
            b: w.b.clone(),
        })
    }

    fn upload_norm(&self, n: &NormWeights, eps: f32) -> Result<CpuNorm> {
        Ok(CpuNorm {
            gamma: Array1::from_vec(n.gamma.clone()),
            beta: Array1::from_vec(n.beta.clone()),
            eps,
        })
    }

    fn upload_table(&self, t: &[f32], cols: usize) -> Result<Array2<f32>> {
        Ok(matrix(t, cols))
    }

    fn embed(
        &self,
        word: &Array2<f32>,
        position: &Array2<f32>,
        token_type: &Array2<f32>,
        ids: &[u32],
        type_ids: &[u32],
        len: usize,
    ) -> Array2<f32> {
        let h = word.ncols();
        let mut x = Array2::zeros((ids.len(), h));
        for (r, mut row) in x.rows_mut().into_iter().enumerate() {
            let (w, t, p) = (
                word.row(ids[r] as usize),
                token_type.row(type_ids[r] as usize),
                position.row(r % len),
            );
            for j in 0..h {
                // (word + type) + position, the order of the reference implementations.
                row[j] = (w[j] + t[j]) + p[j];
            }
        }
        x
    }

    fn tensor(&self, values: &[f32], cols: usize) -> Result<Array2<f32>> {
        if cols == 0 || !values.len().is_multiple_of(cols) {
            return Err(Error::invalid(
                "values",
                format!("{} values do not make rows of {cols}", values.len()),
            ));
        }
        Array2::from_shape_vec((values.len() / cols, cols), values.to_vec())
            .map_err(|e| Error::invalid("values", e.to_string()))
    }

    fn linear(&self, x: &Array2<f32>, l: &CpuLinear) -> Array2<f32> {
        let n = x.nrows();
        let x = x.as_standard_layout();
        let y = match x.as_slice() {
            Some(xs) if x.ncols() == l.w.k() => gemm::linear(xs, n, &l.w, &l.b),
            // Shapes come from the validated config, so this does not happen; stay total anyway.
            _ => vec![0.0; n * l.w.m()],
        };
        Array2::from_shape_vec((n, l.w.m()), y).unwrap_or_else(|_| Array2::zeros((n, l.w.m())))
    }

    fn layer_norm(&self, x: &Array2<f32>, n: &CpuNorm) -> Array2<f32> {
        let h = x.ncols() as f32;
        let mut y = x.clone();
        for mut row in y.rows_mut() {
            let mean = row.sum() / h;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h;
            let inv = 1.0 / (var + n.eps).sqrt();
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - mean) * inv * n.gamma[j] + n.beta[j];
            }
        }
        y
    }

    fn add(&self, a: &Array2<f32>, b: &Array2<f32>) -> Array2<f32> {
        a + b
    }

    fn gelu(&self, x: &Array2<f32>) -> Array2<f32> {
        x.mapv(fastmath::gelu)
    }

    fn attention(
        &self,
        q: &Array2<f32>,
        k: &Array2<f32>,
        v: &Array2<f32>,
        mask: &[u32],
        batch: usize,
        heads: usize,
        causal: bool,
    ) -> Array2<f32> {
        let (n, hidden) = q.dim();
        let len = n / batch.max(1);
        let dh = hidden / heads.max(1);
        let (q, k, v) = (
            q.as_standard_layout(),
            k.as_standard_layout(),
            v.as_standard_layout(),
        );
        let (Some(q), Some(k), Some(v)) = (q.as_slice(), k.as_slice(), v.as_slice()) else {
            return Array2::zeros((n, hidden));
        };
        let mut out = vec![0.0f32; n * hidden];
        // One (sequence, head) pair per job; jobs write disjoint columns of disjoint rows, gathered below.
        let jobs: Vec<(usize, usize)> = (0..batch)
            .flat_map(|b| (0..heads).map(move |h| (b, h)))
            .collect();
        let run = |&(b, h): &(usize, usize)| -> Vec<f32> {
            let rows = b * len..(b + 1) * len;
            head_attention(
                q,
                k,
                v,
                hidden,
                rows,
                h * dh..(h + 1) * dh,
                &mask[b * len..(b + 1) * len],
                causal,
            )
        };
        let results = par_map(&jobs, len * len * dh * heads * batch, run);
        for (&(b, h), r) in jobs.iter().zip(results) {
            for (i, row) in r.chunks_exact(dh).enumerate() {
                let at = (b * len + i) * hidden + h * dh;
                out[at..at + dh].copy_from_slice(row);
            }
        }
        Array2::from_shape_vec((n, hidden), out).unwrap_or_else(|_| Array2::zeros((n, hidden)))
    }

    fn pool(
        &self,
        x: &Array2<f32>,
        mask: &[u32],
        batch: usize,
        pooling: Pooling,
        normalize: bool,
    ) -> Array2<f32> {
        let (n, h) = x.dim();
        let len = n / batch;
        let mut out = Array2::zeros((batch, h));
        for b in 0..batch {
            let keep = &mask[b * len..(b + 1) * len];
            let mut row = out.row_mut(b);
            match pooling {
                Pooling::Cls => row.assign(&x.row(b * len)),
                Pooling::Last => {
                    let last = keep.iter().rposition(|&m| m != 0).unwrap_or(0);
                    row.assign(&x.row(b * len + last));
                }
                Pooling::Mean => {
                    let mut count = 0.0;
                    for (t, &m) in keep.iter().enumerate() {
                        if m != 0 {
                            row += &x.row(b * len + t);
                            count += 1.0;
                        }
                    }
                    row.mapv_inplace(|v| v / f32::max(count, 1.0));
                }
            }
            if normalize {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                row.mapv_inplace(|v| v / norm);
            }
        }
        out
    }

    async fn read(&self, x: &Array2<f32>) -> Result<Vec<f32>> {
        Ok(x.iter().copied().collect())
    }
}

/// Softmax attention of one head of one sequence: `[len, dh]`, row-major.
#[allow(clippy::too_many_arguments)]
fn head_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    hidden: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    keep: &[u32],
    causal: bool,
) -> Vec<f32> {
    let (len, dh) = (rows.len(), cols.len());
    let gather = |t: &[f32]| -> Vec<f32> {
        rows.clone()
            .flat_map(|r| {
                t[r * hidden + cols.start..r * hidden + cols.end]
                    .iter()
                    .copied()
            })
            .collect()
    };
    let (qh, kh, vh) = (gather(q), gather(k), gather(v));
    let zero_len = vec![0.0; len];
    let zero_dh = vec![0.0; dh];
    // scores = q k^T: k's rows are the "weights" of a dense layer with `len` outputs.
    let (Some(kp), Some(vt)) = (
        PackedMatrix::new(&kh, len, dh),
        PackedMatrix::new(&transpose(&vh, len, dh), dh, len),
    ) else {
        return vec![0.0; len * dh];
    };
    let mut scores = gemm::linear(&qh, len, &kp, &zero_len);
    let scale = (dh as f32).sqrt();
    for (i, row) in scores.chunks_exact_mut(len).enumerate() {
        let mut max = f32::NEG_INFINITY;
        for (j, s) in row.iter_mut().enumerate() {
            if keep[j] == 0 || (causal && j > i) {
                *s = f32::NEG_INFINITY;
            } else {
                *s /= scale;
                max = max.max(*s);
            }
        }
        if max == f32::NEG_INFINITY {
            // Nothing to attend to (a causal row before the first real token): no signal.
            row.fill(0.0);
            continue;
        }
        let mut sum = 0.0;
        for s in row.iter_mut() {
            *s = fastmath::exp(*s - max);
            sum += *s;
        }
        for s in row.iter_mut() {
            *s /= sum;
        }
    }
    // weights v: v^T's rows are the "weights" of a dense layer with `dh` outputs.
    gemm::linear(&scores, len, &vt, &zero_dh)
}

fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

/// `items.map(f)`, split across the machine's cores natively when `work` (a rough operation count) is large
/// enough to pay for the threads; in order, on the calling thread otherwise and in wasm.
fn par_map<T: Sync, R: Send>(items: &[T], work: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads > 1 && items.len() > 1 && work >= 1 << 20 {
            let per = items.len().div_ceil(threads);
            return std::thread::scope(|s| {
                let f = &f;
                let handles: Vec<_> = items
                    .chunks(per)
                    .skip(1)
                    .map(|c| s.spawn(move || c.iter().map(f).collect::<Vec<R>>()))
                    .collect();
                let mut out: Vec<R> = items[..per.min(items.len())].iter().map(f).collect();
                for h in handles {
                    out.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
                }
                out
            });
        }
    }
    let _ = work;
    items.iter().map(f).collect()
}
