//! im2col and col2im by AVX-512 gathers and scatters, for the im2col engine: the chunk's
//! images are first copied into zero-padded planes, then each row of the column matrix
//! (one input channel at one kernel offset) is read as gathers from one index vector of
//! the output pixels, shifted by the row's offset. Small planes have rows of a few floats,
//! which row-by-row copies handle poorly.

use super::Geom;
use super::direct::Layout;

/// The padded plane of every output pixel of `n` images, then 0 up to `cs` (junk columns
/// that read a valid input and are never used).
pub fn pixel_index(g: &Geom, padded: &Layout, n: usize, cs: usize) -> Vec<i32> {
    let mut idx = Vec::with_capacity(cs);
    for i in 0..n {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                idx.push((i * padded.len() + oh * g.stride * padded.wp + ow * g.stride) as i32);
            }
        }
    }
    idx.resize(cs, 0);
    idx
}

/// The column of row (channel `c`, kernel row `kh`, column `kw`) starts `row_offset` past
/// the index of its pixel.
fn row_offset(g: &Geom, padded: &Layout, row: usize) -> usize {
    let kk = g.kernel * g.kernel;
    let (c, o) = (row / kk, row % kk);
    c * padded.plane + (o / g.kernel) * padded.wp + o % g.kernel
}

/// Fills `col` (`K` rows of `cs`) from the padded images `xp` by gathers.
///
/// # Safety
/// AVX-512F must be available; `idx` from [`pixel_index`] for `xp`'s layout.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn im2col(
    g: &Geom,
    padded: &Layout,
    xp: &[f32],
    idx: &[i32],
    col: &mut [f32],
    cs: usize,
) {
    use std::arch::x86_64::*;
    assert!(idx.len() == cs && cs.is_multiple_of(16) && col.len() >= g.k_dim() * cs);
    let max = idx.iter().copied().max().unwrap_or(0) as usize;
    for row in 0..g.k_dim() {
        let base = row_offset(g, padded, row);
        assert!(
            base + max < xp.len(),
            "im2col gather beyond the padded images"
        );
        let dst = &mut col[row * cs..][..cs];
        for q in (0..cs).step_by(16) {
            // SAFETY: every index plus `base` lies inside `xp` (checked above).
            unsafe {
                let vidx = _mm512_loadu_si512(idx.as_ptr().add(q).cast());
                let v = _mm512_i32gather_ps::<4>(vidx, xp.as_ptr().add(base));
                _mm512_storeu_ps(dst.as_mut_ptr().add(q), v);
            }
        }
    }
}

/// Adds `col` (`K` rows of `cs`, its first `live` columns) into the padded gradient `dxp`
/// by gathers and scatters (the pixels of one row never share an input, so lanes never
/// collide).
///
/// # Safety
/// AVX-512F must be available; `idx` from [`pixel_index`] for `dxp`'s layout.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn col2im(
    g: &Geom,
    padded: &Layout,
    col: &[f32],
    idx: &[i32],
    live: usize,
    dxp: &mut [f32],
    cs: usize,
) {
    use std::arch::x86_64::*;
    assert!(idx.len() == cs && cs.is_multiple_of(16) && col.len() >= g.k_dim() * cs && live <= cs);
    let max = idx.iter().copied().max().unwrap_or(0) as usize;
    for row in 0..g.k_dim() {
        let base = row_offset(g, padded, row);
        assert!(
            base + max < dxp.len(),
            "col2im scatter beyond the padded images"
        );
        let src = &col[row * cs..][..cs];
        for q in (0..live).step_by(16) {
            let mask: __mmask16 = if live - q >= 16 {
                0xffff
            } else {
                (1u16 << (live - q)) - 1
            };
            // SAFETY: every index plus `base` lies inside `dxp`; masked-off lanes are not touched.
            unsafe {
                let vidx = _mm512_loadu_si512(idx.as_ptr().add(q).cast());
                let p = dxp.as_mut_ptr().add(base);
                let old = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, vidx, p);
                let new = _mm512_add_ps(old, _mm512_loadu_ps(src.as_ptr().add(q)));
                _mm512_mask_i32scatter_ps::<4>(p.cast(), mask, vidx, new);
            }
        }
    }
}
