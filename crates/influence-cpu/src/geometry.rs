//! The shape of one 2-D convolution ([`Geometry`]), shared by the im2col kernels
//! ([`crate::conv`]) and Winograd's ([`crate::winograd`]).

/// The shape of one convolution, NCHW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride `[y, x]`.
    pub stride: [usize; 2],
    /// Zero padding `[y, x]`, on both sides.
    pub padding: [usize; 2],
    /// Dilation `[y, x]`.
    pub dilation: [usize; 2],
}

impl Geometry {
    /// The geometry of a convolution (groups 1) of `x` `[batch, c_in, height, width]` with
    /// `weight` `[c_out, c_in, kh, kw]`: `None` where these kernels do not apply (another
    /// rank, grouped channels, an empty tensor or output, a kernel that does not fit).
    pub fn new(
        x: &[usize],
        weight: &[usize],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Option<Self> {
        let (&[batch, c_in, height, width], &[c_out, w_in, kh, kw]) = (x, weight) else {
            return None;
        };
        let g = Self {
            batch,
            c_in,
            height,
            width,
            c_out,
            kernel: [kh, kw],
            stride,
            padding,
            dilation,
        };
        let [oh, ow] = g.out_hw()?;
        let empty = [batch, c_in, height, width, c_out, kh, kw, oh, ow].contains(&0);
        (w_in == c_in && !empty).then_some(g)
    }

    /// The output's `[height, width]`, or `None` when the kernel does not fit, or is empty
    /// (left to the backend's own kernel).
    pub fn out_hw(&self) -> Option<[usize; 2]> {
        let dim = |i: usize| {
            let span = self.dilation[i] * self.kernel[i].checked_sub(1)? + 1;
            let size = [self.height, self.width][i] + 2 * self.padding[i];
            (size >= span && self.stride[i] > 0).then(|| (size - span) / self.stride[i] + 1)
        };
        Some([dim(0)?, dim(1)?])
    }
}
