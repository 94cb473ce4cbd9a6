//! The CPU twin of the Transformer ops: ndarray (matrixmultiply for the matrix products). It is the
//! fallback in browsers without WebGPU and the oracle for the GPU kernels.

use ndarray::{s, Array1, Array2, ArrayView2, Axis};

use crate::error::Result;
use crate::model::weights::{LinearWeights, NormWeights};
use crate::model::{NnBackend, Pooling};

/// The CPU backend for [`crate::model::Bert`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuNn;

/// `W^T` as `[in, out]` (so `x.dot(w)` is a plain product) and the bias `[out]`.
#[derive(Clone, Debug)]
pub struct CpuLinear {
    wt: Array2<f32>,
    b: Array1<f32>,
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
        Ok(CpuLinear {
            wt: matrix(&w.w, w.in_dim)
                .reversed_axes()
                .as_standard_layout()
                .into_owned(),
            b: Array1::from_vec(w.b.clone()),
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

    fn linear(&self, x: &Array2<f32>, l: &CpuLinear) -> Array2<f32> {
        let mut y = x.dot(&l.wt);
        y += &l.b;
        y
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
        x.mapv(|v| 0.5 * v * (1.0 + libm::erff(v * std::f32::consts::FRAC_1_SQRT_2)))
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
        let len = n / batch;
        let dh = hidden / heads;
        let scale = (dh as f32).sqrt();
        let mut out = Array2::zeros((n, hidden));
        for b in 0..batch {
            let rows = b * len..(b + 1) * len;
            let keep = &mask[rows.clone()];
            for h in 0..heads {
                let cols = h * dh..(h + 1) * dh;
                let qh: ArrayView2<f32> = q.slice(s![rows.clone(), cols.clone()]);
                let kh = k.slice(s![rows.clone(), cols.clone()]);
                let vh = v.slice(s![rows.clone(), cols.clone()]);
                let mut scores = qh.dot(&kh.t());
                for (i, mut row) in scores.axis_iter_mut(Axis(0)).enumerate() {
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
                        *s = (*s - max).exp();
                        sum += *s;
                    }
                    row.mapv_inplace(|s| s / sum);
                }
                out.slice_mut(s![rows.clone(), cols])
                    .assign(&scores.dot(&vh));
            }
        }
        out
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
