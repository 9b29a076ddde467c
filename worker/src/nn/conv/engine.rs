//! The two ways a conv block runs its convolution, both on the kernels of [`direct`]:
//! on the padded wide layout of each image (stride 1, planes large enough that the junk
//! columns cost little), or on an im2col matrix of a chunk of images (any stride, and
//! small planes); and the layout of the conv output they produce.

use super::direct::{self, GradKernel, Plan, Pre, Tile};
use super::gather;
use super::{Geom, col2im, im2col};
use crate::nn::scratch;
use crate::nn::simd::{self, Isa};

/// The smallest share of useful pixels in the wide layout for the direct engine.
const MIN_USEFUL: f64 = 0.7;

/// Where a chunk's conv output lives: image `i`, channel `c` starts at `i·img + c·cs`;
/// rows of a plane are `rs` apart; a chunk takes `chunk` floats.
#[derive(Debug, Clone, Copy)]
pub struct ZLayout {
    /// Floats from one channel to the next.
    pub cs: usize,
    /// Floats from one row to the next.
    pub rs: usize,
    /// Floats from one image to the next.
    pub img: usize,
    /// Floats of one chunk.
    pub chunk: usize,
}

impl ZLayout {
    /// Where image `i`, channel `c` starts within a chunk.
    pub fn at(&self, i: usize, c: usize) -> usize {
        i * self.img + c * self.cs
    }

    /// Floats a plane spans (its last row ends there).
    pub fn plane_len(&self, g: &Geom) -> usize {
        (g.out_h - 1) * self.rs + g.out_w
    }

    /// Zeroes everything of a chunk of `cnt` images but the output pixels of its `g.c_out`
    /// planes: junk columns, rows past the last, padded channels, unused images' columns.
    /// The gradient kernels read the whole chunk and need those zero.
    pub fn zero_off_planes(&self, g: &Geom, cnt: usize, chunk: &mut [f32]) {
        let chunk = &mut chunk[..self.chunk];
        if self.img == g.out_hw() && self.rs == g.out_w {
            // im2col layout: channel rows of `cs` columns, images side by side.
            for (c, row) in chunk.chunks_mut(self.cs).enumerate() {
                let live = if c < g.c_out { cnt * g.out_hw() } else { 0 };
                row[live..].fill(0.0);
            }
            return;
        }
        for (i, image) in chunk.chunks_mut(self.img).enumerate() {
            for (c, plane) in image.chunks_mut(self.cs).enumerate() {
                if i >= cnt || c >= g.c_out {
                    plane.fill(0.0);
                    continue;
                }
                for r in 0..g.out_h {
                    let end = if r + 1 < g.out_h {
                        (r + 1) * self.rs
                    } else {
                        self.cs
                    };
                    plane[r * self.rs + g.out_w..end].fill(0.0);
                }
            }
        }
    }
}

/// A convolution laid out for the chunks of one call.
#[derive(Debug)]
pub struct Engine {
    g: Geom,
    /// The forward tile over output channels.
    tile: Tile,
    /// The weight-gradient kernel and its accumulating layout.
    grad: GradKernel,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// The padded wide layout, image by image.
    Direct(Plan),
    /// An im2col matrix per chunk: `k` rows of `cs` columns (images side by side), read
    /// at `offsets` (`r · cs`).
    Im2col { cs: usize, offsets: Vec<usize> },
}

/// Weights packed for the forward kernel.
#[derive(Debug)]
pub struct Packed(Vec<f32>);

impl Engine {
    /// Lays out convolution `g` for chunks of at most `len` images.
    pub fn new(g: &Geom, len: usize) -> Self {
        let tile = direct::forward_tile(g.c_out);
        let grad = GradKernel::choose(g.c_out, g.k_dim());
        if direct::applies(g) {
            let plan = Plan::new(g);
            if g.out_hw() as f64 >= MIN_USEFUL * plan.input.nq as f64 {
                return Engine {
                    g: *g,
                    tile,
                    grad,
                    kind: Kind::Direct(plan),
                };
            }
        }
        let cs = (len * g.out_hw()).div_ceil(16) * 16;
        let offsets = (0..g.k_dim()).map(|r| r * cs).collect();
        Engine {
            g: *g,
            tile,
            grad,
            kind: Kind::Im2col { cs, offsets },
        }
    }

    /// The forward weights (`c_out × k`) packed for the kernel.
    pub fn pack(&self, w: &[f32]) -> Packed {
        Packed(direct::pack_weights(w, self.g.c_out, self.tile))
    }

    /// The layout of a chunk's output.
    pub fn z_layout(&self, len: usize) -> ZLayout {
        let (g, rows) = (&self.g, direct::padded_rows(self.g.c_out, self.tile));
        match &self.kind {
            Kind::Direct(plan) => {
                let img = rows * plan.input.nq;
                ZLayout {
                    cs: plan.input.nq,
                    rs: plan.input.wp,
                    img,
                    chunk: len * img,
                }
            }
            Kind::Im2col { cs, .. } => ZLayout {
                cs: *cs,
                rs: g.out_w,
                img: g.out_hw(),
                chunk: rows * cs,
            },
        }
    }

    /// The conv output of a chunk of `n` images `x` (`n × c_in × h × w`, each value through
    /// `pre`) into `z` (a chunk in this engine's layout).
    pub fn forward(&self, w: &Packed, x: &[f32], n: usize, z: &mut [f32], pre: &Pre<'_>) {
        let g = &self.g;
        match &self.kind {
            Kind::Direct(plan) => {
                let img = self.z_layout(1).img;
                scratch::with_scratch([plan.input.len()], |[xp]| {
                    for i in 0..n {
                        plan.input.fill(&x[i * g.in_len()..][..g.in_len()], xp, pre);
                        direct::forward(
                            xp,
                            &plan.input.offsets,
                            &w.0,
                            self.tile,
                            plan.input.nq,
                            &mut z[i * img..][..img],
                        );
                    }
                });
            }
            Kind::Im2col { cs, offsets } => self.with_col(x, n, *cs, pre, |col| {
                direct::forward(col, offsets, &w.0, self.tile, *cs, z);
            }),
        }
    }

    /// Floats of one accumulating weight gradient (see [`Engine::weight_grad`]).
    pub fn grad_len(&self) -> usize {
        self.grad.len(self.g.c_out, self.g.k_dim())
    }

    /// The accumulated weight gradient as `c_out × k`.
    pub fn finish_grad(&self, acc: Vec<f32>) -> Vec<f32> {
        self.grad.finish(acc, self.g.c_out, self.g.k_dim())
    }

    /// Adds the weight gradient of a chunk of `n` images to `dw` ([`Engine::grad_len`]
    /// floats, laid out for the kernel until [`Engine::finish_grad`]), from their
    /// inputs `x` (through `pre`) and output gradients `dz` (a chunk in this layout, zero
    /// off the pixels).
    pub fn weight_grad(&self, x: &[f32], dz: &[f32], n: usize, dw: &mut [f32], pre: &Pre<'_>) {
        let g = &self.g;
        match &self.kind {
            Kind::Direct(plan) => {
                let (il, img) = (&plan.input, self.z_layout(1).img);
                scratch::with_scratch([n * il.len()], |[xp]| {
                    for i in 0..n {
                        il.fill(
                            &x[i * g.in_len()..][..g.in_len()],
                            &mut xp[i * il.len()..][..il.len()],
                            pre,
                        );
                    }
                    direct::weight_grad(
                        self.grad,
                        xp,
                        il.len(),
                        &il.offsets,
                        dz,
                        img,
                        il.nq,
                        n,
                        g.c_out,
                        dw,
                    );
                });
            }
            Kind::Im2col { cs, offsets } => self.with_col(x, n, *cs, pre, |col| {
                direct::weight_grad(
                    self.grad,
                    col,
                    col.len(),
                    offsets,
                    dz,
                    dz.len(),
                    *cs,
                    1,
                    g.c_out,
                    dw,
                );
            }),
        }
    }

    /// Runs `f` on the im2col matrix of `n` images (through `pre`).
    fn with_col(&self, x: &[f32], n: usize, cs: usize, pre: &Pre<'_>, f: impl FnOnce(&[f32])) {
        let g = &self.g;
        #[cfg(target_arch = "x86_64")]
        if simd::isa() == Isa::Avx512 {
            let padded = self.padded();
            let idx = gather::pixel_index(g, &padded, n, cs);
            scratch::with_scratch([g.k_dim() * cs, n * padded.len()], |[col, xp]| {
                for i in 0..n {
                    let img = &mut xp[i * padded.len()..][..padded.len()];
                    padded.fill(&x[i * g.in_len()..][..g.in_len()], img, pre);
                }
                // SAFETY: AVX-512F detected; `idx` made for `padded` and these images.
                unsafe { gather::im2col(g, &padded, xp, &idx, col, cs) };
                f(col);
            });
            return;
        }
        let pre_len = if matches!(pre, Pre::Identity) {
            0
        } else {
            n * g.in_len()
        };
        scratch::with_scratch([g.k_dim() * cs, pre_len], |[col, xt]| {
            let x = if pre_len == 0 {
                &x[..n * g.in_len()]
            } else {
                let plane = g.height * g.width;
                for (idx, (t, &v)) in xt.iter_mut().zip(x).enumerate() {
                    *t = pre.apply((idx / plane) % g.c_in, v);
                }
                &*xt
            };
            im2col(g, x, n, col, cs);
            f(col);
        });
    }

    /// The zero-padded layout the gathers read the images from.
    fn padded(&self) -> direct::Layout {
        let g = &self.g;
        direct::Layout::new(g.c_in, g.height, g.width, g.padding, g.kernel)
    }

    /// The weights the input gradient needs, prepared once per backward.
    pub fn grad_weights(&self, w: &[f32]) -> GradWeights {
        let g = &self.g;
        let rows = match &self.kind {
            Kind::Direct(_) => g.c_in,
            Kind::Im2col { .. } => g.k_dim(),
        };
        let tile = direct::forward_tile(rows);
        let packed = match &self.kind {
            Kind::Direct(_) => direct::pack_flipped(w, g.c_out, g.c_in, g.kernel, tile),
            Kind::Im2col { .. } => direct::pack_transposed(w, g.c_out, tile),
        };
        GradWeights { tile, packed }
    }

    /// The input gradient of a chunk of `n` images into `dx` (`n × c_in × h × w`,
    /// overwritten) from their output gradients `dz` (a chunk in this layout).
    pub fn input_grad(&self, gw: &GradWeights, dz: &[f32], n: usize, dx: &mut [f32]) {
        let (g, tile) = (&self.g, gw.tile);
        match &self.kind {
            Kind::Direct(plan) => {
                let (gl, img) = (&plan.grad, self.z_layout(1).img);
                let rows = direct::padded_rows(g.c_in, tile);
                scratch::with_scratch([gl.len(), rows * gl.nq], |[dzp, dxw]| {
                    for i in 0..n {
                        gl.fill_strided(&dz[i * img..], plan.input.nq, plan.input.wp, dzp);
                        direct::forward(dzp, &gl.offsets, &gw.packed, tile, gl.nq, dxw);
                        let dxi = &mut dx[i * g.in_len()..][..g.in_len()];
                        for c in 0..g.c_in {
                            for row in 0..g.height {
                                crate::nn::elementwise::copy(
                                    &mut dxi[(c * g.height + row) * g.width..][..g.width],
                                    &dxw[c * gl.nq + row * gl.wp..][..g.width],
                                );
                            }
                        }
                    }
                });
            }
            Kind::Im2col { cs, .. } => {
                let offsets: Vec<usize> = (0..g.c_out).map(|co| co * cs).collect();
                let rows = direct::padded_rows(g.k_dim(), tile);
                scratch::with_scratch([rows * cs], |[dcol]| {
                    direct::forward(dz, &offsets, &gw.packed, tile, *cs, dcol);
                    #[cfg(target_arch = "x86_64")]
                    if simd::isa() == Isa::Avx512 {
                        let padded = self.padded();
                        let idx = gather::pixel_index(g, &padded, n, *cs);
                        scratch::with_scratch([n * padded.len()], |[dxp]| {
                            dxp.fill(0.0);
                            // SAFETY: AVX-512F detected; `idx` made for `padded` and n images.
                            unsafe {
                                gather::col2im(g, &padded, dcol, &idx, n * g.out_hw(), dxp, *cs)
                            };
                            for i in 0..n {
                                let dxi = &mut dx[i * g.in_len()..][..g.in_len()];
                                let src = &dxp[i * padded.len()..];
                                padded.crop(src, dxi);
                            }
                        });
                        return;
                    }
                    dx[..n * g.in_len()].fill(0.0);
                    col2im(g, dcol, n, dx, *cs);
                });
            }
        }
    }
}

/// The weights of the input gradient, packed for the forward kernel: flipped and
/// transposed (direct layout) or transposed (im2col).
#[derive(Debug)]
pub struct GradWeights {
    tile: Tile,
    packed: Vec<f32>,
}
