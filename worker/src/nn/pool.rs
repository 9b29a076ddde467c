//! Pooling kernels on one (height × width) plane, fused with a per-channel affine map
//! and ReLU: `out = pool(relu(z · scale + shift))`. The conv block runs them on its
//! GEMM output; the standalone pooling ops run them with scale 1 and shift 0.
//!
//! 2×2 max pooling keeps the winning position of each window (one byte per output; the
//! first maximum on ties, like PyTorch) so that its backward sends the whole gradient
//! there. Pooling windows are 2×2 with stride 2; an odd last row or column is dropped.

/// The pooling that follows a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// No pooling.
    None,
    /// 2×2 max pooling, stride 2.
    Max2,
    /// 2×2 average pooling, stride 2.
    Avg2,
}

impl Pool {
    /// The output size of a `height × width` plane.
    pub fn out_dims(self, height: usize, width: usize) -> (usize, usize) {
        match self {
            Pool::None => (height, width),
            Pool::Max2 | Pool::Avg2 => (height / 2, width / 2),
        }
    }

    /// Whether the backward needs the layer's values before pooling to know where ReLU
    /// let the gradient through (max pooling and no pooling know it from the output).
    pub fn mask_needs_input(self, relu: bool) -> bool {
        relu && self == Pool::Avg2
    }
}

/// One plane's shape and the per-channel affine map and activation applied before pooling.
#[derive(Debug, Clone, Copy)]
pub struct Plane {
    /// Rows of the input plane.
    pub height: usize,
    /// Columns of the input plane.
    pub width: usize,
    /// Floats from one input row to the next (at least `width`).
    pub row_stride: usize,
    /// Multiplies the input.
    pub scale: f32,
    /// Added after scaling.
    pub shift: f32,
    /// Whether ReLU follows the affine map.
    pub relu: bool,
}

impl Plane {
    #[inline(always)]
    fn act(&self, z: f32) -> f32 {
        let y = z * self.scale + self.shift;
        if self.relu { y.max(0.0) } else { y }
    }
}

super::simd::multiversion!(
    /// Forward on one plane: `out` (pooled size) from `z`; `argmax` (pooled size, max
    /// pooling only) receives the window position 0–3 of each maximum.
    pub fn forward(pool: Pool, p: &Plane, z: &[f32], out: &mut [f32], argmax: &mut [u8]) -> () = forward_body;
);

#[inline(always)]
fn forward_body(pool: Pool, p: &Plane, z: &[f32], out: &mut [f32], argmax: &mut [u8]) {
    let (w, (ph, pw)) = (p.row_stride, pool.out_dims(p.height, p.width));
    match pool {
        Pool::None => {
            for (o_row, r) in out.chunks_exact_mut(p.width).zip(0..p.height) {
                for (o, &v) in o_row.iter_mut().zip(&z[r * w..][..p.width]) {
                    *o = p.act(v);
                }
            }
        }
        Pool::Max2 => {
            for r in 0..ph {
                let top = &z[2 * r * w..][..2 * pw];
                let bottom = &z[(2 * r + 1) * w..][..2 * pw];
                let (o, am) = (&mut out[r * pw..][..pw], &mut argmax[r * pw..][..pw]);
                if p.scale > 0.0 {
                    // A positive scale keeps the order: pool z, then map the maximum.
                    max_row(top, bottom, o, am);
                    for v in o.iter_mut() {
                        *v = p.act(*v);
                    }
                } else {
                    let y = |v: f32| v * p.scale;
                    for c in 0..pw {
                        let cands = [top[2 * c], top[2 * c + 1], bottom[2 * c], bottom[2 * c + 1]];
                        let mut at = 0;
                        for pos in 1..4 {
                            if y(cands[pos]) > y(cands[at]) {
                                at = pos;
                            }
                        }
                        o[c] = p.act(cands[at]);
                        am[c] = at as u8;
                    }
                }
            }
        }
        Pool::Avg2 => {
            for r in 0..ph {
                let top = &z[2 * r * w..];
                let bottom = &z[(2 * r + 1) * w..];
                for c in 0..pw {
                    let sum = p.act(top[2 * c])
                        + p.act(top[2 * c + 1])
                        + p.act(bottom[2 * c])
                        + p.act(bottom[2 * c + 1]);
                    out[r * pw + c] = 0.25 * sum;
                }
            }
        }
    }
}

super::simd::multiversion!(
    /// Backward on one plane: the gradient `dy` (input size, rows `row_stride` apart; every
    /// pixel written, the columns past `width` left alone) with respect to the values after
    /// the affine map and before ReLU, from the gradient `dout` of the pooled output.
    ///
    /// `out` is the forward's output; `z` the forward's input, needed only when
    /// [`Pool::mask_needs_input`] says so.
    pub fn backward(
        pool: Pool,
        p: &Plane,
        out: &[f32],
        z: Option<&[f32]>,
        dout: &[f32],
        argmax: &[u8],
        dy: &mut [f32],
    ) -> () = backward_body;
);

#[inline(always)]
fn backward_body(
    pool: Pool,
    p: &Plane,
    out: &[f32],
    z: Option<&[f32]>,
    dout: &[f32],
    argmax: &[u8],
    dy: &mut [f32],
) {
    let (w, (ph, pw)) = (p.row_stride, pool.out_dims(p.height, p.width));
    match pool {
        Pool::None => {
            for r in 0..p.height {
                let (g_row, o_row) = (
                    &dout[r * p.width..][..p.width],
                    &out[r * p.width..][..p.width],
                );
                for ((d, &g), &o) in dy[r * w..][..p.width].iter_mut().zip(g_row).zip(o_row) {
                    *d = if p.relu && o <= 0.0 { 0.0 } else { g };
                }
            }
        }
        Pool::Max2 => {
            for r in 0..ph {
                let (top, bottom) = dy[2 * r * w..].split_at_mut(w);
                for c in 0..pw {
                    let idx = r * pw + c;
                    let g = if p.relu && out[idx] <= 0.0 {
                        0.0
                    } else {
                        dout[idx]
                    };
                    let at = argmax[idx];
                    top[2 * c] = if at == 0 { g } else { 0.0 };
                    top[2 * c + 1] = if at == 1 { g } else { 0.0 };
                    bottom[2 * c] = if at == 2 { g } else { 0.0 };
                    bottom[2 * c + 1] = if at == 3 { g } else { 0.0 };
                }
            }
        }
        Pool::Avg2 => {
            for r in 0..ph {
                for c in 0..pw {
                    let g = 0.25 * dout[r * pw + c];
                    for pos in [(2 * r) * w + 2 * c, (2 * r) * w + 2 * c + 1] {
                        for at in [pos, pos + w] {
                            let open = match z {
                                Some(z) if p.relu => z[at] * p.scale + p.shift > 0.0,
                                _ => true,
                            };
                            dy[at] = if open { g } else { 0.0 };
                        }
                    }
                }
            }
        }
    }
    // The odd last row and column no window reads.
    if pool != Pool::None {
        if p.width % 2 == 1 {
            for r in 0..2 * ph {
                dy[r * w + p.width - 1] = 0.0;
            }
        }
        if p.height % 2 == 1 {
            dy[(p.height - 1) * w..][..p.width].fill(0.0);
        }
    }
}

/// The maximum of each 2×2 window of a pair of rows, and its position (0–3, the first
/// maximum on ties), written without branches so that it vectorises.
#[inline]
fn max_row(top: &[f32], bottom: &[f32], out: &mut [f32], argmax: &mut [u8]) {
    for (c, (o, am)) in out.iter_mut().zip(argmax.iter_mut()).enumerate() {
        let (a, b, cc, d) = (top[2 * c], top[2 * c + 1], bottom[2 * c], bottom[2 * c + 1]);
        let (m1, i1) = if b > a { (b, 1u8) } else { (a, 0u8) };
        let (m2, i2) = if d > cc { (d, 3u8) } else { (cc, 2u8) };
        let (m, i) = if m2 > m1 { (m2, i2) } else { (m1, i1) };
        *o = m;
        *am = i;
    }
}
