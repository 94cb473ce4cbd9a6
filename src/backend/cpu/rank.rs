//! The CPU backend: streams every row once, scores a block at a time, and keeps a bounded heap.
//!
//! It is the runtime path when WebGPU is missing or not worth it, and the oracle the GPU kernel is tested
//! against. In the browser the dot products use wasm SIMD128; natively they are plain loops that LLVM
//! vectorises.

use crate::catalog::Catalog;
use crate::error::Result;
use crate::rank::topk::{rank_key, rank_score, score_key, TopK};
use crate::rank::{flags, Backend, Plan, RankBackend};
use crate::shard::{Rows, Shard};

/// Rows scored per block before the heap sees them.
const BLOCK: usize = 1024;

/// Returns the best `m` candidates of the whole catalogue as rank keys, best first.
/// Ranking on the CPU: a SIMD scan of every shard ([`scan`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuRank;

impl RankBackend for CpuRank {
    fn backend(&self) -> Backend {
        Backend::Cpu
    }

    fn max_candidates(&self) -> usize {
        usize::MAX
    }

    async fn candidates(&self, catalog: &Catalog, plan: &Plan, m: usize) -> Result<Vec<u64>> {
        Ok(scan(catalog, plan, m))
    }
}

pub(crate) fn scan(catalog: &Catalog, plan: &Plan, m: usize) -> Vec<u64> {
    let mut top = TopK::new(m);
    let mut base = [0f32; BLOCK];
    let adjusts = plan.flags & (flags::POP | flags::NEW | flags::BOOST) != 0;
    // Scores below the heap's floor cannot enter: one float compare rejects most rows.
    let mut floor = f32::NEG_INFINITY;
    for (si, shard) in catalog.shards.iter().enumerate() {
        let start = catalog.starts[si];
        let mut from = 0;
        while from < shard.len {
            let to = (from + BLOCK).min(shard.len);
            let block = &mut base[..to - from];
            block_scores(shard, plan, from, to, block);
            if adjusts {
                adjust(shard, plan, from, block);
            }
            for (i, &s) in block.iter().enumerate() {
                // `>=`, not `>`: an equal score may still win on row order; the rank key decides. NaN fails.
                if s >= floor {
                    let (r, g) = (from + i, start + from + i);
                    let rk = rank_key(score_key(s), g as u32);
                    if rk > top.floor() && plan.mask_ok(g) && passes(shard, plan, r) {
                        top.push(rk);
                        if top.len() == m {
                            floor = rank_score(top.floor());
                        }
                    }
                }
            }
            from = to;
        }
    }
    top.into_sorted()
}

/// Adds popularity, the new-item boost and category boosts to the scores of rows
/// `from..from + out.len()`, in the shader's operation order.
fn adjust(shard: &Shard, plan: &Plan, from: usize, out: &mut [f32]) {
    let rows = from..from + out.len();
    if plan.flags & flags::POP != 0 {
        if let Some(p) = &shard.popularity {
            for (s, &p) in out.iter_mut().zip(&p[rows.clone()]) {
                *s += plan.pop_weight * p;
            }
        }
    }
    if plan.flags & flags::NEW != 0 {
        if let Some(p) = &shard.popularity {
            for (s, _) in out
                .iter_mut()
                .zip(&p[rows.clone()])
                .filter(|(_, &p)| p == 0.0)
            {
                *s += plan.new_boost;
            }
        }
    }
    if plan.flags & flags::BOOST != 0 {
        if let Some(c) = &shard.category {
            for (s, &c) in out.iter_mut().zip(&c[rows]) {
                *s += plan.cat_boost[c as usize];
            }
        }
    }
}

/// Attribute filters of row `r` (the row mask is checked by the caller).
#[inline(always)]
fn passes(shard: &Shard, plan: &Plan, r: usize) -> bool {
    let f = plan.flags;
    if f & flags::STOCK != 0 && shard.in_stock.as_ref().is_some_and(|s| s[r] == 0) {
        return false;
    }
    if f & flags::CATS != 0 {
        match &shard.category {
            Some(c) => {
                let c = c[r];
                if (plan.cat_allow[(c >> 5) as usize] >> (c & 31)) & 1 == 0 {
                    return false;
                }
            }
            None => return false,
        }
    }
    if f & flags::PRICE != 0 {
        match &shard.price {
            Some(p) => {
                let p = p[r];
                if !(p >= plan.price[0] && p <= plan.price[1]) {
                    return false;
                }
            }
            None => return false,
        }
    }
    true
}

/// Base scores (`dot * row_scale`) of rows `from..to` of `shard` into `out`.
fn block_scores(shard: &Shard, plan: &Plan, from: usize, to: usize, out: &mut [f32]) {
    let d = shard.meta.dim;
    match &shard.rows {
        Rows::F32(v) => dot_f32(&v[from * d..to * d], d, &plan.q, out),
        Rows::F16(v) => dot_f16(&v[from * d..to * d], d, &plan.q, out),
        Rows::I8(v) => {
            let scales = shard.scales.as_deref().unwrap_or(&[]);
            scores_i8(
                &v[from * d..to * d],
                d,
                &plan.q8,
                plan.qscale,
                &scales[from..to],
                out,
            );
        }
    }
}

/// Scores of int8 rows `[n, d]` against the int8 query `q [d]`: `(f32(dot) * qscale) * scales[row]`, the
/// integer dot product exact for any values (-128 included).
pub fn scores_i8(rows: &[i8], d: usize, q: &[i8], qscale: f32, scales: &[f32], out: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if d.is_multiple_of(16) {
        return simd::scores_i8(rows, d, q, qscale, scales, out);
    }
    #[cfg(target_arch = "x86_64")]
    if d.is_multiple_of(16) && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked at run time).
        return unsafe { x86::scores_i8_avx2(rows, d, q, qscale, scales, out) };
    }
    let mut acc = [0i32; BLOCK];
    let blocks = out
        .chunks_mut(BLOCK)
        .zip(rows.chunks(BLOCK * d))
        .zip(scales.chunks(BLOCK));
    for ((o, chunk), sc) in blocks {
        let acc = &mut acc[..o.len()];
        dot_i8(chunk, d, q, acc);
        for ((o, &a), &s) in o.iter_mut().zip(acc.iter()).zip(sc) {
            *o = a as f32 * qscale * s;
        }
    }
}

/// Integer dot products of int8 rows `[n, d]` with `q [d]`: exact, in `i32`.
pub fn dot_i8(rows: &[i8], d: usize, q: &[i8], out: &mut [i32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd::dot_i8(rows, d, q, out)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(d)) {
            *o = row.iter().zip(q).map(|(&a, &b)| a as i32 * b as i32).sum();
        }
    }
}

/// f32 dot products of rows `[n, d]` with `q [d]`.
pub fn dot_f32(rows: &[f32], d: usize, q: &[f32], out: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd::dot_f32(rows, d, q, out)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(d)) {
            *o = dot8(row, q);
        }
    }
}

/// Dot product with eight running sums, so LLVM can keep them in vector lanes.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Exact conversion of a finite IEEE half (normal or subnormal) to f32, without branches.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let mag = f32::from_bits(((h & 0x7fff) as u32) << 13) * f32::from_bits(0x7780_0000); // * 2^112
    f32::from_bits(mag.to_bits() | (((h & 0x8000) as u32) << 16))
}

/// f16 rows `[n, d]` (raw bits) against an f32 query `[d]`.
pub fn dot_f16(rows: &[u16], d: usize, q: &[f32], out: &mut [f32]) {
    let mut buf = vec![0f32; d];
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(d)) {
        for (b, &h) in buf.iter_mut().zip(row) {
            *b = f16_to_f32(h);
        }
        let mut tmp = [0f32];
        dot_f32(&buf, d, q, &mut tmp);
        *o = tmp[0];
    }
}

/// Native x86-64: the same four-rows-at-a-time scheme as the wasm kernel, on 256-bit AVX2 registers.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2, and `d` must be a multiple of 16 with `rows.len() == out.len() * d`,
    /// `q.len() == d`, `scales.len() >= out.len()`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn scores_i8_avx2(
        rows: &[i8],
        d: usize,
        q: &[i8],
        qscale: f32,
        scales: &[f32],
        out: &mut [f32],
    ) {
        let chunks = d / 16;
        let qw: Vec<__m256i> = (0..chunks)
            .map(|c| {
                _mm256_cvtepi8_epi16(_mm_loadu_si128(q.as_ptr().add(c * 16) as *const __m128i))
            })
            .collect();
        let qs = _mm_set1_ps(qscale);
        let n = out.len();
        let row_dot = |r: usize| {
            let mut acc = _mm256_setzero_si256();
            for (c, &qc) in qw.iter().enumerate() {
                let v = _mm256_cvtepi8_epi16(_mm_loadu_si128(
                    rows.as_ptr().add(r * d + c * 16) as *const __m128i
                ));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(v, qc));
            }
            acc
        };
        let mut r = 0;
        while r + 4 <= n {
            let h01 = _mm256_hadd_epi32(row_dot(r), row_dot(r + 1));
            let h23 = _mm256_hadd_epi32(row_dot(r + 2), row_dot(r + 3));
            let h = _mm256_hadd_epi32(h01, h23);
            let dots = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            let sc = _mm_loadu_ps(scales.as_ptr().add(r));
            _mm_storeu_ps(
                out.as_mut_ptr().add(r),
                _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(dots), qs), sc),
            );
            r += 4;
        }
        for r in r..n {
            let row = &rows[r * d..(r + 1) * d];
            let dot: i32 = row.iter().zip(q).map(|(&a, &b)| a as i32 * b as i32).sum();
            out[r] = dot as f32 * qscale * scales[r];
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    /// One row at a time, any values: each 16-byte slice is widened to i16 and multiplied pairwise into i32
    /// lanes.
    pub fn dot_i8(rows: &[i8], d: usize, q: &[i8], out: &mut [i32]) {
        let chunks = d / 16;
        let tail = chunks * 16;
        // Widened query halves, computed once.
        let mut qw: Vec<(v128, v128)> = Vec::with_capacity(chunks);
        for c in 0..chunks {
            // SAFETY: c * 16 + 16 <= d == q.len(); v128_load has no alignment requirement.
            let v = unsafe { v128_load(q.as_ptr().add(c * 16) as *const v128) };
            qw.push((i16x8_extend_low_i8x16(v), i16x8_extend_high_i8x16(v)));
        }
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(d)) {
            let mut acc = i32x4_splat(0);
            for (c, &(ql, qh)) in qw.iter().enumerate() {
                // SAFETY: the row has d bytes and c * 16 + 16 <= d.
                let v = unsafe { v128_load(row.as_ptr().add(c * 16) as *const v128) };
                acc = i32x4_add(acc, i32x4_dot_i16x8(i16x8_extend_low_i8x16(v), ql));
                acc = i32x4_add(acc, i32x4_dot_i16x8(i16x8_extend_high_i8x16(v), qh));
            }
            let mut s = i32x4_extract_lane::<0>(acc)
                + i32x4_extract_lane::<1>(acc)
                + i32x4_extract_lane::<2>(acc)
                + i32x4_extract_lane::<3>(acc);
            for j in tail..d {
                s += row[j] as i32 * q[j] as i32;
            }
            *o = s;
        }
    }

    /// Four rows at a time (`d` a multiple of 16): per 16 bytes, the row is widened to i16 and multiplied
    /// pairwise into i32 lanes (`i32x4.dot_i16x8_s`, one `pmaddwd` on x86); a 4x4 transpose-add then gives
    /// the four dot products in one vector, converted and scaled in the same order as the scalar path.
    pub fn scores_i8(
        rows: &[i8],
        d: usize,
        q: &[i8],
        qscale: f32,
        scales: &[f32],
        out: &mut [f32],
    ) {
        // Common widths get a fully unrolled body with the query held in registers.
        match d {
            32 => scores_i8_n::<2>(rows, q, qscale, scales, out),
            64 => scores_i8_n::<4>(rows, q, qscale, scales, out),
            128 => scores_i8_n::<8>(rows, q, qscale, scales, out),
            _ => scores_i8_any(rows, d, q, qscale, scales, out),
        }
    }

    #[inline(always)]
    fn load(p: &[i8], at: usize) -> v128 {
        debug_assert!(at + 16 <= p.len());
        // SAFETY: callers keep at + 16 <= p.len(); v128_load has no alignment requirement.
        unsafe { v128_load(p.as_ptr().add(at) as *const v128) }
    }

    /// Dot products of four rows starting at byte `at`, rows `d` bytes apart, as one i32x4. `qv` holds the
    /// query widened to i16: two vectors per 16 bytes.
    #[inline(always)]
    fn dot4(rows: &[i8], at: usize, d: usize, qv: &[(v128, v128)]) -> v128 {
        let mut acc = [i32x4_splat(0); 4];
        for (c, &(ql, qh)) in qv.iter().enumerate() {
            for (j, a) in acc.iter_mut().enumerate() {
                let v = load(rows, at + j * d + c * 16);
                *a = i32x4_add(*a, i32x4_dot_i16x8(i16x8_extend_low_i8x16(v), ql));
                *a = i32x4_add(*a, i32x4_dot_i16x8(i16x8_extend_high_i8x16(v), qh));
            }
        }
        let s01 = i32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(acc[0], acc[1]),
            i32x4_shuffle::<2, 6, 3, 7>(acc[0], acc[1]),
        );
        let s23 = i32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(acc[2], acc[3]),
            i32x4_shuffle::<2, 6, 3, 7>(acc[2], acc[3]),
        );
        i32x4_add(
            i32x4_shuffle::<0, 1, 4, 5>(s01, s23),
            i32x4_shuffle::<2, 3, 6, 7>(s01, s23),
        )
    }

    #[inline(always)]
    fn widen(q: &[i8], c: usize) -> (v128, v128) {
        let v = load(q, c * 16);
        (i16x8_extend_low_i8x16(v), i16x8_extend_high_i8x16(v))
    }

    #[inline(always)]
    fn store_scores(dots: v128, qs: v128, scales: &[f32], out: &mut [f32], r: usize) {
        assert!(r + 4 <= out.len() && r + 4 <= scales.len());
        // SAFETY: checked just above.
        unsafe {
            let sc = v128_load(scales.as_ptr().add(r) as *const v128);
            let v = f32x4_mul(f32x4_mul(f32x4_convert_i32x4(dots), qs), sc);
            v128_store(out.as_mut_ptr().add(r) as *mut v128, v);
        }
    }

    fn tail(
        rows: &[i8],
        d: usize,
        q: &[i8],
        qscale: f32,
        scales: &[f32],
        out: &mut [f32],
        from: usize,
    ) {
        let n = out.len();
        let mut acc = [0i32; 4];
        dot_i8(&rows[from * d..n * d], d, q, &mut acc[..n - from]);
        for ((o, &a), &s) in out[from..].iter_mut().zip(&acc).zip(&scales[from..]) {
            *o = a as f32 * qscale * s;
        }
    }

    fn scores_i8_n<const C: usize>(
        rows: &[i8],
        q: &[i8],
        qscale: f32,
        scales: &[f32],
        out: &mut [f32],
    ) {
        let qv: [(v128, v128); C] = std::array::from_fn(|c| widen(q, c));
        scores_with(rows, C * 16, q, &qv, qscale, scales, out);
    }

    fn scores_i8_any(
        rows: &[i8],
        d: usize,
        q: &[i8],
        qscale: f32,
        scales: &[f32],
        out: &mut [f32],
    ) {
        let qv: Vec<(v128, v128)> = (0..d / 16).map(|c| widen(q, c)).collect();
        scores_with(rows, d, q, &qv, qscale, scales, out);
    }

    /// The shared body: inlined into each caller, so a fixed-size `qv` unrolls.
    #[inline(always)]
    fn scores_with(
        rows: &[i8],
        d: usize,
        q: &[i8],
        qv: &[(v128, v128)],
        qscale: f32,
        scales: &[f32],
        out: &mut [f32],
    ) {
        let qs = f32x4_splat(qscale);
        let n = out.len();
        let mut r = 0;
        while r + 4 <= n {
            store_scores(dot4(rows, r * d, d, qv), qs, scales, out, r);
            r += 4;
        }
        tail(rows, d, q, qscale, scales, out, r);
    }

    pub fn dot_f32(rows: &[f32], d: usize, q: &[f32], out: &mut [f32]) {
        let chunks = d / 4;
        let tail = chunks * 4;
        for (o, row) in out.iter_mut().zip(rows.chunks_exact(d)) {
            let mut a0 = f32x4_splat(0.0);
            let mut a1 = f32x4_splat(0.0);
            let mut c = 0;
            while c + 1 < chunks {
                // SAFETY: (c + 2) * 4 <= d for both the row and the query.
                unsafe {
                    let x0 = v128_load(row.as_ptr().add(c * 4) as *const v128);
                    let y0 = v128_load(q.as_ptr().add(c * 4) as *const v128);
                    let x1 = v128_load(row.as_ptr().add(c * 4 + 4) as *const v128);
                    let y1 = v128_load(q.as_ptr().add(c * 4 + 4) as *const v128);
                    a0 = f32x4_add(a0, f32x4_mul(x0, y0));
                    a1 = f32x4_add(a1, f32x4_mul(x1, y1));
                }
                c += 2;
            }
            if c < chunks {
                // SAFETY: (c + 1) * 4 <= d.
                unsafe {
                    let x0 = v128_load(row.as_ptr().add(c * 4) as *const v128);
                    let y0 = v128_load(q.as_ptr().add(c * 4) as *const v128);
                    a0 = f32x4_add(a0, f32x4_mul(x0, y0));
                }
            }
            let a = f32x4_add(a0, a1);
            let mut s = (f32x4_extract_lane::<0>(a) + f32x4_extract_lane::<1>(a))
                + (f32x4_extract_lane::<2>(a) + f32x4_extract_lane::<3>(a));
            for j in tail..d {
                s += row[j] * q[j];
            }
            *o = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_matches_half() {
        for h in 0..=u16::MAX {
            let v = half::f16::from_bits(h);
            if v.is_finite() {
                assert_eq!(
                    f16_to_f32(h).to_bits(),
                    v.to_f32().to_bits(),
                    "half bits {h:#06x}"
                );
            }
        }
    }

    #[test]
    fn int8_scores_match_the_scalar_formula_bit_for_bit() {
        let mut rng = crate::rng::Rng::new(3);
        for d in [16, 32, 48, 64, 128, 7, 100] {
            let n = 37;
            let rows: Vec<i8> = (0..n * d).map(|_| rng.next_u64() as i8).collect();
            let q: Vec<i8> = (0..d).map(|_| rng.next_u64() as i8).collect();
            let scales: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
            let mut out = vec![0f32; n];
            scores_i8(&rows, d, &q, 0.013, &scales, &mut out);
            for r in 0..n {
                let dot: i32 = rows[r * d..(r + 1) * d]
                    .iter()
                    .zip(&q)
                    .map(|(&a, &b)| a as i32 * b as i32)
                    .sum();
                assert_eq!(
                    out[r].to_bits(),
                    (dot as f32 * 0.013 * scales[r]).to_bits(),
                    "d {d} row {r}"
                );
            }
        }
    }

    #[test]
    fn int8_dot_is_exact_at_the_extremes() {
        let d = 67;
        let row = vec![-128i8; d];
        let q = vec![-128i8; d];
        let mut out = [0i32];
        dot_i8(&row, d, &q, &mut out);
        assert_eq!(out[0], 128 * 128 * d as i32);
    }
}
