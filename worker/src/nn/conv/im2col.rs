//! Convolution geometry and the im2col / col2im kernels that turn a convolution into
//! matrix products.
//!
//! For a chunk of `n` images the column matrix has one row per (input channel, kernel
//! row, kernel column), in the order of the weight's (c_in, k, k) axes, and one column per
//! (image, output row, output column): `K × (n · OH · OW)`, row-major, rows padded to a
//! given length.

use candle_core::{Result, bail};

/// The shapes of one convolution: square `kernel`, `stride`, zero `padding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geom {
    /// Input channels.
    pub c_in: usize,
    /// Input rows.
    pub height: usize,
    /// Input columns.
    pub width: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Zeros added on every side.
    pub padding: usize,
    /// Output rows.
    pub out_h: usize,
    /// Output columns.
    pub out_w: usize,
}

impl Geom {
    /// The geometry of a `kernel × kernel` convolution of a `c_in × height × width` input
    /// into `c_out` channels, or an error when the kernel does not fit.
    pub fn new(
        (c_in, height, width): (usize, usize, usize),
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        if kernel == 0 || stride == 0 {
            bail!("conv: kernel ({kernel}) and stride ({stride}) must be at least 1")
        }
        if height + 2 * padding < kernel || width + 2 * padding < kernel {
            bail!(
                "conv: a {kernel}×{kernel} kernel does not fit a {height}×{width} input with padding {padding}"
            )
        }
        Ok(Geom {
            c_in,
            height,
            width,
            c_out,
            kernel,
            stride,
            padding,
            out_h: (height + 2 * padding - kernel) / stride + 1,
            out_w: (width + 2 * padding - kernel) / stride + 1,
        })
    }

    /// Rows of the column matrix (and columns of the weight matrix): c_in · k · k.
    pub fn k_dim(&self) -> usize {
        self.c_in * self.kernel * self.kernel
    }

    /// Input elements per image.
    pub fn in_len(&self) -> usize {
        self.c_in * self.height * self.width
    }

    /// Output pixels per channel.
    pub fn out_hw(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Whether the column matrix of one image is the image itself (1×1, stride 1, no padding).
    fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    /// For kernel offset `kw`, the output columns whose input column is inside the image:
    /// `lo..hi` (stride 1 only).
    fn inside_cols(&self, kw: usize) -> (usize, usize) {
        let lo = self.padding.saturating_sub(kw).min(self.out_w);
        let hi = (self.width + self.padding)
            .saturating_sub(kw)
            .clamp(lo, self.out_w);
        (lo, hi)
    }

    /// The input row read by output row `oh` at kernel row `kh`, if inside the image.
    #[inline]
    fn in_row(&self, oh: usize, kh: usize) -> Option<usize> {
        (oh * self.stride + kh)
            .checked_sub(self.padding)
            .filter(|&r| r < self.height)
    }
}

/// Fills `col` (`K` rows of `ncol ≥ n · OH · OW` columns, the rest zero) from `n` images
/// `x` (`n × c_in × height × width`).
pub fn im2col(g: &Geom, x: &[f32], n: usize, col: &mut [f32], ncol: usize) {
    let (hw, ohw) = (g.height * g.width, g.out_hw());
    for row in 0..g.k_dim() {
        col[row * ncol + n * ohw..(row + 1) * ncol].fill(0.0);
    }
    if g.is_pointwise() {
        for ci in 0..g.c_in {
            for i in 0..n {
                let src = &x[(i * g.c_in + ci) * hw..][..hw];
                col[ci * ncol + i * ohw..][..ohw].copy_from_slice(src);
            }
        }
        return;
    }
    for ci in 0..g.c_in {
        for kh in 0..g.kernel {
            for kw in 0..g.kernel {
                let row = (ci * g.kernel + kh) * g.kernel + kw;
                let dst_row = &mut col[row * ncol..][..ncol];
                for i in 0..n {
                    let src = &x[(i * g.c_in + ci) * hw..][..hw];
                    let dst = &mut dst_row[i * ohw..][..ohw];
                    for oh in 0..g.out_h {
                        let d = &mut dst[oh * g.out_w..][..g.out_w];
                        match g.in_row(oh, kh) {
                            None => d.fill(0.0),
                            Some(ih) => gather_row(g, &src[ih * g.width..][..g.width], kw, d),
                        }
                    }
                }
            }
        }
    }
}

/// Adds `col` (`K` rows of `ncol` columns) back into `n` images `dx`
/// (`n × c_in × height × width`): the adjoint of [`im2col`].
pub fn col2im(g: &Geom, col: &[f32], n: usize, dx: &mut [f32], ncol: usize) {
    let (hw, ohw) = (g.height * g.width, g.out_hw());
    if g.is_pointwise() {
        for ci in 0..g.c_in {
            for i in 0..n {
                let dst = &mut dx[(i * g.c_in + ci) * hw..][..hw];
                for (d, s) in dst.iter_mut().zip(&col[ci * ncol + i * ohw..][..ohw]) {
                    *d += s;
                }
            }
        }
        return;
    }
    for ci in 0..g.c_in {
        for kh in 0..g.kernel {
            for kw in 0..g.kernel {
                let row = (ci * g.kernel + kh) * g.kernel + kw;
                let src_row = &col[row * ncol..][..ncol];
                for i in 0..n {
                    let dst = &mut dx[(i * g.c_in + ci) * hw..][..hw];
                    let src = &src_row[i * ohw..][..ohw];
                    for oh in 0..g.out_h {
                        if let Some(ih) = g.in_row(oh, kh) {
                            let s = &src[oh * g.out_w..][..g.out_w];
                            scatter_row(g, s, kw, &mut dst[ih * g.width..][..g.width]);
                        }
                    }
                }
            }
        }
    }
}

/// One output row of the column matrix from one input row, at kernel column `kw`.
#[inline]
fn gather_row(g: &Geom, src: &[f32], kw: usize, dst: &mut [f32]) {
    if g.stride == 1 {
        let (lo, hi) = g.inside_cols(kw);
        dst[..lo].fill(0.0);
        let first = lo + kw - g.padding;
        copy_short(&mut dst[lo..hi], &src[first..first + hi - lo]);
        dst[hi..].fill(0.0);
    } else {
        for (ow, d) in dst.iter_mut().enumerate() {
            *d = (ow * g.stride + kw)
                .checked_sub(g.padding)
                .and_then(|iw| src.get(iw))
                .copied()
                .unwrap_or(0.0);
        }
    }
}

/// Adds one output row of the column matrix into one input row: the adjoint of [`gather_row`].
#[inline]
fn scatter_row(g: &Geom, src: &[f32], kw: usize, dst: &mut [f32]) {
    if g.stride == 1 {
        let (lo, hi) = g.inside_cols(kw);
        let first = lo + kw - g.padding;
        for (d, s) in dst[first..first + hi - lo].iter_mut().zip(&src[lo..hi]) {
            *d += s;
        }
    } else {
        for (ow, &s) in src.iter().enumerate() {
            if let Some(d) = (ow * g.stride + kw)
                .checked_sub(g.padding)
                .and_then(|iw| dst.get_mut(iw))
            {
                *d += s;
            }
        }
    }
}

/// Copies a short row inline, in fixed-size pieces (`copy_from_slice` of a variable length
/// calls `memcpy`, whose call costs more than these rows of a few dozen floats).
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let mut dst_chunks = dst.chunks_exact_mut(16);
    let mut src_chunks = src.chunks_exact(16);
    for (d, s) in (&mut dst_chunks).zip(&mut src_chunks) {
        let s: &[f32; 16] = s.try_into().expect("16 floats");
        d.copy_from_slice(s);
    }
    for (d, &s) in dst_chunks
        .into_remainder()
        .iter_mut()
        .zip(src_chunks.remainder())
    {
        *d = s;
    }
}
