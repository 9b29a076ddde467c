//! The two vector loops the dual coordinate descent spends its time in: dot products of
//! one sample with several weight vectors at once, and `w += a·x`.
//!
//! Rows are padded to a multiple of [`LANES`] floats, so the loops run over whole chunks
//! of 16 `f32`. The build targets plain x86-64 (SSE2), so on CPUs with AVX2 and FMA a copy
//! of each loop compiled for them is picked at run time: `axpy` and the widening of byte
//! rows are vectorised by the compiler, the dot products are written with intrinsics
//! (the compiler's own code for blocks of one to three vectors was mostly scalar, and one
//! or two vectors need four sums in flight). Results are deterministic on one machine; the
//! AVX2 copy fuses multiply and add and sums in another order, so the last bits may differ
//! from a machine without AVX2. AVX-512 would need Rust 1.89 (the workspace says 1.88).

/// Floats per chunk; rows are padded to a multiple of it.
pub(crate) const LANES: usize = 16;

/// Most weight vectors one pass over a sample handles (accumulators must fit in registers).
const BLOCK: usize = 4;

/// The vector loops, compiled for the best instruction set this CPU has.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernel {
    /// Whether the CPU has AVX2 and FMA (checked once, when the kernel is made).
    avx2_fma: bool,
}

impl Kernel {
    /// Detects the CPU's vector instructions.
    pub(crate) fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        let avx2_fma = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2_fma = false;
        Kernel { avx2_fma }
    }

    /// `out[j] = w_k · x` for each class `k = classes[j]`, where `w_k` is the k-th row of
    /// `weights` (rows of `x.len()` floats, a multiple of [`LANES`]).
    pub(crate) fn dots(self, weights: &[f32], classes: &[usize], x: &[f32], out: &mut [f32]) {
        debug_assert_eq!(classes.len(), out.len());
        debug_assert_eq!(x.len() % LANES, 0);
        #[cfg(target_arch = "x86_64")]
        if self.avx2_fma {
            // SAFETY: `detect` found AVX2 and FMA on this CPU.
            return unsafe { dots_avx2_fma(weights, classes, x, out) };
        }
        dots_portable(weights, classes, x, out);
    }

    /// Asks the CPU to start loading `row` into its caches (a hint: samples are visited in
    /// random order, and a fit of the full dataset waits mostly on memory otherwise).
    pub(crate) fn prefetch(self, row: &[u8]) {
        #[cfg(target_arch = "x86_64")]
        for line in row.chunks(64) {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: a prefetch is only a hint; it never faults, even on a bad address,
            // and SSE is part of every x86-64 CPU.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
        }
    }

    /// `out[j] = bytes[j] / 255` (as a multiplication by 1/255), both of the same length.
    pub(crate) fn widen(self, bytes: &[u8], out: &mut [f32]) {
        debug_assert_eq!(bytes.len(), out.len());
        #[cfg(target_arch = "x86_64")]
        if self.avx2_fma {
            // SAFETY: `detect` found AVX2 and FMA on this CPU.
            return unsafe { widen_avx2_fma(bytes, out) };
        }
        widen_body(bytes, out);
    }

    /// `w += a · x`, both of the same length, a multiple of [`LANES`].
    pub(crate) fn axpy(self, a: f32, x: &[f32], w: &mut [f32]) {
        debug_assert_eq!(x.len(), w.len());
        #[cfg(target_arch = "x86_64")]
        if self.avx2_fma {
            // SAFETY: `detect` found AVX2 and FMA on this CPU.
            return unsafe { axpy_avx2_fma(a, x, w) };
        }
        axpy_portable(a, x, w);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dots_avx2_fma(weights: &[f32], classes: &[usize], x: &[f32], out: &mut [f32]) {
    dots_body::<true>(weights, classes, x, out);
}

fn dots_portable(weights: &[f32], classes: &[usize], x: &[f32], out: &mut [f32]) {
    dots_body::<false>(weights, classes, x, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn axpy_avx2_fma(a: f32, x: &[f32], w: &mut [f32]) {
    axpy_body::<true>(a, x, w);
}

fn axpy_portable(a: f32, x: &[f32], w: &mut [f32]) {
    axpy_body::<false>(a, x, w);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn widen_avx2_fma(bytes: &[u8], out: &mut [f32]) {
    widen_body(bytes, out);
}

#[inline(always)]
fn widen_body(bytes: &[u8], out: &mut [f32]) {
    const SCALE: f32 = 1.0 / 255.0;
    for (value, &byte) in out.iter_mut().zip(bytes) {
        *value = f32::from(byte) * SCALE;
    }
}

/// `acc + a·b`, fused into one instruction when `FUSED` (only where the CPU has FMA:
/// elsewhere `mul_add` is a slow library call).
#[inline(always)]
fn madd<const FUSED: bool>(acc: f32, a: f32, b: f32) -> f32 {
    if FUSED {
        a.mul_add(b, acc)
    } else {
        acc + a * b
    }
}

#[inline(always)]
fn dots_body<const AVX2: bool>(weights: &[f32], classes: &[usize], x: &[f32], out: &mut [f32]) {
    let stride = x.len();
    let row = |k: usize| &weights[k * stride..(k + 1) * stride];
    let mut start = 0;
    while start < classes.len() {
        let n = (classes.len() - start).min(BLOCK);
        let (block, out) = (&classes[start..start + n], &mut out[start..start + n]);
        match n {
            4 => dot_block::<AVX2, 4>(
                &[row(block[0]), row(block[1]), row(block[2]), row(block[3])],
                x,
                out,
            ),
            3 => dot_block::<AVX2, 3>(&[row(block[0]), row(block[1]), row(block[2])], x, out),
            2 => dot_block::<AVX2, 2>(&[row(block[0]), row(block[1])], x, out),
            _ => dot_block::<AVX2, 1>(&[row(block[0])], x, out),
        }
        start += n;
    }
}

/// Dot products of `x` with `B` weight vectors in one pass over `x`.
#[inline(always)]
fn dot_block<const AVX2: bool, const B: usize>(ws: &[&[f32]; B], x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: `AVX2` is true only inside `dots_avx2_fma`, which runs only where `detect`
        // found AVX2 and FMA.
        return unsafe { avx2::dot_block::<B>(ws, x, out) };
    }
    dot_block_portable::<B>(ws, x, out);
}

/// [`dot_block`] in plain Rust, each vector with a [`LANES`]-wide accumulator that the
/// compiler vectorises.
#[inline(always)]
fn dot_block_portable<const B: usize>(ws: &[&[f32]; B], x: &[f32], out: &mut [f32]) {
    let mut acc = [[0.0f32; LANES]; B];
    let n_chunks = x.len() / LANES;
    for chunk in 0..n_chunks {
        let range = chunk * LANES..(chunk + 1) * LANES;
        let x: &[f32; LANES] = x[range.clone()].try_into().unwrap();
        for (acc, w) in acc.iter_mut().zip(ws) {
            let w: &[f32; LANES] = w[range.clone()].try_into().unwrap();
            for lane in 0..LANES {
                acc[lane] += w[lane] * x[lane];
            }
        }
    }
    for (out, acc) in out.iter_mut().zip(&acc) {
        *out = horizontal_sum(acc);
    }
}

#[inline(always)]
fn axpy_body<const FUSED: bool>(a: f32, x: &[f32], w: &mut [f32]) {
    for (w, x) in w.chunks_exact_mut(LANES).zip(x.chunks_exact(LANES)) {
        for lane in 0..LANES {
            w[lane] = madd::<FUSED>(w[lane], a, x[lane]);
        }
    }
}

/// The sum of the lanes, pairwise (the same order on every path).
#[inline(always)]
fn horizontal_sum(acc: &[f32; LANES]) -> f32 {
    let mut lanes = *acc;
    let mut width = LANES / 2;
    while width > 0 {
        for lane in 0..width {
            lanes[lane] += lanes[lane + width];
        }
        width /= 2;
    }
    lanes[0]
}

/// The dot products written with AVX2 and FMA intrinsics: the compiler's own
/// vectorisation of one or two vectors at a time gave poor code (scalar shuffles).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_movehl_ps, _mm_shuffle_ps,
        _mm256_add_ps, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_fmadd_ps,
        _mm256_loadu_ps, _mm256_setzero_ps,
    };

    use super::LANES;

    /// Dot products of `x` with `B` weight vectors, four sums per vector in flight when
    /// `B` ≤ 2 (an FMA takes four cycles), two otherwise.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) fn dot_block<const B: usize>(ws: &[&[f32]; B], x: &[f32], out: &mut [f32]) {
        let n = x.len();
        assert!(n.is_multiple_of(LANES) && out.len() >= B && ws.iter().all(|w| w.len() == n));
        let mut acc = [[_mm256_setzero_ps(); 4]; B];
        let x = x.as_ptr();
        let mut j = 0;
        // SAFETY: every load reads 8 floats at an offset j + 8m < n of `x` or of a `w`,
        // all of length n (asserted above), a multiple of 16.
        unsafe {
            if B <= 2 {
                while j + 2 * LANES <= n {
                    let xs = [0, 8, 16, 24].map(|m| _mm256_loadu_ps(x.add(j + m)));
                    for (acc, w) in acc.iter_mut().zip(ws) {
                        for (m, x_part) in xs.iter().enumerate() {
                            let w_part = _mm256_loadu_ps(w.as_ptr().add(j + 8 * m));
                            acc[m] = _mm256_fmadd_ps(w_part, *x_part, acc[m]);
                        }
                    }
                    j += 2 * LANES;
                }
            }
            while j < n {
                let xs = [0, 8].map(|m| _mm256_loadu_ps(x.add(j + m)));
                for (acc, w) in acc.iter_mut().zip(ws) {
                    for (m, x_part) in xs.iter().enumerate() {
                        let w_part = _mm256_loadu_ps(w.as_ptr().add(j + 8 * m));
                        acc[m] = _mm256_fmadd_ps(w_part, *x_part, acc[m]);
                    }
                }
                j += LANES;
            }
        }
        for (out, acc) in out.iter_mut().zip(&acc) {
            *out = sum(_mm256_add_ps(
                _mm256_add_ps(acc[0], acc[1]),
                _mm256_add_ps(acc[2], acc[3]),
            ));
        }
    }

    /// The sum of the eight lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn sum(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps::<1>(pair, pair)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel of this CPU, and the portable one.
    fn kernels() -> [Kernel; 2] {
        [Kernel::detect(), Kernel { avx2_fma: false }]
    }

    #[test]
    fn dots_axpy_and_widen_match_plain_loops_on_every_path() {
        // 5 chunks: the two-chunk steps of the AVX2 path leave one chunk over.
        let n = 5 * LANES;
        let x: Vec<f32> = (0..n).map(|j| (j as f32 * 0.37).sin()).collect();
        let weights: Vec<Vec<f32>> = (0..7)
            .map(|k| {
                (0..n)
                    .map(|j| ((j * (k + 2)) as f32 * 0.11).cos())
                    .collect()
            })
            .collect();
        let flat = weights.concat();
        for kernel in kernels() {
            for classes in [&[6, 0, 1, 2, 3, 4, 5][..], &[3], &[5, 2]] {
                let mut out = vec![0.0; classes.len()];
                kernel.dots(&flat, classes, &x, &mut out);
                for (&k, got) in classes.iter().zip(&out) {
                    let expected: f64 = (weights[k].iter().zip(&x))
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    let error = (f64::from(*got) - expected).abs();
                    assert!(error < 1e-4, "{kernel:?}: {got} vs {expected}");
                }
            }
            let mut w = weights[0].clone();
            kernel.axpy(0.5, &x, &mut w);
            for ((&after, &before), &x) in w.iter().zip(&weights[0]).zip(&x) {
                assert!((after - (before + 0.5 * x)).abs() < 1e-6, "{kernel:?}");
            }
            let bytes: Vec<u8> = (0..=255).collect();
            let mut widened = vec![0.0; bytes.len()];
            kernel.widen(&bytes, &mut widened);
            assert_eq!((widened[0], widened[255]), (0.0, 1.0), "{kernel:?}");
            assert!((widened[51] - 0.2).abs() < 1e-7, "{kernel:?}");
        }
    }
}
