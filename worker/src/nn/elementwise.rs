//! Element-wise passes (batch-norm maps, ReLU masks, per-channel sums), each compiled
//! for the best instruction set of the CPU (see [`multiversion`]) and written with
//! sixteen independent lanes so that the compiler vectorises the sums.

use super::simd::multiversion;

const L: usize = 16;

multiversion!(
    /// `dst = max(0, src · scale + shift)`.
    pub fn bn_relu_copy(dst: &mut [f32], src: &[f32], scale: f32, shift: f32) -> () = bn_relu_copy_body;
);

#[inline(always)]
fn bn_relu_copy_body(dst: &mut [f32], src: &[f32], scale: f32, shift: f32) {
    for (o, &v) in dst.iter_mut().zip(src) {
        *o = (v * scale + shift).max(0.0);
    }
}

multiversion!(
    /// (Σv, Σv²) of `values`.
    pub fn sum_and_squares(values: &[f32]) -> (f32, f32) = sum_and_squares_body;
);

#[inline(always)]
fn sum_and_squares_body(values: &[f32]) -> (f32, f32) {
    let (mut s, mut s2) = ([0.0f32; L], [0.0f32; L]);
    let mut chunks = values.chunks_exact(L);
    for chunk in &mut chunks {
        let chunk: &[f32; L] = chunk.try_into().expect("chunks of 16");
        for l in 0..L {
            s[l] += chunk[l];
            s2[l] += chunk[l] * chunk[l];
        }
    }
    let (mut s, mut s2) = (s.iter().sum::<f32>(), s2.iter().sum::<f32>());
    for &v in chunks.remainder() {
        s += v;
        s2 += v * v;
    }
    (s, s2)
}

multiversion!(
    /// Zeroes `dy` where `x · scale + shift ≤ 0` (where ReLU was closed) and returns Σdy
    /// and Σdy·(x − mean).
    pub fn relu_mask_sums(dy: &mut [f32], x: &[f32], scale: f32, shift: f32, mean: f32) -> (f32, f32) = relu_mask_sums_body;
);

#[inline(always)]
fn relu_mask_sums_body(dy: &mut [f32], x: &[f32], scale: f32, shift: f32, mean: f32) -> (f32, f32) {
    let (mut s, mut sx) = ([0.0f32; L], [0.0f32; L]);
    let mut dy_chunks = dy.chunks_exact_mut(L);
    let mut x_chunks = x.chunks_exact(L);
    for (d, xv) in (&mut dy_chunks).zip(&mut x_chunks) {
        let d: &mut [f32; L] = d.try_into().expect("chunks of 16");
        let xv: &[f32; L] = xv.try_into().expect("chunks of 16");
        for l in 0..L {
            let g = if xv[l] * scale + shift > 0.0 {
                d[l]
            } else {
                0.0
            };
            d[l] = g;
            s[l] += g;
            sx[l] += g * (xv[l] - mean);
        }
    }
    let (mut s, mut sx) = (s.iter().sum::<f32>(), sx.iter().sum::<f32>());
    for (d, &v) in dy_chunks
        .into_remainder()
        .iter_mut()
        .zip(x_chunks.remainder())
    {
        if v * scale + shift <= 0.0 {
            *d = 0.0;
        }
        s += *d;
        sx += *d * (v - mean);
    }
    (s, sx)
}

multiversion!(
    /// `dst = a · dst + b · x + k`, plus `passed` when it is not empty.
    pub fn affine_add(dst: &mut [f32], x: &[f32], a: f32, b: f32, k: f32, passed: &[f32]) -> () = affine_add_body;
);

#[inline(always)]
fn affine_add_body(dst: &mut [f32], x: &[f32], a: f32, b: f32, k: f32, passed: &[f32]) {
    if passed.is_empty() {
        for (o, &v) in dst.iter_mut().zip(x) {
            *o = a * *o + b * v + k;
        }
    } else {
        for ((o, &v), &p) in dst.iter_mut().zip(x).zip(passed) {
            *o = a * *o + b * v + k + p;
        }
    }
}

multiversion!(
    /// (Σdy, Σdy·(z − mean)).
    pub fn centred_sums(dy: &[f32], z: &[f32], mean: f32) -> (f32, f32) = centred_sums_body;
);

#[inline(always)]
fn centred_sums_body(dy: &[f32], z: &[f32], mean: f32) -> (f32, f32) {
    let (mut s, mut sz) = ([0.0f32; L], [0.0f32; L]);
    let mut dy_chunks = dy.chunks_exact(L);
    let mut z_chunks = z.chunks_exact(L);
    for (d, zv) in (&mut dy_chunks).zip(&mut z_chunks) {
        let d: &[f32; L] = d.try_into().expect("chunks of 16");
        let zv: &[f32; L] = zv.try_into().expect("chunks of 16");
        for l in 0..L {
            s[l] += d[l];
            sz[l] += d[l] * (zv[l] - mean);
        }
    }
    let (mut s, mut sz) = (s.iter().sum::<f32>(), sz.iter().sum::<f32>());
    for (&d, &v) in dy_chunks.remainder().iter().zip(z_chunks.remainder()) {
        s += d;
        sz += d * (v - mean);
    }
    (s, sz)
}

multiversion!(
    /// `dst = a · dy + b · z + k`.
    pub fn affine2(dst: &mut [f32], dy: &[f32], z: &[f32], a: f32, b: f32, k: f32) -> () = affine2_body;
);

#[inline(always)]
fn affine2_body(dst: &mut [f32], dy: &[f32], z: &[f32], a: f32, b: f32, k: f32) {
    for ((o, &g), &v) in dst.iter_mut().zip(dy).zip(z) {
        *o = a * g + b * v + k;
    }
}

multiversion!(
    /// Σ of `values`.
    pub fn sum(values: &[f32]) -> f32 = sum_body;
);

#[inline(always)]
fn sum_body(values: &[f32]) -> f32 {
    let mut s = [0.0f32; L];
    let mut chunks = values.chunks_exact(L);
    for chunk in &mut chunks {
        let chunk: &[f32; L] = chunk.try_into().expect("chunks of 16");
        for l in 0..L {
            s[l] += chunk[l];
        }
    }
    s.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Copies a short row inline, in fixed-size pieces (`copy_from_slice` of a variable length
/// calls `memcpy`, whose call costs more than rows of a few dozen floats).
#[inline(always)]
pub fn copy(dst: &mut [f32], src: &[f32]) {
    let mut dst_chunks = dst.chunks_exact_mut(L);
    let mut src_chunks = src.chunks_exact(L);
    for (d, s) in (&mut dst_chunks).zip(&mut src_chunks) {
        let s: &[f32; L] = s.try_into().expect("chunks of 16");
        let d: &mut [f32; L] = d.try_into().expect("chunks of 16");
        *d = *s;
    }
    for (d, &s) in dst_chunks
        .into_remainder()
        .iter_mut()
        .zip(src_chunks.remainder())
    {
        *d = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_match_plain_loops_on_odd_lengths() {
        let x: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin()).collect();
        let (s, s2) = sum_and_squares(&x);
        assert!((s - x.iter().sum::<f32>()).abs() < 1e-5);
        assert!((s2 - x.iter().map(|v| v * v).sum::<f32>()).abs() < 1e-5);
        let mut dy: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let (s, sx) = relu_mask_sums(&mut dy, &x, 2.0, -0.5, 0.1);
        let open: Vec<bool> = x.iter().map(|v| v * 2.0 - 0.5 > 0.0).collect();
        for (i, d) in dy.iter().enumerate() {
            assert_eq!(*d, if open[i] { i as f32 } else { 0.0 });
        }
        assert!((s - dy.iter().sum::<f32>()).abs() < 1e-3);
        let expected: f32 = dy.iter().zip(&x).map(|(d, v)| d * (v - 0.1)).sum();
        assert!((sx - expected).abs() < 1e-3);
        let mut out = vec![0.0; 37];
        bn_relu_copy(&mut out, &x, 3.0, 0.2);
        assert!(
            out.iter()
                .zip(&x)
                .all(|(o, v)| *o == (v * 3.0 + 0.2).max(0.0))
        );
        let mut acc = vec![1.0; 37];
        affine_add(&mut acc, &x, 2.0, 0.5, 1.0, &x);
        assert!(
            acc.iter()
                .zip(&x)
                .all(|(o, v)| (*o - (2.0 + 0.5 * v + 1.0 + v)).abs() < 1e-6)
        );
    }
}
