//! Branch-free `exp` and `erf` for the CPU Transformer ops. libm's are exact to an ulp but scalar (about
//! 4 and 13 ns a value on our test machine); these compile to SIMD when called in a loop (SSE/AVX
//! natively, SIMD128 in wasm) and stay within a few 1e-7 of them, far inside the engine's 1e-4 budget
//! (the tests below measure them against libm).
//!
//! `erf` is the same formula the GPU's `gelu.wgsl` uses, so the two backends round alike.

/// `e^x`, relative error below 3e-7; the argument is clamped to [-87, 88] (so the result stays a normal,
/// finite f32).
#[inline]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so `n * LN2_HI` is exact (Cody and Waite's reduction).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and removing 1.5 * 2^23 (no `round` call, which would not vectorise on
    // baseline x86-64).
    const SHIFT: f32 = 12_582_912.0;
    let n = (x * LOG2E + SHIFT) - SHIFT;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // e^r on [-ln2/2, ln2/2]: Taylor terms to r^6 (the last term is below 2e-8 there).
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n through the exponent bits; n is in [-126, 127] after the clamp.
    let scale = f32::from_bits(((n as i32 + 127).clamp(1, 254) as u32) << 23);
    p * scale
}

/// `erf(x)` by Abramowitz and Stegun's formula 7.1.26 (Handbook of Mathematical Functions, 1964):
/// absolute error below 1.5e-7, plus f32 rounding (5e-7 at worst, measured against libm).
#[inline]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// Exact GELU with [`erf`]: `0.5 x (1 + erf(x / sqrt 2))`.
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_close_to_libm() {
        let mut worst = 0.0f64;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let want = libm::exp(x as f64);
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(-87.0) < 2e-38 && exp(-87.0) > 0.0 && exp(1000.0).is_finite());
    }

    #[test]
    fn erf_is_close_to_libm() {
        let mut worst = 0.0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((erf(x) as f64 - libm::erf(x as f64)).abs());
        }
        assert!(worst < 6e-7, "worst absolute error {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(50.0), 1.0);
        assert_eq!(erf(-50.0), -1.0);
    }
}
