//! Direct convolution for stride 1: an implicit matrix product over a zero-padded,
//! "wide" layout, with kernels of our own (no im2col, no packing of the images).
//!
//! Each input channel is stored padded (`hp × wp`, `wp = w + 2·padding`). Output pixel
//! `q = oh·wp + ow` of a channel then reads input `q + kh·wp + kw` of every channel: one
//! offset per reduction row r = (ci, kh, kw), and consecutive pixels read consecutive
//! inputs, so a tile of (output channels × pixels) is a row of vector FMAs per r. The
//! `wp − ow` last columns of every output row are junk and never read.
//!
//! - forward: `z[co][q] = Σ_r w[co][r] · x[offset(r) + q]`;
//! - weight gradient: `dw[co][r] = Σ_images Σ_q dz[co][q] · x[offset(r) + q]` (the junk
//!   columns of `dz` are zero);
//! - input gradient: the forward kernel on `dz` padded by `kernel − 1 − padding`, with the
//!   weights flipped and transposed.

use super::Geom;
use crate::nn::simd::{self, Isa, Portable, Simd};

/// Wide pixel counts are padded to a multiple of this (the widest vector).
const Q_ALIGN: usize = 16;

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// One padded, wide layout: `channels` planes of `plane` floats, rows of `wp`, the
/// image at row/column `border`; the convolution reads `offsets` and produces `nq` wide
/// pixels per output channel.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Channels.
    pub channels: usize,
    /// Rows and columns of zeros around the image.
    pub border: usize,
    /// Image rows and columns.
    pub height: usize,
    /// Image columns.
    pub width: usize,
    /// Padded row length.
    pub wp: usize,
    /// Floats per channel plane (padded image plus the tail the kernels read).
    pub plane: usize,
    /// Wide output pixels per channel (a multiple of 16).
    pub nq: usize,
    /// The offset of every reduction row (channel, kernel row, kernel column).
    pub offsets: Vec<usize>,
}

impl Layout {
    /// The layout for a `kernel × kernel` stride-1 convolution of `channels` planes of
    /// `height × width` padded by `border`.
    pub(super) fn new(
        channels: usize,
        height: usize,
        width: usize,
        border: usize,
        kernel: usize,
    ) -> Self {
        let wp = width + 2 * border;
        let hp = height + 2 * border;
        let out_h = hp + 1 - kernel;
        let nq = round_up(out_h * wp, Q_ALIGN);
        let reach = (kernel - 1) * (wp + 1) + nq;
        let plane = round_up((hp * wp).max(reach), Q_ALIGN);
        let mut offsets = Vec::with_capacity(channels * kernel * kernel);
        for c in 0..channels {
            for kh in 0..kernel {
                for kw in 0..kernel {
                    offsets.push(c * plane + kh * wp + kw);
                }
            }
        }
        Layout {
            channels,
            border,
            height,
            width,
            wp,
            plane,
            nq,
            offsets,
        }
    }

    /// Floats of one image in this layout.
    #[allow(clippy::len_without_is_empty)] // a layout is never empty
    pub fn len(&self) -> usize {
        self.channels * self.plane
    }

    /// Writes `src` (`channels × height × width`, each value through `pre`) into `dst`
    /// (`len()` floats) with zero borders and tail.
    pub fn fill(&self, src: &[f32], dst: &mut [f32], pre: &Pre<'_>) {
        let (h, w) = (self.height, self.width);
        self.fill_rows(dst, |c, row, to| {
            let from = &src[(c * h + row) * w..][..w];
            match pre {
                Pre::Identity => crate::nn::elementwise::copy(to, from),
                Pre::BnRelu { scale, shift } => {
                    crate::nn::elementwise::bn_relu_copy(to, from, scale[c], shift[c]);
                }
            }
        });
    }

    /// Like [`Layout::fill`] from a strided source: channel `c`, row `r` starts at
    /// `src[c · src_cs + r · src_rs]`.
    pub fn fill_strided(&self, src: &[f32], src_cs: usize, src_rs: usize, dst: &mut [f32]) {
        let w = self.width;
        self.fill_rows(dst, |c, row, to| {
            crate::nn::elementwise::copy(to, &src[c * src_cs + row * src_rs..][..w])
        });
    }

    /// The images (`channels × height × width`) back out of this layout: the adjoint
    /// of [`Layout::fill`]'s copy.
    pub fn crop(&self, src: &[f32], dst: &mut [f32]) {
        let (h, w, b) = (self.height, self.width, self.border);
        for c in 0..self.channels {
            for row in 0..h {
                crate::nn::elementwise::copy(
                    &mut dst[(c * h + row) * w..][..w],
                    &src[c * self.plane + (row + b) * self.wp + b..][..w],
                );
            }
        }
    }

    /// Zeroes the borders and tail of every plane and lets `write(channel, row, dst_row)`
    /// fill the image rows.
    fn fill_rows(&self, dst: &mut [f32], mut write: impl FnMut(usize, usize, &mut [f32])) {
        let (h, w, b, wp) = (self.height, self.width, self.border, self.wp);
        for c in 0..self.channels {
            let plane = &mut dst[c * self.plane..][..self.plane];
            plane[..b * wp + b].fill(0.0);
            for row in 0..h {
                let start = (row + b) * wp + b;
                write(c, row, &mut plane[start..start + w]);
                let gap_end = if row + 1 < h { start + wp } else { self.plane };
                plane[start + w..gap_end].fill(0.0);
            }
        }
    }
}

/// What the convolution's input goes through before it is read: nothing, or batch norm
/// (as a per-channel scale and shift) then ReLU.
#[derive(Debug, Clone, Copy)]
pub enum Pre<'a> {
    /// The input as it is.
    Identity,
    /// `max(0, x · scale[c] + shift[c])`.
    BnRelu {
        /// Per-channel scale.
        scale: &'a [f32],
        /// Per-channel shift.
        shift: &'a [f32],
    },
}

impl Pre<'_> {
    /// One value of channel `c`.
    #[inline]
    pub fn apply(&self, c: usize, v: f32) -> f32 {
        match self {
            Pre::Identity => v,
            Pre::BnRelu { scale, shift } => (v * scale[c] + shift[c]).max(0.0),
        }
    }
}

/// Whether the direct kernels handle this convolution.
pub fn applies(g: &Geom) -> bool {
    g.stride == 1 && g.padding < g.kernel
}

/// The layouts of one stride-1 convolution: its padded input, and its output gradient
/// padded for the input-gradient convolution.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The padded input; `input.nq` wide pixels per output channel.
    pub input: Layout,
    /// The output gradient padded by `kernel − 1 − padding`; `grad.nq` wide pixels per
    /// input channel of the input gradient.
    pub grad: Layout,
}

impl Plan {
    /// The layouts of convolution `g` (stride 1, padding below the kernel size).
    pub fn new(g: &Geom) -> Self {
        debug_assert!(applies(g));
        Plan {
            input: Layout::new(g.c_in, g.height, g.width, g.padding, g.kernel),
            grad: Layout::new(
                g.c_out,
                g.out_h,
                g.out_w,
                g.kernel - 1 - g.padding,
                g.kernel,
            ),
        }
    }
}

/// Output channels per tile and vectors per tile row of the forward kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    rows: usize,
    vectors: usize,
}

/// The forward tile for `c_out` channels: the one with the fewest padded rows.
pub fn forward_tile(c_out: usize) -> Tile {
    let options: &[(usize, usize)] = match simd::isa() {
        Isa::Avx512 => &[(8, 3), (6, 4), (4, 6)],
        Isa::Avx2 | Isa::Portable => &[(4, 3), (3, 4), (2, 6)],
    };
    let &(rows, vectors) = options
        .iter()
        .min_by_key(|(rows, _)| (round_up(c_out, *rows), usize::MAX - rows))
        .expect("options");
    Tile { rows, vectors }
}

/// Output channels rounded up to whole tiles: the rows `z` must hold.
pub fn padded_rows(c_out: usize, tile: Tile) -> usize {
    round_up(c_out, tile.rows)
}

/// `w` (`c_out × k`) rearranged tile by tile (`k × rows` per tile, zero rows added) so
/// that each reduction step reads one tile's weights together.
pub fn pack_weights(w: &[f32], c_out: usize, tile: Tile) -> Vec<f32> {
    let k = w.len() / c_out.max(1);
    let mut packed = vec![0.0; padded_rows(c_out, tile) * k];
    for_each_tile(&mut packed, k * tile.rows, |t, dst| {
        for j in 0..tile.rows.min(c_out.saturating_sub(t * tile.rows)) {
            let row = &w[(t * tile.rows + j) * k..][..k];
            for (r, &v) in row.iter().enumerate() {
                dst[r * tile.rows + j] = v;
            }
        }
    });
    packed
}

/// Runs `f(tile_index, tile)` on every `tile_len` floats of `packed`, on every thread of
/// the pool when the weights are large.
fn for_each_tile(packed: &mut [f32], tile_len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let tiles: Vec<(usize, &mut [f32])> = packed.chunks_mut(tile_len.max(1)).enumerate().collect();
    if packed_len_is_large(tiles.len() * tile_len) {
        crate::nn::par::map(tiles, |(t, dst)| f(t, dst));
    } else {
        tiles.into_iter().for_each(|(t, dst)| f(t, dst));
    }
}

fn packed_len_is_large(len: usize) -> bool {
    len >= 1 << 16
}

/// The weights of the input gradient by the direct kernels, packed like [`pack_weights`]:
/// flipped and transposed, `(c_in, c_out, k, k)` with the kernel turned by 180°, from `w`
/// `(c_out, c_in, k, k)`: the input gradient is the forward convolution of the output
/// gradient (padded by `kernel − 1 − padding`) with them.
pub fn pack_flipped(w: &[f32], c_out: usize, c_in: usize, kernel: usize, tile: Tile) -> Vec<f32> {
    let kk = kernel * kernel;
    let k = c_out * kk;
    let mut packed = vec![0.0; padded_rows(c_in, tile) * k];
    for_each_tile(&mut packed, k * tile.rows, |t, dst| {
        for co in 0..c_out {
            for j in 0..tile.rows.min(c_in.saturating_sub(t * tile.rows)) {
                let src = &w[(co * c_in + t * tile.rows + j) * kk..][..kk];
                for (o, &v) in src.iter().enumerate() {
                    dst[(co * kk + kk - 1 - o) * tile.rows + j] = v;
                }
            }
        }
    });
    packed
}

/// The transposed weights `(k, c_out)` of `w` `(c_out, k)`, packed like [`pack_weights`]:
/// the column gradient of an im2col convolution is their forward product with the output
/// gradient.
pub fn pack_transposed(w: &[f32], c_out: usize, tile: Tile) -> Vec<f32> {
    let k = w.len() / c_out.max(1);
    let mut packed = vec![0.0; padded_rows(k, tile) * c_out];
    for_each_tile(&mut packed, c_out * tile.rows, |t, dst| {
        let rows = tile.rows.min(k.saturating_sub(t * tile.rows));
        for co in 0..c_out {
            let src = &w[co * k + t * tile.rows..][..rows];
            dst[co * tile.rows..][..rows].copy_from_slice(src);
        }
    });
    packed
}

/// `z[co·nq + q] = Σ_r w[co][r] · x[offsets[r] + q]` for every padded output row and
/// `q < nq` (a multiple of 16); `packed` from [`pack_weights`] with the same `tile`.
pub fn forward(x: &[f32], offsets: &[usize], packed: &[f32], tile: Tile, nq: usize, z: &mut [f32]) {
    let k = offsets.len();
    let rows = packed.len() / k.max(1);
    assert!(
        nq.is_multiple_of(Q_ALIGN) && z.len() >= rows * nq,
        "conv kernel: output too small"
    );
    let reach = offsets.iter().max().copied().unwrap_or(0) + nq;
    assert!(
        x.len() >= reach,
        "conv kernel: input too small ({} < {reach})",
        x.len()
    );
    let args = FwdArgs {
        x: x.as_ptr(),
        offsets,
        packed: packed.as_ptr(),
        n_tiles: rows / tile.rows,
        nq,
        z: z.as_mut_ptr(),
    };
    // SAFETY: the sizes were checked above; each instruction set only after detection.
    unsafe {
        match simd::isa() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => forward_avx512(&args, tile),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => forward_avx2(&args, tile),
            _ => forward_tiles::<Portable>(&args, tile),
        }
    }
}

struct FwdArgs<'a> {
    x: *const f32,
    offsets: &'a [usize],
    packed: *const f32,
    n_tiles: usize,
    nq: usize,
    z: *mut f32,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn forward_avx512(a: &FwdArgs<'_>, tile: Tile) {
    unsafe { forward_tiles::<simd::Avx512>(a, tile) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_avx2(a: &FwdArgs<'_>, tile: Tile) {
    unsafe { forward_tiles::<simd::Avx2>(a, tile) }
}

#[inline(always)]
unsafe fn forward_tiles<S: Simd>(a: &FwdArgs<'_>, tile: Tile) {
    unsafe {
        match (tile.rows, tile.vectors) {
            (8, 3) => forward_rows::<S, 8, 3>(a),
            (6, 4) => forward_rows::<S, 6, 4>(a),
            (4, 6) => forward_rows::<S, 4, 6>(a),
            (4, 3) => forward_rows::<S, 4, 3>(a),
            (3, 4) => forward_rows::<S, 3, 4>(a),
            (2, 6) => forward_rows::<S, 2, 6>(a),
            _ => unreachable!("forward_tile gives known tiles"),
        }
    }
}

/// Reduction rows per pass: a pixel block's inputs for this many rows stay in L1 while
/// every tile reads them.
const ROWS_PER_PASS: usize = 96;

/// Passes over blocks of reduction rows, pixel blocks inside them, tiles innermost (the
/// block's inputs stay in cache across tiles); passes after the first add to `z`.
#[inline(always)]
unsafe fn forward_rows<S: Simd, const CO: usize, const V: usize>(a: &FwdArgs<'_>) {
    let k = a.offsets.len();
    for r0 in (0..k).step_by(ROWS_PER_PASS) {
        let rows = &a.offsets[r0..k.min(r0 + ROWS_PER_PASS)];
        let add = r0 > 0;
        let mut q = 0;
        while q < a.nq {
            let wide = q + S::LANES * V <= a.nq;
            for t in 0..a.n_tiles {
                // SAFETY: tile t's weights and output rows exist; q + the block stays below nq.
                unsafe {
                    let w = a.packed.add((t * k + r0) * CO);
                    let z = a.z.add(t * CO * a.nq + q);
                    if wide {
                        forward_block::<S, CO, V>(a.x.add(q), rows, w, z, a.nq, add);
                    } else {
                        forward_block::<S, CO, 1>(a.x.add(q), rows, w, z, a.nq, add);
                    }
                }
            }
            q += if wide { S::LANES * V } else { S::LANES };
        }
    }
}

#[inline(always)]
unsafe fn forward_block<S: Simd, const CO: usize, const V: usize>(
    x: *const f32,
    offsets: &[usize],
    w: *const f32,
    z: *mut f32,
    z_stride: usize,
    add: bool,
) {
    unsafe {
        let mut acc = [[S::zero(); V]; CO];
        if add {
            for (j, row) in acc.iter_mut().enumerate() {
                for (v, a) in row.iter_mut().enumerate() {
                    *a = S::load(z.add(j * z_stride + v * S::LANES));
                }
            }
        }
        for (r, &off) in offsets.iter().enumerate() {
            let xp = x.add(off);
            let xv: [S::V; V] = std::array::from_fn(|v| S::load(xp.add(v * S::LANES)));
            let wr = w.add(r * CO);
            for (j, row) in acc.iter_mut().enumerate() {
                let wj = S::splat(*wr.add(j));
                for (v, a) in row.iter_mut().enumerate() {
                    *a = S::fma(xv[v], wj, *a);
                }
            }
        }
        for (j, row) in acc.iter().enumerate() {
            for (v, a) in row.iter().enumerate() {
                S::store(z.add(j * z_stride + v * S::LANES), *a);
            }
        }
    }
}

/// How the weight gradient of a layer is computed and laid out while it accumulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradKernel {
    /// Pixels along the lanes, a horizontal sum per (channel, row) at the end; the
    /// gradient accumulates as `c_out × k`.
    PixelLanes,
    /// Output channels along the lanes (the output gradient transposed to pixel-major
    /// order first), reduction rows broadcast; the gradient accumulates transposed, as
    /// `kpad × cpad`, and [`GradKernel::finish`] turns it around once.
    ChannelLanes {
        /// Vectors of channels per tile.
        vc: usize,
        /// Reduction rows per tile.
        rows: usize,
        /// Channels rounded up to whole tiles.
        cpad: usize,
        /// Reduction rows rounded up to whole tiles.
        kpad: usize,
    },
}

impl GradKernel {
    /// The kernel for `c_out` channels and `k` reduction rows on this CPU. Channels along
    /// the lanes pay for their transposition when they fill whole vectors and the
    /// reduction is long (measured with `examples/kernels.rs`).
    pub fn choose(c_out: usize, k: usize) -> Self {
        let isa = simd::isa();
        let lanes = if isa == Isa::Avx512 { 16 } else { 8 };
        if !(c_out >= 2 * lanes && c_out.is_multiple_of(lanes) && k >= 64) {
            return GradKernel::PixelLanes;
        }
        let (vc, rows) = dw_tile(isa, c_out, k);
        GradKernel::ChannelLanes {
            vc,
            rows,
            cpad: round_up(c_out, lanes * vc),
            kpad: round_up(k, rows),
        }
    }

    /// Floats of the accumulating gradient.
    pub fn len(&self, c_out: usize, k: usize) -> usize {
        match *self {
            GradKernel::PixelLanes => c_out * k,
            GradKernel::ChannelLanes { cpad, kpad, .. } => kpad * cpad,
        }
    }

    /// The accumulated gradient as `c_out × k`.
    pub fn finish(&self, acc: Vec<f32>, c_out: usize, k: usize) -> Vec<f32> {
        match *self {
            GradKernel::PixelLanes => acc,
            GradKernel::ChannelLanes { cpad, .. } => {
                let mut dw = vec![0.0; c_out * k];
                add_transposed(&acc, cpad, c_out, k, &mut dw);
                dw
            }
        }
    }
}

/// `dw[co][r] += Σ_images Σ_q dz[img][co][q] · x[img][offsets[r] + q]` for `co < c_out`,
/// `dw` laid out as `kernel` says (see [`GradKernel`]): `dz` holds `n_images` blocks of
/// `dz_image` floats, rows `nq` apart (junk columns zero); `x` holds blocks of `x_image`
/// floats.
#[allow(clippy::too_many_arguments)]
pub fn weight_grad(
    kernel: GradKernel,
    x: &[f32],
    x_image: usize,
    offsets: &[usize],
    dz: &[f32],
    dz_image: usize,
    nq: usize,
    n_images: usize,
    c_out: usize,
    dw: &mut [f32],
) {
    let k = offsets.len();
    assert!(
        dw.len() >= kernel.len(c_out, k),
        "weight gradient too small"
    );
    if n_images == 0 || k == 0 {
        return;
    }
    assert!(
        dz.len() >= (n_images - 1) * dz_image + c_out * nq,
        "output gradient too small"
    );
    let reach = (n_images - 1) * x_image + offsets.iter().max().copied().unwrap_or(0) + nq;
    assert!(x.len() >= reach, "conv kernel: input too small");
    let isa = simd::isa();
    let GradKernel::ChannelLanes {
        vc,
        rows: r,
        cpad,
        kpad,
    } = kernel
    else {
        let args = DwqArgs {
            x: x.as_ptr(),
            x_image,
            offsets,
            dz: dz.as_ptr(),
            dz_image,
            nq,
            n_images,
            c_out,
        };
        let acc_len = qlanes_acc_len(c_out, k);
        crate::nn::scratch::with_scratch([nq, acc_len], |[zero_rows, acc]| {
            zero_rows.fill(0.0);
            // SAFETY: sizes checked above; each instruction set only after detection.
            unsafe {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => qlanes_avx512(&args, zero_rows, acc, dw),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => qlanes_avx2(&args, zero_rows, acc, dw),
                    _ => qlanes_tiles::<Portable, 2>(&args, zero_rows, acc, dw),
                }
            }
        });
        return;
    };
    let mut offs = offsets.to_vec();
    offs.resize(kpad, 0);
    crate::nn::scratch::with_scratch([n_images * nq * cpad], |[dzt]| {
        for img in 0..n_images {
            transpose(
                &dz[img * dz_image..],
                c_out,
                nq,
                cpad,
                &mut dzt[img * nq * cpad..][..nq * cpad],
            );
        }
        let args = DwArgs {
            x: x.as_ptr(),
            x_image,
            offsets: &offs,
            dzt: dzt.as_ptr(),
            cpad,
            nq,
            n_images,
            dwt: dw.as_mut_ptr(),
        };
        // SAFETY: the sizes were checked or allocated above; each instruction set only
        // after detection.
        unsafe {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => weight_grad_avx512(&args, vc, r),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => weight_grad_avx2(&args, vc, r),
                _ => weight_grad_tiles::<Portable>(&args, vc, r),
            }
        }
    });
}

/// `dw[co·k + r] += dwt[r·cpad + co]`, in 16 × 16 blocks so that both sides are read and
/// written a cache line at a time.
fn add_transposed(dwt: &[f32], cpad: usize, c_out: usize, k: usize, dw: &mut [f32]) {
    const B: usize = 16;
    for co0 in (0..c_out).step_by(B) {
        for r0 in (0..k).step_by(B) {
            for co in co0..c_out.min(co0 + B) {
                let row = &mut dw[co * k..][..k];
                for r in r0..k.min(r0 + B) {
                    row[r] += dwt[r * cpad + co];
                }
            }
        }
    }
}

/// (vectors of output channels, reduction rows) per tile: 24 accumulators on AVX-512,
/// 12 on AVX2; the row count that wastes the fewest padded rows.
fn dw_tile(isa: Isa, c_out: usize, k: usize) -> (usize, usize) {
    let lanes = if isa == Isa::Avx512 { 16 } else { 8 };
    let accumulators = if isa == Isa::Avx512 { 24 } else { 12 };
    let vc = if c_out > lanes { 2 } else { 1 };
    let widest = accumulators / vc;
    let r = [widest, widest / 2]
        .into_iter()
        .min_by_key(|&r| (round_up(k, r), usize::MAX - r))
        .expect("two options");
    (vc, r)
}

struct DwArgs<'a> {
    x: *const f32,
    x_image: usize,
    offsets: &'a [usize],
    /// The output gradient, pixel-major: `n_images × nq × cpad`.
    dzt: *const f32,
    cpad: usize,
    nq: usize,
    n_images: usize,
    /// The result, reduction-row-major: `kpad × cpad` (added to).
    dwt: *mut f32,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn weight_grad_avx512(a: &DwArgs<'_>, vc: usize, r: usize) {
    unsafe { weight_grad_tiles::<simd::Avx512>(a, vc, r) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_grad_avx2(a: &DwArgs<'_>, vc: usize, r: usize) {
    unsafe { weight_grad_tiles::<simd::Avx2>(a, vc, r) }
}

#[inline(always)]
unsafe fn weight_grad_tiles<S: Simd>(a: &DwArgs<'_>, vc: usize, r: usize) {
    unsafe {
        match (vc, r) {
            (1, 24) => weight_grad_rows::<S, 1, 24>(a),
            (1, 12) => weight_grad_rows::<S, 1, 12>(a),
            (2, 12) => weight_grad_rows::<S, 2, 12>(a),
            (2, 6) => weight_grad_rows::<S, 2, 6>(a),
            (1, 6) => weight_grad_rows::<S, 1, 6>(a),
            (2, 3) => weight_grad_rows::<S, 2, 3>(a),
            _ => unreachable!("dw_tile gives known tiles"),
        }
    }
}

#[inline(always)]
unsafe fn weight_grad_rows<S: Simd, const VC: usize, const R: usize>(a: &DwArgs<'_>) {
    let k = a.offsets.len();
    for co0 in (0..a.cpad).step_by(S::LANES * VC) {
        for r0 in (0..k).step_by(R) {
            let offs: [usize; R] = std::array::from_fn(|i| a.offsets[r0 + i]);
            // SAFETY: pixel rows hold cpad lanes; the offsets stay inside each image.
            unsafe {
                let mut acc = [[S::zero(); VC]; R];
                for img in 0..a.n_images {
                    let x = a.x.add(img * a.x_image);
                    let dz = a.dzt.add(img * a.nq * a.cpad + co0);
                    for q in 0..a.nq {
                        let g: [S::V; VC] =
                            std::array::from_fn(|v| S::load(dz.add(q * a.cpad + v * S::LANES)));
                        for (i, row) in acc.iter_mut().enumerate() {
                            let xb = S::splat(*x.add(offs[i] + q));
                            for (v, acc) in row.iter_mut().enumerate() {
                                *acc = S::fma(g[v], xb, *acc);
                            }
                        }
                    }
                }
                for (i, row) in acc.iter().enumerate() {
                    for (v, acc) in row.iter().enumerate() {
                        let p = a.dwt.add((r0 + i) * a.cpad + co0 + v * S::LANES);
                        S::store(p, S::fma(*acc, S::splat(1.0), S::load(p)));
                    }
                }
            }
        }
    }
}

/// `dzt[q·cpad + co] = dz[co·nq + q]` (zero for `co ≥ c_out`): sixteen channels of a
/// pixel gathered into one vector on AVX-512, scalar code elsewhere.
fn transpose(dz: &[f32], c_out: usize, nq: usize, cpad: usize, dzt: &mut [f32]) {
    assert!(dz.len() >= c_out * nq && dzt.len() >= nq * cpad);
    let full = if simd::isa() == Isa::Avx512 && nq <= i32::MAX as usize / 16 {
        c_out / 16 * 16
    } else {
        0
    };
    #[cfg(target_arch = "x86_64")]
    if full > 0 {
        // SAFETY: AVX-512F was detected; the sizes were checked above.
        unsafe { transpose_avx512(dz, full, nq, cpad, dzt) };
    }
    for co in full..cpad {
        for q in 0..nq {
            dzt[q * cpad + co] = if co < c_out { dz[co * nq + q] } else { 0.0 };
        }
    }
}

/// The first `full` (a multiple of 16) channels of [`transpose`], with gathers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_avx512(dz: &[f32], full: usize, nq: usize, cpad: usize, dzt: &mut [f32]) {
    use std::arch::x86_64::*;
    let index = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(nq as i32),
    );
    for co0 in (0..full).step_by(16) {
        let src = dz[co0 * nq..].as_ptr();
        for q in 0..nq {
            // SAFETY: rows co0..co0+16 hold nq floats each; pixel q's row holds cpad floats.
            unsafe {
                let v = _mm512_i32gather_ps::<4>(index, src.add(q));
                _mm512_storeu_ps(dzt.as_mut_ptr().add(q * cpad + co0), v);
            }
        }
    }
}

/// The kernel for few reduction rows: pixels along the lanes, a horizontal sum per
/// (channel, row) at the end. `zero_rows` stands in for the rows beyond `c_out`.
struct DwqArgs<'a> {
    x: *const f32,
    x_image: usize,
    offsets: &'a [usize],
    dz: *const f32,
    dz_image: usize,
    nq: usize,
    n_images: usize,
    c_out: usize,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn qlanes_avx512(a: &DwqArgs<'_>, zero_rows: &[f32], acc: &mut [f32], dw: &mut [f32]) {
    unsafe { qlanes_tiles::<simd::Avx512, 4>(a, zero_rows, acc, dw) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn qlanes_avx2(a: &DwqArgs<'_>, zero_rows: &[f32], acc: &mut [f32], dw: &mut [f32]) {
    unsafe { qlanes_tiles::<simd::Avx2, 2>(a, zero_rows, acc, dw) }
}

#[inline(always)]
unsafe fn qlanes_tiles<S: Simd, const CO: usize>(
    a: &DwqArgs<'_>,
    zero_rows: &[f32],
    acc_buf: &mut [f32],
    dw: &mut [f32],
) {
    let k = a.offsets.len();
    let (co_tiles, r_tiles) = (a.c_out.div_ceil(CO), k.div_ceil(QLANE_ROWS));
    let tile_len = CO * QLANE_ROWS * S::LANES;
    const R: usize = QLANE_ROWS;
    // The vector accumulators of every tile, kept across images: image by image, one
    // image's output gradient and inputs stay in cache while every tile reads them.
    {
        let acc_buf = &mut acc_buf[..co_tiles * r_tiles * tile_len];
        acc_buf.fill(0.0);
        for img in 0..a.n_images {
            for tc in 0..co_tiles {
                let co0 = tc * CO;
                for tr in 0..r_tiles {
                    let r0 = tr * R;
                    let offs: [usize; R] =
                        std::array::from_fn(|i| a.offsets.get(r0 + i).copied().unwrap_or(0));
                    let buf = &mut acc_buf[(tc * r_tiles + tr) * tile_len..][..tile_len];
                    // SAFETY: rows past c_out read `zero_rows`; offsets stay inside the image;
                    // `buf` holds CO × R vectors.
                    unsafe {
                        qlanes_tile::<S, CO, R>(a, img, co0, &offs, zero_rows, buf.as_mut_ptr())
                    };
                }
            }
        }
        for tc in 0..co_tiles {
            for tr in 0..r_tiles {
                let buf = &acc_buf[(tc * r_tiles + tr) * tile_len..][..tile_len];
                for (v, lanes) in buf.chunks_exact(S::LANES).enumerate() {
                    let (j, i) = (v / R, v % R);
                    let (co, r) = (tc * CO + j, tr * R + i);
                    if co < a.c_out && r < k {
                        dw[co * k + r] += lanes.iter().sum::<f32>();
                    }
                }
            }
        }
    }
}

/// Reduction rows per tile of the pixel-lane kernel.
const QLANE_ROWS: usize = 6;

/// Floats of vector accumulators the pixel-lane kernel needs (16 lanes at most, 4
/// channels per tile at most).
fn qlanes_acc_len(c_out: usize, k: usize) -> usize {
    round_up(c_out, 4) * round_up(k, QLANE_ROWS) * 16
}

#[inline(always)]
unsafe fn qlanes_tile<S: Simd, const CO: usize, const R: usize>(
    a: &DwqArgs<'_>,
    img: usize,
    co0: usize,
    offs: &[usize; R],
    zero_rows: &[f32],
    buf: *mut f32,
) {
    unsafe {
        let mut acc: [[S::V; R]; CO] = std::array::from_fn(|j| {
            std::array::from_fn(|i| S::load(buf.add((j * R + i) * S::LANES)))
        });
        let rows: [*const f32; CO] = std::array::from_fn(|j| {
            if co0 + j < a.c_out {
                a.dz.add(img * a.dz_image + (co0 + j) * a.nq)
            } else {
                zero_rows.as_ptr()
            }
        });
        let x = a.x.add(img * a.x_image);
        let mut q = 0;
        while q < a.nq {
            let g: [S::V; CO] = std::array::from_fn(|j| S::load(rows[j].add(q)));
            for (i, &off) in offs.iter().enumerate() {
                let xv = S::load(x.add(off + q));
                for (j, row) in acc.iter_mut().enumerate() {
                    row[i] = S::fma(g[j], xv, row[i]);
                }
            }
            q += S::LANES;
        }
        for (j, row) in acc.iter().enumerate() {
            for (i, v) in row.iter().enumerate() {
                S::store(buf.add((j * R + i) * S::LANES), *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every kernel on every instruction set this CPU has, against plain loops.
    use super::*;
    use crate::nn::simd::{available, with_isa};

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.618).sin()).collect()
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5 * scale)
    }

    /// (c_in, side, c_out, kernel, padding): tiles with padded rows, 1×1, few reduction
    /// rows (the pixel-lane gradient kernel) and many (the channel-lane one).
    const SHAPES: [(usize, usize, usize, usize, usize); 7] = [
        (1, 9, 5, 3, 1),
        (3, 7, 12, 3, 1),
        (20, 6, 17, 3, 1),
        (8, 5, 40, 1, 0),
        (10, 4, 33, 3, 0),
        (8, 6, 32, 3, 1),
        (16, 5, 16, 3, 1),
    ];

    #[test]
    fn forward_matches_plain_loops_on_every_instruction_set() {
        for &(c_in, side, c_out, k, p) in &SHAPES {
            let g = Geom::new((c_in, side, side), c_out, k, 1, p).unwrap();
            let plan = Plan::new(&g);
            let w = values(c_out * g.k_dim(), 1.0);
            let mut xp = vec![0.0; plan.input.len()];
            plan.input
                .fill(&values(g.in_len(), 2.0), &mut xp, &Pre::Identity);
            let (nq, offs) = (plan.input.nq, &plan.input.offsets);
            let expected: Vec<f32> = (0..c_out * nq)
                .map(|i| {
                    (0..offs.len())
                        .map(|r| w[(i / nq) * offs.len() + r] * xp[offs[r] + i % nq])
                        .sum()
                })
                .collect();
            for isa in available() {
                let got = with_isa(isa, || {
                    let tile = forward_tile(c_out);
                    let mut z = vec![0.0; padded_rows(c_out, tile) * nq];
                    forward(&xp, offs, &pack_weights(&w, c_out, tile), tile, nq, &mut z);
                    z.truncate(c_out * nq);
                    z
                });
                assert!(
                    close(&got, &expected),
                    "{isa:?} forward {:?}",
                    (c_in, side, c_out, k, p)
                );
            }
        }
    }

    #[test]
    fn weight_gradient_matches_plain_loops_on_every_instruction_set() {
        for &(c_in, side, c_out, k, p) in &SHAPES {
            let g = Geom::new((c_in, side, side), c_out, k, 1, p).unwrap();
            let plan = Plan::new(&g);
            let (il, n) = (&plan.input, 3);
            let mut xp = vec![0.0; n * il.len()];
            for i in 0..n {
                il.fill(
                    &values(g.in_len(), i as f32),
                    &mut xp[i * il.len()..][..il.len()],
                    &Pre::Identity,
                );
            }
            let dz_image = c_out * il.nq;
            let dz = values(n * dz_image, 7.0);
            let kk = il.offsets.len();
            let mut expected = vec![0.0f32; c_out * kk];
            for (idx, e) in expected.iter_mut().enumerate() {
                let (co, r) = (idx / kk, idx % kk);
                for i in 0..n {
                    for q in 0..il.nq {
                        *e += dz[i * dz_image + co * il.nq + q]
                            * xp[i * il.len() + il.offsets[r] + q];
                    }
                }
            }
            for isa in available() {
                let got = with_isa(isa, || {
                    let kernel = GradKernel::choose(c_out, kk);
                    let mut dw = vec![0.0; kernel.len(c_out, kk)];
                    weight_grad(
                        kernel,
                        &xp,
                        il.len(),
                        &il.offsets,
                        &dz,
                        dz_image,
                        il.nq,
                        n,
                        c_out,
                        &mut dw,
                    );
                    kernel.finish(dw, c_out, kk)
                });
                assert!(
                    close(&got, &expected),
                    "{isa:?} weight gradient {:?}",
                    (c_in, side, c_out, k, p)
                );
            }
        }
    }
}
