//! Exact streaming top-k with one total order shared by the CPU and GPU backends.
//!
//! A candidate is packed into one `u64` *rank key*: the high 32 bits are the order-preserving bits of its
//! score ([`score_key`]), the low 32 bits are the bitwise complement of its row. A larger rank key ranks
//! first, so ties in score go to the lower row: the deterministic tie-break.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Maps a score to a `u32` whose unsigned order is the float order. NaN maps to 0, which marks an empty
/// slot; every other value (including -inf) maps above 0. Mirrors `score_key` in `shaders/score_topk.wgsl`.
#[inline(always)]
pub fn score_key(s: f32) -> u32 {
    if s.is_nan() {
        return 0;
    }
    // -0.0 and +0.0 are the same score, so they must tie (and then break by row).
    let b = if s == 0.0 { 0 } else { s.to_bits() };
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Inverse of [`score_key`] for keys other than 0.
#[inline]
pub fn key_score(k: u32) -> f32 {
    if k & 0x8000_0000 != 0 {
        f32::from_bits(k & 0x7fff_ffff)
    } else {
        f32::from_bits(!k)
    }
}

/// Packs a score key and a row into a rank key.
#[inline(always)]
pub fn rank_key(key: u32, row: u32) -> u64 {
    ((key as u64) << 32) | (!row) as u64
}

/// Row of a rank key.
#[inline]
pub fn rank_row(rk: u64) -> u32 {
    !(rk as u32)
}

/// Score of a rank key.
#[inline]
pub fn rank_score(rk: u64) -> f32 {
    key_score((rk >> 32) as u32)
}

/// A bounded min-heap keeping the `cap` largest rank keys seen. Memory is `O(cap)`, whatever the stream.
#[derive(Debug)]
pub struct TopK {
    cap: usize,
    heap: BinaryHeap<Reverse<u64>>,
    /// The smallest kept rank key once full; 0 before (every real candidate is above 0).
    floor: u64,
}

impl TopK {
    pub fn new(cap: usize) -> TopK {
        TopK {
            cap,
            heap: BinaryHeap::with_capacity(cap.min(1 << 16) + 1),
            floor: 0,
        }
    }

    /// Candidates at or below this rank key cannot enter.
    #[inline(always)]
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Offers one candidate.
    #[inline]
    pub fn push(&mut self, rk: u64) {
        if rk <= self.floor || self.cap == 0 {
            return;
        }
        if self.heap.len() < self.cap {
            self.heap.push(Reverse(rk));
            if self.heap.len() == self.cap {
                self.floor = self.heap.peek().map_or(0, |r| r.0);
            }
        } else {
            if let Some(mut min) = self.heap.peek_mut() {
                *min = Reverse(rk);
            }
            self.floor = self.heap.peek().map_or(0, |r| r.0);
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The kept rank keys, best first.
    pub fn into_sorted(self) -> Vec<u64> {
        let mut v: Vec<u64> = self.heap.into_iter().map(|r| r.0).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_key_orders_like_floats() {
        let vals = [
            f32::NEG_INFINITY,
            -1e30,
            -2.5,
            -1.0,
            -f32::MIN_POSITIVE,
            -0.0,
            0.0,
            1e-40,
            0.5,
            3.0,
            f32::INFINITY,
        ];
        for w in vals.windows(2) {
            assert!(
                score_key(w[0]) < score_key(w[1]) || (w[0] == w[1]),
                "{} vs {}",
                w[0],
                w[1]
            );
            assert!(score_key(w[0]) > 0);
        }
        assert_eq!(score_key(f32::NAN), 0);
        for v in vals {
            assert_eq!(key_score(score_key(v)), v);
        }
        assert_eq!(score_key(-0.0), score_key(0.0), "signed zeros tie");
    }

    #[test]
    fn ties_go_to_the_lower_row() {
        let mut t = TopK::new(2);
        for row in 0..5 {
            t.push(rank_key(score_key(1.0), row));
        }
        let rows: Vec<u32> = t.into_sorted().into_iter().map(rank_row).collect();
        assert_eq!(rows, vec![0, 1]);
    }

    #[test]
    fn keeps_the_largest() {
        let mut t = TopK::new(3);
        let scores = [0.1f32, 0.9, -3.0, 0.5, 0.9, 2.0, 0.0];
        for (row, s) in scores.iter().enumerate() {
            t.push(rank_key(score_key(*s), row as u32));
        }
        let got: Vec<(u32, f32)> = t
            .into_sorted()
            .into_iter()
            .map(|k| (rank_row(k), rank_score(k)))
            .collect();
        assert_eq!(got, vec![(5, 2.0), (1, 0.9), (4, 0.9)]);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut t = TopK::new(0);
        t.push(rank_key(score_key(1.0), 0));
        assert!(t.is_empty());
    }
}
