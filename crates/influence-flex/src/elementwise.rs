//! The vectorised GELU of [`FlexKernels`](crate::FlexKernels): `f32`, forward and backward.
//!
//! Burn 0.21's flex computes GELU's `erf` (and the backward's `exp`) with scalar `libm`
//! calls, about 18 ns an element: 13% of a MiniLM attribution (`docs/performance.md`). Here
//! both are branch-free polynomials that the compiler vectorises (AVX2 + FMA where the CPU has
//! them, chosen at run time; plain `f32` arithmetic elsewhere, wasm included):
//!
//! - `erf`: the rational approximation `x · P(x²) / Q(x²)` on `[-4, 4]` of Eigen's
//!   `generic_fast_erf_float` (also XLA's `ErfImpl32`); `±1` from `|x| = 3.92` on, which is
//!   `erf` in `f32` there. Within 6.5e-8 of `erf` in exact arithmetic; with `f32`'s roundings within 4.5e-7
//!   (about 4 ulp near ±1; `libm`'s `erff` is within 1 ulp, PyTorch's vectorised CPU `erf`
//!   within 1.5e-7 + its roundings).
//! - `exp` of a non-positive argument: Cephes' `expf` (round to `n = x / ln 2`, a degree-5
//!   polynomial of the remainder, times `2ⁿ` built from the exponent bits); within 2 ulp.
//!
//! NaN stays NaN. Large slices run on rayon's pool in chunks.

use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// `1 / √(2π)`.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// `a · b + c`, fused or not.
trait Madd {
    fn madd(a: f32, b: f32, c: f32) -> f32;
}

/// One rounding (`vfmadd` where the function is compiled with FMA); used on x86-64 (and by
/// the tests everywhere).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Fused;
/// Two roundings, for targets without FMA (a software `fmaf` would be slow).
struct Plain;

impl Madd for Fused {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl Madd for Plain {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// `x` clamped to `[lo, hi]`; NaN stays NaN (unlike `f32::clamp`'s `max`/`min` pair on some
/// targets, and unlike `f32::max`, which drops it).
#[inline(always)]
fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// `erf(x)`: Eigen's rational approximation (see the module docs).
#[inline(always)]
fn erf<M: Madd>(x: f32) -> f32 {
    let x = clamp(x, -4.0, 4.0);
    let x2 = x * x;
    let mut p = M::madd(x2, -2.726_142_3e-10, 2.770_681_4e-8);
    p = M::madd(x2, p, -2.101_024e-6);
    p = M::madd(x2, p, -5.692_506_4e-5);
    p = M::madd(x2, p, -7.349_906_3e-4);
    p = M::madd(x2, p, -2.954_600_2e-3);
    p = M::madd(x2, p, -1.609_603_3e-2);
    let mut q = M::madd(x2, -1.456_607_2e-5, -2.133_740_6e-4);
    q = M::madd(x2, q, -1.682_827e-3);
    q = M::madd(x2, q, -7.373_329_2e-3);
    q = M::madd(x2, q, -1.426_474e-2);
    // From |x| = 3.92 on, erf is ±1 in f32 (1 − erf < 2⁻²⁵), as `libm` gives it; the
    // approximation would leave 1 − 1e-7 there (so `gelu(−10)` would be −6e-7, not −0).
    let r = clamp(x * p / q, -1.0, 1.0);
    if x.abs() >= 3.92 {
        1.0f32.copysign(x)
    } else {
        r
    }
}

/// `exp(x)` for `x ≤ 0`: Cephes' `expf`; 0 below −87.3 (where `f32`'s `exp` is below the
/// normal range), NaN for NaN.
#[inline(always)]
fn exp_nonpositive<M: Madd>(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer.
    let x0 = x;
    let x = clamp(x, -87.3, 0.0);
    let t = M::madd(x, core::f32::consts::LOG2_E, SHIFT);
    let n = t - SHIFT;
    let r = M::madd(n, -0.693_359_4, x);
    let r = M::madd(n, 2.121_944_4e-4, r);
    let mut y = M::madd(r, 1.987_569_1e-4, 1.398_199_9e-3);
    y = M::madd(y, r, 8.333_452e-3);
    y = M::madd(y, r, 4.166_579_6e-2);
    y = M::madd(y, r, 1.666_666_5e-1);
    y = M::madd(y, r, 0.5); // Cephes: 5.0000001201e-1, which is 0.5 in f32
    y = M::madd(y, r * r, r) + 1.0;
    // `t`'s low mantissa bits hold n (−126 ≤ n ≤ 0): 2ⁿ is (n + 127) in the exponent.
    let n_bits = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let e = y * f32::from_bits((n_bits.wrapping_add(127) as u32) << 23);
    if x0 < -87.3 { 0.0 } else { e }
}

/// `Φ(x) = (1 + erf(x / √2)) / 2`.
#[inline(always)]
fn cdf<M: Madd>(x: f32) -> f32 {
    0.5 * (1.0 + erf::<M>(x * core::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_slice<M: Madd>(x: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = x * cdf::<M>(x);
    }
}

#[inline(always)]
fn gelu_backward_slice<M: Madd>(x: &[f32], grad: &[f32], out: &mut [f32]) {
    for ((o, &x), &g) in out.iter_mut().zip(x).zip(grad) {
        let pdf = INV_SQRT_2PI * exp_nonpositive::<M>(-0.5 * x * x);
        *o = g * M::madd(x, pdf, cdf::<M>(x));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_avx2(x: &[f32], out: &mut [f32]) {
    gelu_slice::<Fused>(x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_backward_avx2(x: &[f32], grad: &[f32], out: &mut [f32]) {
    gelu_backward_slice::<Fused>(x, grad, out)
}

/// Whether this CPU has AVX2 and FMA (checked once, then cached by `std`).
#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

fn gelu_chunk(x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { gelu_avx2(x, out) };
    }
    gelu_slice::<Plain>(x, out)
}

fn gelu_backward_chunk(x: &[f32], grad: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { gelu_backward_avx2(x, grad, out) };
    }
    gelu_backward_slice::<Plain>(x, grad, out)
}

/// GELU, `x · Φ(x)`, element by element.
pub(crate) fn gelu(x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    if x.len() <= CHUNK {
        gelu_chunk(x, &mut out);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| gelu_chunk(x, o));
    }
    out
}

/// GELU's backward, `grad · (Φ(x) + x · φ(x))`, element by element (`x` and `grad` of one
/// length).
pub(crate) fn gelu_backward(x: &[f32], grad: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        grad.len(),
        "gelu_backward: x and grad differ in length"
    );
    let mut out = vec![0.0f32; x.len()];
    if x.len() <= CHUNK {
        gelu_backward_chunk(x, grad, &mut out);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK)))
            .for_each(|(o, (x, g))| gelu_backward_chunk(x, g, o));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in float64 (Taylor series for |z| ≤ 3, continued fraction beyond).
    fn erf64(z: f64) -> f64 {
        if z.abs() > 3.0 {
            // erfc(z) = exp(-z²)/√π · 1/(z + 1/2/(z + 1/(z + 3/2/(z + ...))))
            let a = z.abs();
            let mut f = a;
            for k in (1..60).rev() {
                f = a + k as f64 / 2.0 / f;
            }
            let erfc = (-a * a).exp() / core::f64::consts::PI.sqrt() / f;
            return (1.0 - erfc).copysign(z);
        }
        let (mut term, mut sum) = (z, z);
        for n in 1..200 {
            term *= -z * z / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / core::f64::consts::PI.sqrt()
    }

    fn grid() -> Vec<f32> {
        (-40_000..=40_000).map(|i| i as f32 * 2.5e-4).collect()
    }

    /// Both code paths (with and without FMA) within `tol` of `want`.
    fn check(name: &str, f: impl Fn(&[f32]) -> [Vec<f32>; 2], want: impl Fn(f64) -> f64, tol: f64) {
        let xs = grid();
        for (path, got) in f(&xs).iter().enumerate() {
            let worst = xs
                .iter()
                .zip(got)
                .map(|(&x, &g)| ((g as f64 - want(x as f64)).abs(), x))
                .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a });
            assert!(
                worst.0 <= tol,
                "{name} (path {path}): error {} at {}",
                worst.0,
                worst.1
            );
        }
    }

    fn both(f: fn(f32) -> f32, g: fn(f32) -> f32) -> impl Fn(&[f32]) -> [Vec<f32>; 2] {
        move |xs| {
            [
                xs.iter().map(|&x| f(x)).collect(),
                xs.iter().map(|&x| g(x)).collect(),
            ]
        }
    }

    #[test]
    fn erf_within_f32_rounding() {
        check("erf", both(erf::<Plain>, erf::<Fused>), erf64, 4.5e-7);
    }

    #[test]
    fn exp_within_two_ulp() {
        let xs: Vec<f32> = (0..=87_000).map(|i| -(i as f32) * 1e-3).collect();
        for (path, f) in [
            exp_nonpositive::<Plain> as fn(f32) -> f32,
            exp_nonpositive::<Fused>,
        ]
        .into_iter()
        .enumerate()
        {
            for &x in &xs {
                let (got, want) = (f(x) as f64, (x as f64).exp());
                let ulp = (want as f32).to_bits().abs_diff((got as f32).to_bits());
                assert!(ulp <= 2, "exp({x}) path {path}: {got} against {want}");
            }
        }
    }

    #[test]
    fn gelu_and_its_derivative_against_float64() {
        let phi = |x: f64| 0.5 * (1.0 + erf64(x / core::f64::consts::SQRT_2));
        let pdf = |x: f64| (-0.5 * x * x).exp() / (2.0 * core::f64::consts::PI).sqrt();
        // Absolute error relative to |x| + 1: GELU grows like x.
        let xs = grid();
        let forward = gelu(&xs);
        let backward = gelu_backward(&xs, &vec![1.0; xs.len()]);
        for ((&x, &y), &d) in xs.iter().zip(&forward).zip(&backward) {
            let x64 = x as f64;
            let scale = x64.abs() + 1.0;
            assert!(
                (y as f64 - x64 * phi(x64)).abs() <= 3e-7 * scale,
                "gelu({x}) = {y}"
            );
            let want = phi(x64) + x64 * pdf(x64);
            assert!(
                (d as f64 - want).abs() <= 3e-7 * scale,
                "gelu'({x}) = {d}, want {want}"
            );
        }
    }

    #[test]
    fn chunks_the_same_as_one_pass_and_nan_kept() {
        let xs: Vec<f32> = (0..3 * CHUNK + 17)
            .map(|i| (i as f32 * 0.37).sin() * 6.0)
            .collect();
        let gs: Vec<f32> = (0..xs.len()).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut one = vec![0.0; xs.len()];
        gelu_chunk(&xs, &mut one);
        assert_eq!(gelu(&xs), one);
        gelu_backward_chunk(&xs, &gs, &mut one);
        assert_eq!(gelu_backward(&xs, &gs), one);
        let nan = [f32::NAN, 1.0];
        assert!(gelu(&nan)[0].is_nan() && gelu_backward(&nan, &[1.0, 1.0])[0].is_nan());
        assert_eq!(gelu(&[f32::INFINITY])[0], f32::INFINITY);
        assert_eq!(gelu(&[0.0])[0], 0.0);
    }

    /// The ends as flex's `libm` GELU has them: erf exactly ±1 from ±4 on, Φ exactly 0 and
    /// 1 far out, φ exactly 0 where `x²/2` leaves `exp`'s normal range, infinities as flex.
    #[test]
    fn ends_and_infinities_as_flex() {
        for f in [erf::<Plain> as fn(f32) -> f32, erf::<Fused>] {
            assert_eq!((f(4.0), f(-4.0), f(30.0), f(-1e30)), (1.0, -1.0, 1.0, -1.0));
            assert!((-16..=16).all(|i| f(i as f32 * 0.5).abs() <= 1.0));
        }
        let (neg, big) = (
            gelu(&[-10.0, -1e30]),
            gelu_backward(&[1e38, -1e38], &[1.0, 1.0]),
        );
        assert!(
            neg.iter().all(|&v| v == 0.0 && v.is_sign_negative()),
            "{neg:?}"
        );
        assert_eq!(big, [1.0, 0.0]);
        assert!(gelu(&[f32::NEG_INFINITY])[0].is_nan());
        let inf = gelu_backward(&[f32::INFINITY, f32::NEG_INFINITY], &[1.0, 1.0]);
        assert!(inf.iter().all(|v| v.is_nan()), "{inf:?}");
        assert_eq!(exp_nonpositive::<Plain>(-88.0), 0.0);
        assert!(exp_nonpositive::<Fused>(f32::NAN).is_nan());
    }
}
