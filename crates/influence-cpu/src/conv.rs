//! The 2-D convolution kernels: `f32`, NCHW, `groups = 1`, any stride, padding and dilation;
//! the forward ([`conv2d`]) and the input gradient ([`conv2d_x_backward`]).
//!
//! For each piece of the output (a few small images, or a tile of one large image's
//! positions) it builds the im2col matrix `[channels_in · kernel_height · kernel_width,
//! positions]` straight from the NCHW rows (one contiguous copy per kernel offset and output
//! row at stride 1) and makes one `gemm` product with the weight `[channels_out,
//! channels_in · kernel_height · kernel_width]`, whose result `[channels_out, positions]` is
//! already NCHW. The pieces run in parallel on rayon's pool, each product on one thread.
//!
//! Burn 0.21's flex converts the whole input to NHWC on one thread first and builds its
//! im2col tiles position-major; this kernel is 2–3× faster on the convolutions of the
//! benchmark models (see `docs/performance.md`), with the same sums in another order
//! (differences of a few ulp). Burn 0.21's ndarray runs a direct loop of multiply-adds per
//! kernel offset, tens of times slower at 224×224.
//!
//! The input gradient is the transposed product: per image, `dcol = weightᵀ · dy`
//! (`[channels_in · kernel_height · kernel_width, positions]`), then col2im adds each column
//! back onto the input positions it was read from (zero for the padding). Images run in
//! parallel, each writing its own gradient.

use rayon::prelude::*;

pub use crate::geometry::Geometry;
use crate::parallel::{Out, Scratch};

/// Output positions above which one image is cut into tiles (bounds the im2col buffer to
/// `k · TILE` floats per thread).
const TILE: usize = 4096;
/// Small images are grouped until a piece has at least this many output positions.
const MIN_COLS: usize = 256;

/// A part of the output that one task computes: images `image..image + images`, positions
/// `p0..p1` of each (all of them when `images > 1`).
#[derive(Clone, Copy, Debug)]
struct Piece {
    image: usize,
    images: usize,
    p0: usize,
    p1: usize,
}

/// `y = conv2d(x, weight) + bias` for `x` `[batch, c_in, height, width]` and `weight`
/// `[c_out, c_in, kh, kw]`, both contiguous. Returns `[batch, c_out, out_h, out_w]`
/// contiguous.
///
/// # Panics
/// When [`Geometry::out_hw`] is `None` or a slice is not of the geometry's size (the callers
/// check both).
pub fn conv2d(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
    if cfg!(feature = "winograd") && crate::winograd::applies(g) {
        return crate::winograd::conv2d(x, weight, bias, g);
    }
    let [oh, ow] = g.out_hw().expect("conv2d: geometry checked by the caller");
    let n_img = oh * ow;
    let k = g.c_in * g.kernel[0] * g.kernel[1];
    let out_img = g.c_out * n_img;
    let mut out = vec![0.0f32; g.batch * out_img];
    if out.is_empty() {
        return out;
    }

    let mut pieces = Vec::new();
    if n_img > TILE {
        for image in 0..g.batch {
            for p0 in (0..n_img).step_by(TILE) {
                let p1 = (p0 + TILE).min(n_img);
                pieces.push(Piece {
                    image,
                    images: 1,
                    p0,
                    p1,
                });
            }
        }
    } else {
        let per = (MIN_COLS / n_img).clamp(1, g.batch);
        for image in (0..g.batch).step_by(per) {
            let images = per.min(g.batch - image);
            pieces.push(Piece {
                image,
                images,
                p0: 0,
                p1: n_img,
            });
        }
    }
    // Few pieces for the pool: let each product use the pool instead.
    let parallelism =
        if pieces.len() < rayon::current_num_threads() && g.c_out * n_img * k >= 1 << 18 {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };

    let dst = Out(out.as_mut_ptr());
    let in_img = g.c_in * g.height * g.width;
    let scratch = Scratch::<(Vec<f32>, Vec<f32>)>::new();
    pieces.par_iter().for_each(|piece| {
        scratch.with(|(col, tmp)| {
            let span = piece.p1 - piece.p0;
            let cols = piece.images * span;
            col.resize(k * cols, 0.0);
            for i in 0..piece.images {
                let b = piece.image + i;
                im2col(
                    col,
                    cols,
                    i * span,
                    &x[b * in_img..(b + 1) * in_img],
                    g,
                    [oh, ow],
                    piece.p0..piece.p1,
                );
            }
            // One image: the product goes straight into the output (row stride n_img).
            // Several: into `tmp` `[c_out, cols]`, then copied image by image.
            let (target, row_stride) = if piece.images == 1 {
                // SAFETY: within `out`; this piece alone writes positions p0..p1 of its image.
                (unsafe { dst.at(piece.image * out_img + piece.p0) }, n_img)
            } else {
                tmp.resize(g.c_out * cols, 0.0);
                (tmp.as_mut_ptr(), cols)
            };
            if let Some(bias) = bias {
                for (co, &b) in bias.iter().enumerate() {
                    // SAFETY: row `co` of the target: `cols` elements (one image: `cols` is
                    // the tile's span, within the row of `n_img`), in bounds.
                    let row = unsafe {
                        core::slice::from_raw_parts_mut(target.add(co * row_stride), cols)
                    };
                    row.fill(b);
                }
            }
            // SAFETY: dst is `[c_out, cols]` with row stride `row_stride`; lhs `[c_out, k]`
            // row-major; rhs `[k, cols]` row-major; all in bounds.
            unsafe {
                gemm::gemm(
                    g.c_out,
                    cols,
                    k,
                    target,
                    1,
                    row_stride as isize,
                    bias.is_some(),
                    weight.as_ptr(),
                    1,
                    k as isize,
                    col.as_ptr(),
                    1,
                    cols as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
            if piece.images > 1 {
                for i in 0..piece.images {
                    for co in 0..g.c_out {
                        let from = &tmp[co * cols + i * n_img..co * cols + (i + 1) * n_img];
                        let at = (piece.image + i) * out_img + co * n_img;
                        // SAFETY: within `out`; the images of this piece are its own.
                        unsafe { core::ptr::copy_nonoverlapping(from.as_ptr(), dst.at(at), n_img) };
                    }
                }
            }
        })
    });
    out
}

/// Fills columns `col0..col0 + positions.len()` of the im2col matrix `col` (`cols` columns
/// per row; row `(c · kh + ky) · kw + kx`) with one image's `[c_in, height, width]` values
/// for the output positions `positions` (flattened `oy · out_w + ox`); zero where the kernel
/// reads the padding.
fn im2col(
    col: &mut [f32],
    cols: usize,
    col0: usize,
    x: &[f32],
    g: &Geometry,
    [oh, ow]: [usize; 2],
    positions: core::ops::Range<usize>,
) {
    let [sy, sx] = g.stride;
    let [py, px] = g.padding;
    let [dy, dx] = g.dilation;
    let [kh, kw] = g.kernel;
    let plane = g.height * g.width;
    let oy_first = positions.start / ow;
    let oy_last = (positions.end - 1) / ow;
    debug_assert!(oy_last < oh);
    for c in 0..g.c_in {
        let channel = &x[c * plane..(c + 1) * plane];
        for ky in 0..kh {
            for kx in 0..kw {
                let row = (c * kh + ky) * kw + kx;
                let dst = &mut col[row * cols + col0..row * cols + col0 + positions.len()];
                // The output columns whose input column is inside the image:
                // 0 <= ox·sx + kx·dx − px < width.
                let off = kx * dx;
                let valid_lo = if off >= px {
                    0
                } else {
                    (px - off).div_ceil(sx)
                };
                let valid_hi = if g.width + px > off {
                    ((g.width + px - off - 1) / sx + 1).min(ow)
                } else {
                    0
                };
                for oy in oy_first..=oy_last {
                    // This output row's share of the positions.
                    let row_start = oy * ow;
                    let a = positions.start.max(row_start) - row_start;
                    let b = positions.end.min(row_start + ow) - row_start;
                    let d =
                        &mut dst[row_start + a - positions.start..row_start + b - positions.start];
                    let iy = (oy * sy + ky * dy) as isize - py as isize;
                    if iy < 0 || iy >= g.height as isize {
                        d.fill(0.0);
                        continue;
                    }
                    let src = &channel[iy as usize * g.width..(iy as usize + 1) * g.width];
                    let lo = valid_lo.clamp(a, b);
                    let hi = valid_hi.max(valid_lo).clamp(a, b);
                    d[..lo - a].fill(0.0);
                    d[hi - a..].fill(0.0);
                    let d = &mut d[lo - a..hi - a];
                    if d.is_empty() {
                        continue;
                    }
                    if sx == 1 {
                        let s0 = lo + off - px;
                        d.copy_from_slice(&src[s0..s0 + (hi - lo)]);
                    } else {
                        let s = &src[lo * sx + off - px..];
                        match sx {
                            2 => gather::<2>(d, s),
                            3 => gather::<3>(d, s),
                            4 => gather::<4>(d, s),
                            _ => {
                                for (v, &x) in d.iter_mut().zip(s.iter().step_by(sx)) {
                                    *v = x;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `d[i] = s[i · S]`: one output row's im2col entries at stride `S` (a constant, so the
/// loads vectorise as an interleaved group).
#[inline(always)]
fn gather<const S: usize>(d: &mut [f32], s: &[f32]) {
    let n = d.len();
    if n == 0 {
        return;
    }
    let s = &s[..(n - 1) * S + 1];
    for (i, v) in d.iter_mut().enumerate() {
        *v = s[i * S];
    }
}

/// The input gradient of [`conv2d`] (what Burn's `conv2d_x_backward` computes): `dx`
/// `[batch, c_in, height, width]` from the output gradient `dy` `[batch, c_out, out_h,
/// out_w]` and `weight` `[c_out, c_in, kh, kw]`, both contiguous; `dx` is contiguous.
///
/// Per image, and per tile of its output positions for large images: `dcol = weightᵀ · dy`
/// (`[c_in · kh · kw, positions]`, one `gemm` product), then col2im adds each column onto the
/// input positions its im2col column was read from. Images run in parallel on rayon's pool,
/// each writing its own gradient (the tiles of one image in turn); with fewer images than
/// threads, each product uses the pool instead.
///
/// # Panics
/// When [`Geometry::out_hw`] is `None` or a slice is not of the geometry's size (the callers
/// check both).
pub fn conv2d_x_backward(dy: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    if cfg!(feature = "winograd") && crate::winograd::applies(g) {
        return crate::winograd::conv2d_x_backward(dy, weight, g);
    }
    let [oh, ow] = g
        .out_hw()
        .expect("conv2d_x_backward: geometry checked by the caller");
    let n_img = oh * ow;
    let k = g.c_in * g.kernel[0] * g.kernel[1];
    let out_img = g.c_out * n_img;
    let in_img = g.c_in * g.height * g.width;
    assert_eq!(dy.len(), g.batch * out_img, "conv2d_x_backward: dy");
    assert_eq!(weight.len(), g.c_out * k, "conv2d_x_backward: weight");
    let mut dx = vec![0.0f32; g.batch * in_img];
    if dx.is_empty() || n_img == 0 {
        return dx;
    }
    let parallelism = if g.batch < rayon::current_num_threads() && g.c_out * n_img * k >= 1 << 18 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let scratch = Scratch::<Vec<f32>>::new();
    dx.par_chunks_mut(in_img)
        .enumerate()
        .for_each(|(b, dx_img)| {
            scratch.with(|dcol| {
                let dy_img = &dy[b * out_img..(b + 1) * out_img];
                for p0 in (0..n_img).step_by(TILE) {
                    let p1 = (p0 + TILE).min(n_img);
                    let span = p1 - p0;
                    dcol.resize(k * span, 0.0);
                    // SAFETY: dst `dcol` is `[k, span]` row-major; lhs is `weightᵀ`, `[k, c_out]`
                    // with element (i, j) at `weight[j · k + i]`; rhs is `dy`'s `[c_out, span]`
                    // window starting at position p0 with row stride `n_img`; all in bounds.
                    unsafe {
                        gemm::gemm(
                            k,
                            span,
                            g.c_out,
                            dcol.as_mut_ptr(),
                            1,
                            span as isize,
                            false,
                            weight.as_ptr(),
                            k as isize,
                            1,
                            dy_img.as_ptr().add(p0),
                            1,
                            n_img as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            parallelism,
                        );
                    }
                    col2im(dx_img, dcol, g, [oh, ow], p0..p1);
                }
            })
        });
    dx
}

/// Adds columns `0..positions.len()` of `dcol` (row `(c · kh + ky) · kw + kx`, `positions.len()`
/// columns per row) onto one image's `[c_in, height, width]` gradient at the input positions
/// [`im2col`] reads them from; the columns that read the padding are dropped.
fn col2im(
    dx: &mut [f32],
    dcol: &[f32],
    g: &Geometry,
    [oh, ow]: [usize; 2],
    positions: core::ops::Range<usize>,
) {
    let [sy, sx] = g.stride;
    let [py, px] = g.padding;
    let [dy, dx_] = g.dilation;
    let [kh, kw] = g.kernel;
    let plane = g.height * g.width;
    let cols = positions.len();
    let oy_first = positions.start / ow;
    let oy_last = (positions.end - 1) / ow;
    debug_assert!(oy_last < oh);
    for c in 0..g.c_in {
        let channel = &mut dx[c * plane..(c + 1) * plane];
        for ky in 0..kh {
            for kx in 0..kw {
                let row = (c * kh + ky) * kw + kx;
                let src = &dcol[row * cols..(row + 1) * cols];
                let off = kx * dx_;
                // The output columns whose input column is inside the image (as im2col).
                let valid_lo = if off >= px {
                    0
                } else {
                    (px - off).div_ceil(sx)
                };
                let valid_hi = if g.width + px > off {
                    ((g.width + px - off - 1) / sx + 1).min(ow)
                } else {
                    0
                };
                for oy in oy_first..=oy_last {
                    let iy = (oy * sy + ky * dy) as isize - py as isize;
                    if iy < 0 || iy >= g.height as isize {
                        continue;
                    }
                    let row_start = oy * ow;
                    let a = positions.start.max(row_start) - row_start;
                    let b = positions.end.min(row_start + ow) - row_start;
                    let lo = valid_lo.clamp(a, b);
                    let hi = valid_hi.max(valid_lo).clamp(a, b);
                    if lo >= hi {
                        continue;
                    }
                    let s =
                        &src[row_start + lo - positions.start..row_start + hi - positions.start];
                    let line = &mut channel[iy as usize * g.width..(iy as usize + 1) * g.width];
                    if sx == 1 {
                        let d0 = lo + off - px;
                        for (d, v) in line[d0..d0 + (hi - lo)].iter_mut().zip(s) {
                            *d += v;
                        }
                    } else {
                        for (v, ox) in s.iter().zip(lo..hi) {
                            line[ox * sx + off - px] += v;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Calls `tap(y, x, w)` with the flat indices of every output, input and weight element
    /// that meet in one product of the convolution (padding skipped), in the order of the
    /// direct sums: batch, output channel, output row and column, then input channel and
    /// kernel row and column.
    fn for_each_tap(g: &Geometry, mut tap: impl FnMut(usize, usize, usize)) {
        let [oh, ow] = g.out_hw().unwrap();
        let (h, w) = (g.height as isize, g.width as isize);
        for b in 0..g.batch {
            for o in 0..g.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let yi = ((b * g.c_out + o) * oh + oy) * ow + ox;
                        for c in 0..g.c_in {
                            for ky in 0..g.kernel[0] {
                                for kx in 0..g.kernel[1] {
                                    let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize
                                        - g.padding[0] as isize;
                                    let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize
                                        - g.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h || ix >= w {
                                        continue;
                                    }
                                    let xi = ((b * g.c_in + c) * g.height + iy as usize) * g.width
                                        + ix as usize;
                                    let wi =
                                        ((o * g.c_in + c) * g.kernel[0] + ky) * g.kernel[1] + kx;
                                    tap(yi, xi, wi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The direct sums, in float64: `y[b, o, oy, ox] = Σ w[o, c, ky, kx] · x[b, c, iy, ix]`.
    fn naive_forward(x: &[f32], w: &[f32], g: &Geometry) -> Vec<f64> {
        let [oh, ow] = g.out_hw().unwrap();
        let mut y = vec![0.0f64; g.batch * g.c_out * oh * ow];
        for_each_tap(g, |yi, xi, wi| y[yi] += x[xi] as f64 * w[wi] as f64);
        y
    }

    /// The input gradient by its definition: `dx[b, c, iy, ix] = Σ dy · w` over every
    /// output that read `x[b, c, iy, ix]`, in float64.
    fn naive_x_backward(dy: &[f32], w: &[f32], g: &Geometry) -> Vec<f64> {
        let mut dx = vec![0.0f64; g.batch * g.c_in * g.height * g.width];
        for_each_tap(g, |yi, xi, wi| dx[xi] += dy[yi] as f64 * w[wi] as f64);
        dx
    }

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

    fn geometry() -> impl Strategy<Value = Geometry> {
        (
            1usize..4,
            1usize..5,
            1usize..12,
            1usize..12,
            1usize..6,
            (1usize..5, 1usize..5),
            (1usize..4, 1usize..4),
            (0usize..3, 0usize..3),
            (1usize..3, 1usize..3),
        )
            .prop_map(|(batch, c_in, height, width, c_out, k, s, p, d)| Geometry {
                batch,
                c_in,
                height,
                width,
                c_out,
                kernel: [k.0, k.1],
                stride: [s.0, s.1],
                padding: [p.0, p.1],
                dilation: [d.0, d.1],
            })
            .prop_filter("the kernel fits", |g| g.out_hw().is_some())
    }

    /// Largest |a − r| over the largest |r| (1 when the reference is all zeros).
    fn error(a: &[f32], r: &[f64]) -> f64 {
        let scale = r.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        a.iter()
            .zip(r)
            .fold(0.0f64, |m, (a, r)| m.max((*a as f64 - r).abs()))
            / scale
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn forward_is_the_direct_sum(g in geometry(), seed in 0u64..1000) {
            let x = values(g.batch * g.c_in * g.height * g.width, seed);
            let w = values(g.c_out * g.c_in * g.kernel[0] * g.kernel[1], seed + 1);
            let y = conv2d(&x, &w, None, &g);
            prop_assert!(error(&y, &naive_forward(&x, &w, &g)) < 1e-5);
        }

        #[test]
        fn input_gradient_is_the_transposed_sum(g in geometry(), seed in 0u64..1000) {
            let [oh, ow] = g.out_hw().unwrap();
            let dy = values(g.batch * g.c_out * oh * ow, seed);
            let w = values(g.c_out * g.c_in * g.kernel[0] * g.kernel[1], seed + 1);
            let dx = conv2d_x_backward(&dy, &w, &g);
            prop_assert_eq!(dx.len(), g.batch * g.c_in * g.height * g.width);
            prop_assert!(error(&dx, &naive_x_backward(&dy, &w, &g)) < 1e-5);
        }
    }

    /// 3×3 stride-1 convolutions with enough channels (Winograd's F(2×2, 3×3), see
    /// [`crate::winograd`]): odd and even sizes, every padding it takes, 1–3 images.
    fn winograd_geometry() -> impl Strategy<Value = Geometry> {
        (
            1usize..4,
            16usize..21,
            1usize..14,
            1usize..14,
            16usize..21,
            (0usize..3, 0usize..3),
        )
            .prop_map(|(batch, c_in, height, width, c_out, p)| Geometry {
                batch,
                c_in,
                height,
                width,
                c_out,
                kernel: [3, 3],
                stride: [1, 1],
                padding: [p.0, p.1],
                dilation: [1, 1],
            })
            .prop_filter("the kernel fits", |g| g.out_hw().is_some())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn winograd_forward_is_the_direct_sum(g in winograd_geometry(), seed in 0u64..1000) {
            prop_assert!(crate::winograd::applies(&g));
            let x = values(g.batch * g.c_in * g.height * g.width, seed);
            let w = values(g.c_out * g.c_in * 9, seed + 1);
            let b = values(g.c_out, seed + 2);
            let y = crate::winograd::conv2d(&x, &w, Some(&b), &g);
            let [oh, ow] = g.out_hw().unwrap();
            let mut r = naive_forward(&x, &w, &g);
            for (i, r) in r.iter_mut().enumerate() {
                *r += b[(i / (oh * ow)) % g.c_out] as f64;
            }
            prop_assert!(error(&y, &r) < 1e-5, "{}", error(&y, &r));
        }

        #[test]
        fn winograd_input_gradient_is_the_transposed_sum(
            g in winograd_geometry(),
            seed in 0u64..1000,
        ) {
            let [oh, ow] = g.out_hw().unwrap();
            let dy = values(g.batch * g.c_out * oh * ow, seed);
            let w = values(g.c_out * g.c_in * 9, seed + 1);
            let dx = crate::winograd::conv2d_x_backward(&dy, &w, &g);
            prop_assert_eq!(dx.len(), g.batch * g.c_in * g.height * g.width);
            let r = naive_x_backward(&dy, &w, &g);
            prop_assert!(error(&dx, &r) < 1e-5, "{}", error(&dx, &r));
        }
    }

    /// Winograd's pieces: a large image cut into runs of tile rows, and many small images
    /// grouped into one product, with odd sizes (cropped blocks).
    #[test]
    fn winograd_pieces_add_up() {
        for (batch, side) in [(2, 71), (13, 7), (5, 3)] {
            let g = Geometry {
                batch,
                c_in: 16,
                height: side,
                width: side,
                c_out: 24,
                kernel: [3, 3],
                stride: [1, 1],
                padding: [1, 1],
                dilation: [1, 1],
            };
            let x = values(batch * 16 * side * side, 5);
            let w = values(24 * 16 * 9, 6);
            let y = crate::winograd::conv2d(&x, &w, None, &g);
            assert!(error(&y, &naive_forward(&x, &w, &g)) < 1e-5, "{side}");
            let dx = crate::winograd::conv2d_x_backward(&y, &w, &g);
            assert!(error(&dx, &naive_x_backward(&y, &w, &g)) < 1e-5, "{side}");
        }
    }

    /// Large images are cut into tiles of positions; the tiles of one image add up.
    #[test]
    fn input_gradient_of_a_tiled_image() {
        let g = Geometry {
            batch: 2,
            c_in: 3,
            height: 70,
            width: 70,
            c_out: 4,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        };
        const { assert!(70 * 70 > TILE) };
        let dy = values(2 * 4 * 70 * 70, 3);
        let w = values(4 * 3 * 9, 4);
        let dx = conv2d_x_backward(&dy, &w, &g);
        assert!(error(&dx, &naive_x_backward(&dy, &w, &g)) < 1e-5);
    }
}
