//! The 2-D convolution kernel of [`FlexKernels`](crate::FlexKernels): `f32`, NCHW, `groups = 1`,
//! any stride, padding and dilation.
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
//! (differences of a few ulp).

use rayon::prelude::*;

/// Output positions above which one image is cut into tiles (bounds the im2col buffer to
/// `k · TILE` floats per thread).
const TILE: usize = 4096;
/// Small images are grouped until a piece has at least this many output positions.
const MIN_COLS: usize = 256;

/// The shape of one convolution, NCHW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub c_in: usize,
    pub height: usize,
    pub width: usize,
    pub c_out: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Geometry {
    /// The output's `[height, width]`, or `None` when the kernel does not fit (left to flex).
    pub fn out_hw(&self) -> Option<[usize; 2]> {
        let dim = |i: usize| {
            let span = self.dilation[i] * (self.kernel[i] - 1) + 1;
            let size = [self.height, self.width][i] + 2 * self.padding[i];
            (size >= span && self.stride[i] > 0).then(|| (size - span) / self.stride[i] + 1)
        };
        Some([dim(0)?, dim(1)?])
    }
}

/// A part of the output that one task computes: images `image..image + images`, positions
/// `p0..p1` of each (all of them when `images > 1`).
#[derive(Clone, Copy, Debug)]
struct Piece {
    image: usize,
    images: usize,
    p0: usize,
    p1: usize,
}

/// A raw pointer to the output, shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: each task writes only its own piece's elements; the pieces are disjoint.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer to element `i` of the output. (A method, so that closures capture the
    /// whole `Send` wrapper, not its raw pointer field.)
    ///
    /// # Safety
    /// `i` within the output.
    unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: the caller's.
        unsafe { self.0.add(i) }
    }
}

/// `y = conv2d(x, weight) + bias` for `x` `[batch, c_in, height, width]` and `weight`
/// `[c_out, c_in, kh, kw]`, both contiguous. Returns `[batch, c_out, out_h, out_w]`
/// contiguous. `out_hw` must be `Some` and the slices of the geometry's sizes.
pub(crate) fn conv2d(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
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
    pieces.par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(col, tmp): &mut (Vec<f32>, Vec<f32>), piece| {
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
        },
    );
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
                        for (v, ox) in d.iter_mut().zip(lo..hi) {
                            *v = src[ox * sx + off - px];
                        }
                    }
                }
            }
        }
    }
}
