//! Final selection over a backend's candidates: MMR diversity and the per-category cap.

use std::collections::HashMap;

use super::topk::{rank_row, rank_score};
use super::Plan;
use crate::catalog::Catalog;

/// Outcome of [`select`].
#[derive(Debug, PartialEq)]
pub(crate) struct Selection {
    pub rows: Vec<u32>,
    pub scores: Vec<f32>,
    /// False when the per-category cap left fewer than `k` results *and* more candidates might exist:
    /// the caller must fetch more candidates and select again.
    pub complete: bool,
}

/// Picks up to `plan.k` results from `cands` (rank keys, best first). `exhaustive` says that `cands` holds
/// every eligible item, so running short is final.
pub(crate) fn select(catalog: &Catalog, plan: &Plan, cands: &[u64], exhaustive: bool) -> Selection {
    let mut out = Selection {
        rows: Vec::with_capacity(plan.k),
        scores: Vec::with_capacity(plan.k),
        complete: true,
    };
    let mut per_cat: HashMap<u32, usize> = HashMap::new();
    let capped = |per_cat: &HashMap<u32, usize>, row: u32| match (
        plan.cap,
        catalog.category(row as usize),
    ) {
        (Some(cap), Some(c)) => per_cat.get(&c).copied().unwrap_or(0) >= cap,
        _ => false,
    };
    let take = |out: &mut Selection, per_cat: &mut HashMap<u32, usize>, rk: u64| {
        let row = rank_row(rk);
        if plan.cap.is_some() {
            if let Some(c) = catalog.category(row as usize) {
                *per_cat.entry(c).or_insert(0) += 1;
            }
        }
        out.rows.push(row);
        out.scores.push(rank_score(rk));
    };

    match plan.mmr_lambda {
        None | Some(1.0) => {
            for &rk in cands {
                if out.rows.len() == plan.k {
                    break;
                }
                if !capped(&per_cat, rank_row(rk)) {
                    take(&mut out, &mut per_cat, rk);
                }
            }
        }
        Some(lambda) => {
            // Relevance is min-max normalised over the candidates so that it is on the same [0, 1]-ish
            // scale as cosine similarity; the order of equal MMR values is the candidate order.
            let dim = catalog.dim();
            let n = cands.len();
            let rel: Vec<f32> = cands.iter().map(|&rk| rank_score(rk)).collect();
            let (lo, hi) = rel
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &s| {
                    (lo.min(s), hi.max(s))
                });
            let span = hi - lo;
            let rel: Vec<f32> = rel
                .iter()
                .map(|&s| {
                    if span > 0.0 && span.is_finite() {
                        (s - lo) / span
                    } else {
                        1.0
                    }
                })
                .collect();
            let mut vecs = vec![0f32; n * dim];
            for (i, &rk) in cands.iter().enumerate() {
                let v = &mut vecs[i * dim..(i + 1) * dim];
                catalog.row_f32(rank_row(rk) as usize, v);
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|x| *x /= norm);
                }
            }
            // max_sim[i]: largest cosine between candidate i and anything selected so far.
            let mut max_sim = vec![f32::NEG_INFINITY; n];
            let mut used = vec![false; n];
            while out.rows.len() < plan.k {
                let mut best: Option<(usize, f32)> = None;
                for i in 0..n {
                    if used[i] || capped(&per_cat, rank_row(cands[i])) {
                        continue;
                    }
                    let penalty = if max_sim[i] == f32::NEG_INFINITY {
                        0.0
                    } else {
                        max_sim[i]
                    };
                    let v = lambda * rel[i] - (1.0 - lambda) * penalty;
                    if best.is_none_or(|(_, b)| v > b) {
                        best = Some((i, v));
                    }
                }
                let Some((i, _)) = best else { break };
                used[i] = true;
                take(&mut out, &mut per_cat, cands[i]);
                let vi = &vecs[i * dim..(i + 1) * dim];
                for j in 0..n {
                    if !used[j] {
                        let vj = &vecs[j * dim..(j + 1) * dim];
                        let c: f32 = vi.iter().zip(vj).map(|(a, b)| a * b).sum();
                        max_sim[j] = max_sim[j].max(c);
                    }
                }
            }
            // MMR works on its candidate pool by definition; only the cap can ask for more.
            if plan.cap.is_some() && out.rows.len() < plan.k && !exhaustive {
                out.complete = false;
            }
            return out;
        }
    }
    if out.rows.len() < plan.k && !exhaustive && plan.cap.is_some() {
        out.complete = false;
    }
    out
}
