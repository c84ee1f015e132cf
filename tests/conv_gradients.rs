//! The input gradient of a 2-D convolution, on every compiled backend, against its definition
//! in float64: the geometries of a ResNet (3×3, 7×7, and the 1×1 stride-2 shortcut) and
//! kernels shorter than their stride, whose gradient Burn 0.21's wgpu and CUDA backends
//! returned as zeros (`CubeclFixes` puts it right).

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// One case: input `[b, c, h, w]`, weight `[o, c, k, k]`, stride, padding, dilation.
type Case = ([usize; 4], [usize; 4], usize, usize, usize);

const CASES: [Case; 12] = [
    ([2, 8, 12, 12], [8, 8, 3, 3], 1, 1, 1),
    ([2, 8, 12, 12], [16, 8, 3, 3], 2, 1, 1),
    ([2, 8, 13, 13], [16, 8, 3, 3], 2, 1, 1),
    ([2, 3, 20, 20], [8, 3, 7, 7], 2, 3, 1),
    ([2, 8, 12, 12], [16, 8, 1, 1], 1, 0, 1),
    ([2, 8, 12, 12], [16, 8, 1, 1], 2, 0, 1),
    ([2, 8, 13, 13], [16, 8, 1, 1], 2, 0, 1),
    ([2, 4, 13, 13], [6, 4, 1, 1], 3, 1, 1),
    ([2, 4, 13, 13], [6, 4, 2, 2], 3, 1, 1),
    ([2, 4, 14, 14], [6, 4, 2, 2], 3, 0, 1),
    ([2, 4, 14, 14], [6, 4, 2, 2], 5, 1, 2),
    ([2, 4, 12, 12], [6, 4, 3, 3], 2, 2, 2),
];

/// `∂ Σ (conv(x) · r) / ∂x` on backend `B`.
fn gradient<B: AutodiffBackend>(device: &B::Device, (xs, ws, s, p, d): Case) -> Vec<f32> {
    let x = Tensor::<B, 4>::from_data(TensorData::new(values(xs.iter().product(), 1), xs), device)
        .require_grad();
    let w = Tensor::<B, 4>::from_data(TensorData::new(values(ws.iter().product(), 2), ws), device);
    let y = burn::tensor::module::conv2d(
        x.clone(),
        w,
        None,
        ConvOptions::new([s, s], [p, p], [d, d], 1),
    );
    let r = Tensor::<B, 4>::from_data(
        TensorData::new(values(y.dims().iter().product(), 3), y.dims()),
        device,
    );
    let grads = (y * r).sum().backward();
    x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap()
}

/// The same gradient by its definition, in float64: every output position's `r` times the
/// weight, added onto the input position it read.
fn reference((xs, ws, s, p, d): Case) -> Vec<f64> {
    let [b, c, h, w] = xs;
    let [o, _, k, _] = ws;
    let size = |n: usize| (n + 2 * p - d * (k - 1) - 1) / s + 1;
    let (oh, ow) = (size(h), size(w));
    let wt = values(ws.iter().product(), 2);
    let r = values(b * o * oh * ow, 3);
    let mut dx = vec![0.0f64; b * c * h * w];
    for bi in 0..b {
        for oi in 0..o {
            for y in 0..oh {
                for x in 0..ow {
                    let g = r[((bi * o + oi) * oh + y) * ow + x] as f64;
                    for ci in 0..c {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (y * s + ky * d) as isize - p as isize;
                                let ix = (x * s + kx * d) as isize - p as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let wv = wt[((oi * c + ci) * k + ky) * k + kx] as f64;
                                dx[((bi * c + ci) * h + iy as usize) * w + ix as usize] += g * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    dx
}

fn check<B: AutodiffBackend>(device: &B::Device, backend: &str) {
    for case in CASES {
        let ours = gradient::<B>(device, case);
        let r = reference(case);
        let scale = r.iter().fold(0f64, |m, v| m.max(v.abs()));
        let err = ours
            .iter()
            .zip(&r)
            .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()))
            / scale;
        assert!(
            ours.len() == r.len() && err < 1e-5,
            "{backend}: input {:?}, weight {:?}, stride {}, padding {}, dilation {}: error {err:.2e} of the largest value",
            case.0,
            case.1,
            case.2,
            case.3,
            case.4
        );
    }
}

#[cfg(feature = "flex")]
#[test]
fn flex() {
    check::<burn_influence::flex::Backend>(&burn_influence::flex::device(), "flex");
}

#[cfg(feature = "ndarray")]
#[test]
fn ndarray() {
    check::<burn_influence::ndarray::Backend>(&burn_influence::ndarray::device(), "ndarray");
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu() {
    check::<burn_influence::wgpu::Backend>(&burn_influence::wgpu::device(), "wgpu");
}
