//! 2-D max pooling, forward only (no indices): `f32`, NCHW, any kernel, stride, padding and
//! dilation, floor mode ([`max_pool2d`]).
//!
//! Burn 0.21's flex runs every 2-D max pool as a 3-D pool that also computes the arg-max
//! indices, element by element; on ResNet-18's stem pool (`[100, 64, 112, 112]`, kernel 3,
//! stride 2) that took about 15% of a whole Internal Influence call (see
//! `docs/performance.md`). Autodiff calls the plain `max_pool2d` where the pool is not
//! tracked (below the explained layer), which is where this kernel runs. It gives PyTorch's
//! result: the padding never wins (it is `-∞`), and a NaN in a window is the window's
//! maximum.

use rayon::prelude::*;

/// The shape of one 2-D max pool, NCHW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Images.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Kernel `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride `[y, x]`.
    pub stride: [usize; 2],
    /// Padding `[y, x]` on both sides (never the maximum).
    pub padding: [usize; 2],
    /// Dilation `[y, x]`.
    pub dilation: [usize; 2],
}

impl PoolGeometry {
    /// The geometry of a max pool of `x` `[batch, channels, height, width]`: `None` where
    /// this kernel does not apply (another rank, `ceil_mode`, an empty input or output, a
    /// zero stride or dilation, or padding above half the kernel, which PyTorch refuses and
    /// which could leave a window with nothing but padding).
    pub fn new(
        x: &[usize],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        ceil_mode: bool,
    ) -> Option<Self> {
        let &[batch, channels, height, width] = x else {
            return None;
        };
        if ceil_mode
            || (0..2).any(|i| {
                kernel[i] == 0 || stride[i] == 0 || dilation[i] == 0 || padding[i] > kernel[i] / 2
            })
        {
            return None;
        }
        let g = Self {
            batch,
            channels,
            height,
            width,
            kernel,
            stride,
            padding,
            dilation,
        };
        let [oh, ow] = g.out_hw()?;
        ([batch, channels, oh, ow].iter().all(|&d| d > 0)).then_some(g)
    }

    /// The output's `[height, width]` (floor mode), `None` where the kernel does not fit.
    pub fn out_hw(&self) -> Option<[usize; 2]> {
        let side = |i: usize, len: usize| {
            let span = self.dilation[i] * (self.kernel[i] - 1) + 1;
            (len + 2 * self.padding[i])
                .checked_sub(span)
                .map(|r| r / self.stride[i] + 1)
        };
        Some([side(0, self.height)?, side(1, self.width)?])
    }
}

/// The max pool of `x` (`[batch, channels, height, width]`, row-major) with geometry `g`:
/// `[batch, channels, out_height, out_width]`. Planes (one image's channel) run in parallel
/// on rayon's pool.
///
/// # Panics
/// If `x` does not hold `batch · channels · height · width` values.
pub fn max_pool2d(x: &[f32], g: &PoolGeometry) -> Vec<f32> {
    let plane_in = g.height * g.width;
    assert_eq!(x.len(), g.batch * g.channels * plane_in, "input size");
    let [oh, ow] = g.out_hw().expect("a geometry from PoolGeometry::new");
    let plane_out = oh * ow;
    let mut out = vec![f32::NEG_INFINITY; g.batch * g.channels * plane_out];
    // Enough planes per task that small planes do not drown in scheduling.
    let per_task = (16_384 / (plane_in * g.kernel[0] * g.kernel[1]).max(1)).max(1);
    out.par_chunks_mut(plane_out * per_task)
        .zip(x.par_chunks(plane_in * per_task))
        .for_each(|(out, x)| {
            let mut rows = Vec::new();
            for (out, x) in out.chunks_mut(plane_out).zip(x.chunks(plane_in)) {
                pool_plane(x, out, g, ow, &mut rows);
            }
        });
    out
}

/// `a` if it is larger or NaN, else `b`: PyTorch's maximum (a NaN wins). Branch-free, so
/// the loops below vectorise.
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if a > b || a.is_nan() { a } else { b }
}

/// One plane: `out` (`oh × ow`, filled with `-∞`) takes the maximum of each window of `x`.
/// Separable: for each output row, the maximum over the window's input rows (contiguous,
/// vectorised), then over the window's columns.
fn pool_plane(x: &[f32], out: &mut [f32], g: &PoolGeometry, ow: usize, rows: &mut Vec<f32>) {
    let [sy, sx] = g.stride;
    let [dy, dx] = g.dilation;
    let [py, px] = g.padding;
    let width = g.width;
    rows.resize(width, f32::NEG_INFINITY);
    for (oy, row) in out.chunks_mut(ow).enumerate() {
        rows.fill(f32::NEG_INFINITY);
        for ky in 0..g.kernel[0] {
            let Some(iy) = (oy * sy + ky * dy).checked_sub(py) else {
                continue;
            };
            if iy >= g.height {
                continue;
            }
            let line = &x[iy * width..(iy + 1) * width];
            for (m, &v) in rows.iter_mut().zip(line) {
                *m = larger(v, *m);
            }
        }
        for kx in 0..g.kernel[1] {
            let off = kx * dx;
            // Output columns whose input column `ox·sx + off − px` lies in the row.
            let lo = px.saturating_sub(off).div_ceil(sx);
            let hi = ow.min((width + px).saturating_sub(off).div_ceil(sx));
            if lo >= hi {
                continue;
            }
            let first = lo * sx + off - px;
            let column = &rows[first..];
            for (m, &v) in row[lo..hi].iter_mut().zip(column.iter().step_by(sx)) {
                *m = larger(v, *m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one output at a time.
    fn naive(x: &[f32], g: &PoolGeometry) -> Vec<f32> {
        let [oh, ow] = g.out_hw().unwrap();
        let mut out = Vec::new();
        for p in 0..g.batch * g.channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut m = f32::NEG_INFINITY;
                    for ky in 0..g.kernel[0] {
                        for kx in 0..g.kernel[1] {
                            let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize
                                - g.padding[0] as isize;
                            let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize
                                - g.padding[1] as isize;
                            if iy < 0 || ix < 0 || iy >= g.height as isize || ix >= g.width as isize
                            {
                                continue;
                            }
                            let v = x[p * g.height * g.width + iy as usize * g.width + ix as usize];
                            if v > m || v.is_nan() {
                                m = v;
                            }
                        }
                    }
                    out.push(m);
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn resnet_stem_pool_equals_the_definition() {
        // ResNet's stem: kernel 3, stride 2, padding 1, on an odd and an even side.
        for (h, w) in [(12, 12), (11, 13)] {
            let g =
                PoolGeometry::new(&[2, 3, h, w], [3, 3], [2, 2], [1, 1], [1, 1], false).unwrap();
            let x = values(2 * 3 * h * w, h as u32);
            assert_eq!(max_pool2d(&x, &g), naive(&x, &g));
            let [oh, ow] = g.out_hw().unwrap();
            assert_eq!([oh, ow], [h.div_ceil(2), w.div_ceil(2)]);
        }
    }

    #[test]
    fn every_geometry_equals_the_definition() {
        for kernel in [[1, 1], [2, 3], [3, 3]] {
            for stride in [[1, 1], [2, 1], [3, 2]] {
                for dilation in [[1, 1], [2, 1]] {
                    for padding in [[0, 0], [kernel[0] / 2, kernel[1] / 2]] {
                        let Some(g) = PoolGeometry::new(
                            &[1, 2, 9, 7],
                            kernel,
                            stride,
                            padding,
                            dilation,
                            false,
                        ) else {
                            continue;
                        };
                        let x = values(2 * 9 * 7, (kernel[1] * 7 + stride[0]) as u32);
                        assert_eq!(max_pool2d(&x, &g), naive(&x, &g), "{g:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn nan_wins_and_padding_never_does() {
        let g = PoolGeometry::new(&[1, 1, 2, 2], [3, 3], [1, 1], [1, 1], [1, 1], false).unwrap();
        let out = max_pool2d(&[-5.0, -4.0, -3.0, f32::NAN], &g);
        assert!(out.iter().all(|v| v.is_nan()), "{out:?}");
        let out = max_pool2d(&[-5.0, -4.0, -3.0, -2.0], &g);
        assert_eq!(out, vec![-2.0; 4]);
    }

    #[test]
    fn refuses_what_it_does_not_compute() {
        let ok = |k, s, p, d, c| PoolGeometry::new(&[1, 1, 8, 8], k, s, p, d, c).is_some();
        assert!(ok([3, 3], [2, 2], [1, 1], [1, 1], false));
        assert!(!ok([3, 3], [2, 2], [1, 1], [1, 1], true), "ceil mode");
        assert!(
            !ok([3, 3], [2, 2], [2, 1], [1, 1], false),
            "padding above half the kernel"
        );
        assert!(!ok([3, 3], [0, 2], [1, 1], [1, 1], false), "zero stride");
        assert!(
            !ok([9, 3], [1, 1], [0, 0], [1, 1], false),
            "kernel larger than the input"
        );
        assert!(PoolGeometry::new(&[1, 8, 8], [2, 2], [2, 2], [0, 0], [1, 1], false).is_none());
    }
}
