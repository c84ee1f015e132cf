//! Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", CVPR 2016) for the 3×3, stride-1, undilated convolutions
//! that make most of a ResNet's arithmetic: each 2×2 block of outputs of one channel pair
//! takes 16 multiplications instead of 36.
//!
//! With `U = G g Gᵀ` (the 3×3 kernel `g`, 4×4), `V = Bᵀ d B` (a 4×4 input tile `d`, read
//! with stride 2) and `Y = Aᵀ M A` (the 2×2 output block from the 4×4 `M`), the sum over
//! input channels becomes 16 independent products `M[ξ] = U[ξ] · V[ξ]`, `[c_out, c_in] ·
//! [c_in, tiles]`, one `gemm` each. The transforms' coefficients are 0, ±1 and ½: the
//! error is of the direct sum's order (Lavin & Gray, §5; measured in the tests and in the
//! ResNet precision cases, `docs/performance.md`).

use rayon::prelude::*;

use crate::geometry::Geometry;
use crate::parallel::{Out, Scratch};

/// Tiles (2×2 output blocks) per piece of the output: small images are grouped until a piece
/// has at least `MIN_TILES`; larger ones are cut into runs of tile rows of at most
/// `MAX_TILES`.
const MIN_TILES: usize = 96;
const MAX_TILES: usize = 512;

/// Whether [`conv2d`] computes this convolution: a 3×3 kernel at stride 1 without dilation,
/// padding at most 2, and enough channels for the products to outweigh the transforms.
pub fn applies(g: &Geometry) -> bool {
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.padding[0] <= 2
        && g.padding[1] <= 2
        && g.c_in >= 16
        && g.c_out >= 16
        && g.out_hw().is_some()
}

/// `U[ξ][p] = (G g Gᵀ)[ξ]` for every kernel `g = weight[p]` (`p = co · c_in + ci`):
/// `[16, c_out · c_in]`, so that each `U[ξ]` is a `[c_out, c_in]` matrix, row-major.
fn weight_transform(weight: &[f32]) -> Vec<f32> {
    /// Kernels per block: transformed into a local `[16, BLOCK]`, then copied out as 16
    /// contiguous runs.
    const BLOCK: usize = 256;
    let plane = weight.len() / 9;
    let mut u = Vec::<f32>::with_capacity(16 * plane);
    let dst = Out(u.as_mut_ptr());
    weight
        .par_chunks(9 * BLOCK)
        .enumerate()
        .for_each(|(block, kernels)| {
            let mut local = [[0.0f32; BLOCK]; 16];
            let count = kernels.len() / 9;
            for (p, g) in kernels.chunks_exact(9).enumerate() {
                // Rows: t = G g, [4, 3].
                let mut t = [[0.0f32; 3]; 4];
                for j in 0..3 {
                    let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
                    t[0][j] = g0;
                    t[1][j] = 0.5 * (g0 + g1 + g2);
                    t[2][j] = 0.5 * (g0 - g1 + g2);
                    t[3][j] = g2;
                }
                // Columns: t Gᵀ, [4, 4].
                for (i, r) in t.iter().enumerate() {
                    local[4 * i][p] = r[0];
                    local[4 * i + 1][p] = 0.5 * (r[0] + r[1] + r[2]);
                    local[4 * i + 2][p] = 0.5 * (r[0] - r[1] + r[2]);
                    local[4 * i + 3][p] = r[2];
                }
            }
            for (xi, row) in local.iter().enumerate() {
                // SAFETY: elements `xi · plane + block · BLOCK ..` (`count` of them) are
                // within `16 · plane` and written by this block alone.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        row.as_ptr(),
                        dst.at(xi * plane + block * BLOCK),
                        count,
                    )
                };
            }
        });
    // SAFETY: every block wrote its kernels' 16 elements.
    unsafe { u.set_len(16 * plane) };
    u
}

/// `ξ = 4·i + j ↦ 4·π(i) + π(j)`, `π` swapping 0 and 3.
const FLIP: [usize; 16] = [15, 13, 14, 12, 7, 5, 6, 4, 11, 9, 10, 8, 3, 1, 2, 0];

/// Where the products read the transformed kernels: `U[ξ]`'s element `(row, column)` at
/// `u[ξ' · c_out · c_in + row · row_stride + column · column_stride]` with `ξ' = ξ`, or `FLIP[ξ]` for the
/// kernel flipped in both directions (`G J₃ = P G` with `P` swapping rows 0 and 3: flipping
/// `g` swaps `U`'s first and last rows and columns).
#[derive(Clone, Copy)]
struct Kernels<'a> {
    u: &'a [f32],
    row_stride: usize,
    column_stride: usize,
    flipped: bool,
}

/// A piece of the output: images `image..image + images`, tile rows `ty0..ty1` of each (all
/// of them when `images > 1`).
#[derive(Clone, Copy, Debug)]
struct Piece {
    image: usize,
    images: usize,
    ty0: usize,
    ty1: usize,
}

/// Per-thread buffers: the transformed inputs `V` `[16, c_in, cols]`, the products `M`
/// `[16, c_out, cols]`, four padded input rows and their vertical transforms.
#[derive(Default)]
struct Buffers {
    v: Vec<f32>,
    m: Vec<f32>,
    rows: Vec<f32>,
    out: Vec<f32>,
}

/// `y = conv2d(x, weight) + bias` by F(2×2, 3×3), for a geometry where [`applies`] holds;
/// same contract as [`crate::conv::conv2d`].
///
/// # Panics
/// When [`applies`] does not hold, or a slice is not of the geometry's size.
pub fn conv2d(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
    assert!(
        applies(g),
        "winograd::conv2d: not a 3×3 stride-1 convolution it computes"
    );
    assert_eq!(
        x.len(),
        g.batch * g.c_in * g.height * g.width,
        "winograd::conv2d: x"
    );
    assert_eq!(
        weight.len(),
        g.c_out * g.c_in * 9,
        "winograd::conv2d: weight"
    );
    if let Some(b) = bias {
        assert_eq!(b.len(), g.c_out, "winograd::conv2d: bias");
    }
    let u = weight_transform(weight);
    let kernels = Kernels {
        u: &u,
        row_stride: g.c_in,
        column_stride: 1,
        flipped: false,
    };
    convolve(x, kernels, bias, g)
}

/// The convolution of `x` by the transformed kernels `k` (`[c_out, c_in]` as `g` says).
fn convolve(x: &[f32], k: Kernels<'_>, bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
    let [oh, ow] = g
        .out_hw()
        .expect("winograd: geometry checked by the caller");
    let (tiles_y, tiles_x) = (oh.div_ceil(2), ow.div_ceil(2));
    let per_image = tiles_y * tiles_x;
    let out_img = g.c_out * oh * ow;
    let in_img = g.c_in * g.height * g.width;
    let len = g.batch * out_img;
    if len == 0 {
        return Vec::new();
    }
    // Every element is written once by the output transform (no zeroing first).
    let mut out = Vec::<f32>::with_capacity(len);

    let mut pieces = Vec::new();
    if per_image >= MIN_TILES {
        let rows_per = (MAX_TILES / tiles_x).max(1);
        for image in 0..g.batch {
            for ty0 in (0..tiles_y).step_by(rows_per) {
                pieces.push(Piece {
                    image,
                    images: 1,
                    ty0,
                    ty1: (ty0 + rows_per).min(tiles_y),
                });
            }
        }
    } else {
        let per = MIN_TILES.div_ceil(per_image).clamp(1, g.batch);
        for image in (0..g.batch).step_by(per) {
            pieces.push(Piece {
                image,
                images: per.min(g.batch - image),
                ty0: 0,
                ty1: tiles_y,
            });
        }
    }
    let parallelism = if pieces.len() < rayon::current_num_threads()
        && g.c_out * g.c_in * per_image * g.batch.min(2) >= 1 << 16
    {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };

    let dst = Out(out.as_mut_ptr());
    let scratch = Scratch::<Buffers>::new();
    pieces.par_iter().for_each(|piece| {
        scratch.with(|buf| {
            let span = (piece.ty1 - piece.ty0) * tiles_x;
            let cols = piece.images * span;
            buf.v.resize(16 * g.c_in * cols, 0.0);
            buf.m.resize(16 * g.c_out * cols, 0.0);
            for i in 0..piece.images {
                let b = piece.image + i;
                input_transform(
                    &mut buf.v,
                    &mut buf.rows,
                    cols,
                    i * span,
                    &x[b * in_img..(b + 1) * in_img],
                    g,
                    tiles_x,
                    piece.ty0..piece.ty1,
                );
            }
            for (xi, &flipped) in FLIP.iter().enumerate() {
                let at = if k.flipped { flipped } else { xi } * g.c_out * g.c_in;
                debug_assert!(
                    at + (g.c_out - 1) * k.row_stride + (g.c_in - 1) * k.column_stride < k.u.len()
                );
                // SAFETY: dst `M[ξ]` `[c_out, cols]` and rhs `V[ξ]` `[c_in, cols]`, row-major;
                // lhs `U[ξ]` `[c_out, c_in]` with `k`'s strides; all within their buffers.
                unsafe {
                    gemm::gemm(
                        g.c_out,
                        cols,
                        g.c_in,
                        buf.m.as_mut_ptr().add(xi * g.c_out * cols),
                        1,
                        cols as isize,
                        false,
                        k.u.as_ptr().add(at),
                        k.column_stride as isize,
                        k.row_stride as isize,
                        buf.v.as_ptr().add(xi * g.c_in * cols),
                        1,
                        cols as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        parallelism,
                    );
                }
            }
            for i in 0..piece.images {
                let b = piece.image + i;
                output_transform(
                    dst,
                    b * out_img,
                    &buf.m,
                    &mut buf.out,
                    cols,
                    i * span,
                    bias,
                    g.c_out,
                    [oh, ow],
                    tiles_x,
                    piece.ty0..piece.ty1,
                );
            }
        })
    });
    // SAFETY: the pieces' output transforms wrote all `len` elements (every block row and
    // column of every channel of every image, cropped at the edges).
    unsafe { out.set_len(len) };
    out
}

/// Writes `V = Bᵀ d B` of one image's tiles in tile rows `rows` into columns `col0..` of
/// `v` (`[16, c_in, cols]`), tile `(ty, tx)` in column `col0 + (ty − rows.start) · tiles_x +
/// tx`; `d` reads the image from row `2·ty − pad_y`, column `2·tx − pad_x`, zero outside.
///
/// Per channel, the padded rows are first gathered into `A[s][parity][row][tx] =
/// padded[2·row + parity][2·tx + s]`; then every step is a loop over all the tiles at once
/// (contiguous, vectorised): the columns' transform gives `H[j]`, and the rows' transform
/// reads `H[j]`'s even and odd rows at tile rows `ty` and `ty + 1`.
#[allow(clippy::too_many_arguments)]
fn input_transform(
    v: &mut [f32],
    buf: &mut Vec<f32>,
    cols: usize,
    col0: usize,
    x: &[f32],
    g: &Geometry,
    tiles_x: usize,
    rows: core::ops::Range<usize>,
) {
    let (h, w) = (g.height, g.width);
    let [py, px] = g.padding;
    let n = tiles_x;
    let ny = rows.len();
    let tiles = ny * n;
    // Rows of each parity: ny + 1 (tile row ty reads padded rows 2·ty .. 2·ty + 3).
    let per_parity = (ny + 1) * n;
    let block = 2 * per_parity;
    buf.resize(8 * block, 0.0);
    let (a, hh) = buf.split_at_mut(4 * block);
    let plane = h * w;
    let stride_xi = g.c_in * cols;
    // The tile columns whose column s reads inside the image: 0 ≤ 2·tx + s − px < w.
    let valid = |s: usize| {
        let lo = px.saturating_sub(s).div_ceil(2).min(n);
        let hi = if w + px > s {
            ((w + px - s - 1) / 2 + 1).min(n)
        } else {
            0
        };
        (lo, hi.max(lo))
    };
    let valid: [(usize, usize); 4] = core::array::from_fn(valid);
    for c in 0..g.c_in {
        let channel = &x[c * plane..(c + 1) * plane];
        for (s, &(lo, hi)) in valid.iter().enumerate() {
            let a_s = &mut a[s * block..(s + 1) * block];
            for parity in 0..2 {
                for q in 0..=ny {
                    let d = &mut a_s[parity * per_parity + q * n..][..n];
                    let iy = (2 * (rows.start + q) + parity) as isize - py as isize;
                    if iy < 0 || iy >= h as isize {
                        d.fill(0.0);
                        continue;
                    }
                    let src = &channel[iy as usize * w..(iy as usize + 1) * w];
                    d[..lo].fill(0.0);
                    d[hi..].fill(0.0);
                    if hi > lo {
                        // Every other element from image column 2·lo + s − px (pairs, so that
                        // the copy vectorises; the last element may lack its pair).
                        let src = &src[2 * lo + s - px..];
                        let count = hi - lo;
                        let full = (src.len() / 2).min(count);
                        for (d, pair) in d[lo..lo + full].iter_mut().zip(src.chunks_exact(2)) {
                            *d = pair[0];
                        }
                        if full < count {
                            d[lo + full] = src[2 * full];
                        }
                    }
                }
            }
        }
        // Columns: H = A B, (a0 − a2, a1 + a2, a2 − a1, a1 − a3), all rows at once.
        {
            let (a0, a1, a2, a3) = (
                &a[..block],
                &a[block..2 * block],
                &a[2 * block..3 * block],
                &a[3 * block..4 * block],
            );
            let (h0, rest) = hh.split_at_mut(block);
            let (h1, rest) = rest.split_at_mut(block);
            let (h2, h3) = rest.split_at_mut(block);
            for i in 0..block {
                h0[i] = a0[i] - a2[i];
                h1[i] = a1[i] + a2[i];
                h2[i] = a2[i] - a1[i];
                h3[i] = a1[i] - a3[i];
            }
        }
        // Rows: V = Bᵀ H, (d0 − d2, d1 + d2, d2 − d1, d1 − d3) with d0, d1 the even and odd
        // rows at tile row ty and d2, d3 those at ty + 1 (one row of tiles further).
        let base = c * cols + col0;
        for j in 0..4 {
            let hj = &hh[j * block..(j + 1) * block];
            let (even, odd) = hj.split_at(per_parity);
            let (d0, d1, d2, d3) = (
                &even[..tiles],
                &odd[..tiles],
                &even[n..][..tiles],
                &odd[n..][..tiles],
            );
            let at = |i: usize| (4 * i + j) * stride_xi + base;
            let (o0, o1, o2, o3) = (at(0), at(1), at(2), at(3));
            for (k, v) in v[o0..o0 + tiles].iter_mut().enumerate() {
                *v = d0[k] - d2[k];
            }
            for (k, v) in v[o1..o1 + tiles].iter_mut().enumerate() {
                *v = d1[k] + d2[k];
            }
            for (k, v) in v[o2..o2 + tiles].iter_mut().enumerate() {
                *v = d2[k] - d1[k];
            }
            for (k, v) in v[o3..o3 + tiles].iter_mut().enumerate() {
                *v = d1[k] - d3[k];
            }
        }
    }
}

/// `Y = Aᵀ M A` (+ bias) for one image's tiles in tile rows `rows`, read from columns
/// `col0..` of `m` (`[16, c_out, cols]`), written into the output image at `out0`
/// (`[c_out, oh, ow]`); blocks past the output's edge are cropped.
///
/// Per channel, the four outputs of every tile are computed in one loop over the tiles
/// (contiguous, vectorised), then interleaved into the output rows.
#[allow(clippy::too_many_arguments)]
fn output_transform(
    dst: Out,
    out0: usize,
    m: &[f32],
    buf: &mut Vec<f32>,
    cols: usize,
    col0: usize,
    bias: Option<&[f32]>,
    c_out: usize,
    [oh, ow]: [usize; 2],
    tiles_x: usize,
    rows: core::ops::Range<usize>,
) {
    let stride_xi = c_out * cols;
    let n = tiles_x;
    let tiles = rows.len() * n;
    buf.resize(4 * tiles + 2 * n, 0.0);
    let (y, line) = buf.split_at_mut(4 * tiles);
    for co in 0..c_out {
        let b = bias.map_or(0.0, |b| b[co]);
        let base = co * cols + col0;
        let mm: [&[f32]; 16] = core::array::from_fn(|xi| &m[xi * stride_xi + base..][..tiles]);
        {
            let (y00, rest) = y.split_at_mut(tiles);
            let (y01, rest) = rest.split_at_mut(tiles);
            let (y10, y11) = rest.split_at_mut(tiles);
            // Aᵀ M: rows s0 = m0 + m1 + m2 and s1 = m1 − m2 − m3 (per column j); then the
            // columns the same way: y_r0 = s_r0 + s_r1 + s_r2, y_r1 = s_r1 − s_r2 − s_r3.
            for k in 0..tiles {
                let s0: [f32; 4] = core::array::from_fn(|j| mm[j][k] + mm[4 + j][k] + mm[8 + j][k]);
                let s1: [f32; 4] =
                    core::array::from_fn(|j| mm[4 + j][k] - mm[8 + j][k] - mm[12 + j][k]);
                y00[k] = s0[0] + s0[1] + s0[2] + b;
                y01[k] = s0[1] - s0[2] - s0[3] + b;
                y10[k] = s1[0] + s1[1] + s1[2] + b;
                y11[k] = s1[1] - s1[2] - s1[3] + b;
            }
        }
        for (q, ty) in rows.clone().enumerate() {
            for r in 0..2 {
                let oy = 2 * ty + r;
                if oy >= oh {
                    continue;
                }
                let ya = &y[2 * r * tiles + q * n..][..n];
                let yb = &y[(2 * r + 1) * tiles + q * n..][..n];
                for ((p, a), b) in line.chunks_exact_mut(2).zip(ya).zip(yb) {
                    p[0] = *a;
                    p[1] = *b;
                }
                let at = out0 + (co * oh + oy) * ow;
                // SAFETY: row `oy` of channel `co` of this piece's own image: `ow ≤ 2·n`
                // elements within the output; no other piece writes it.
                unsafe { core::ptr::copy_nonoverlapping(line.as_ptr(), dst.at(at), ow) };
            }
        }
    }
}

/// The input gradient of a convolution where [`applies`] holds, by F(2×2, 3×3): at stride 1
/// it is the convolution of `dy` with the kernel flipped and its channels swapped, padded by
/// `2 − padding`; same contract as [`crate::conv::conv2d_x_backward`].
///
/// # Panics
/// When [`applies`] does not hold, or a slice is not of the geometry's size.
pub fn conv2d_x_backward(dy: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    assert!(
        applies(g),
        "winograd::conv2d_x_backward: not a 3×3 stride-1 convolution it computes"
    );
    let [oh, ow] = g
        .out_hw()
        .expect("winograd: geometry checked by the caller");
    assert_eq!(
        dy.len(),
        g.batch * g.c_out * oh * ow,
        "winograd::conv2d_x_backward: dy"
    );
    assert_eq!(
        weight.len(),
        g.c_out * g.c_in * 9,
        "winograd::conv2d_x_backward: weight"
    );
    // The backward kernel `[c_in, c_out]` at `(ci, co)` is `weight[co][ci]` flipped: the
    // forward's transform read column-major, `ξ` mapped by `FLIP`.
    let u = weight_transform(weight);
    let kernels = Kernels {
        u: &u,
        row_stride: 1,
        column_stride: g.c_in,
        flipped: true,
    };
    let back = Geometry {
        batch: g.batch,
        c_in: g.c_out,
        height: oh,
        width: ow,
        c_out: g.c_in,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [2 - g.padding[0], 2 - g.padding[1]],
        dilation: [1, 1],
    };
    debug_assert_eq!(back.out_hw(), Some([g.height, g.width]));
    convolve(dy, kernels, None, &back)
}
