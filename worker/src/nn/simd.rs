//! A small SIMD abstraction for the conv kernels: 16-lane AVX-512, 8-lane AVX2 + FMA, and
//! a portable 8-lane fallback. Kernels are generic over [`Simd`] and compiled once per
//! instruction set inside a `#[target_feature]` function chosen at run time.

/// Vector operations on `LANES` f32 lanes.
///
/// # Safety
/// Implementations use instructions of their instruction set: call their methods only
/// from code compiled for it (a `#[target_feature]` function entered after detection).
#[allow(clippy::missing_safety_doc)] // one Safety section, on `zero`, covers every method
pub unsafe trait Simd: Copy {
    /// f32 lanes per vector.
    const LANES: usize;
    /// The vector type.
    type V: Copy;
    /// All lanes zero.
    ///
    /// # Safety
    /// Every method: only from code compiled for the instruction set (see the trait);
    /// `load` and `store` also need `LANES` valid floats at `p`.
    unsafe fn zero() -> Self::V;
    /// All lanes `v`.
    unsafe fn splat(v: f32) -> Self::V;
    /// `LANES` floats from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self::V;
    /// `LANES` floats to `p` (unaligned).
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a · b + c`.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The sum of the lanes.
    unsafe fn sum(v: Self::V) -> f32;
}

/// Portable code: eight lanes in an array, which the compiler vectorises as it can.
#[derive(Debug, Clone, Copy)]
pub struct Portable;

// SAFETY: plain Rust, valid on every CPU.
unsafe impl Simd for Portable {
    const LANES: usize = 8;
    type V = [f32; 8];
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        [0.0; 8]
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self::V {
        [v; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: the caller guarantees 8 readable floats at p.
        unsafe { std::ptr::read_unaligned(p.cast::<[f32; 8]>()) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: the caller guarantees 8 writable floats at p.
        unsafe { std::ptr::write_unaligned(p.cast::<[f32; 8]>(), v) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    unsafe fn sum(v: Self::V) -> f32 {
        v.iter().sum()
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Simd;

    /// AVX-512F: 16 lanes.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx512;

    // SAFETY: used only inside functions compiled with `avx512f` after detection.
    unsafe impl Simd for Avx512 {
        const LANES: usize = 16;
        type V = __m512;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> __m512 {
            unsafe { _mm512_set1_ps(v) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn sum(v: __m512) -> f32 {
            unsafe { _mm512_reduce_add_ps(v) }
        }
    }

    /// AVX2 with FMA: 8 lanes.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx2;

    // SAFETY: used only inside functions compiled with `avx2,fma` after detection.
    unsafe impl Simd for Avx2 {
        const LANES: usize = 8;
        type V = __m256;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> __m256 {
            unsafe { _mm256_set1_ps(v) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn sum(v: __m256) -> f32 {
            unsafe {
                let hi = _mm256_extractf128_ps(v, 1);
                let s = _mm_add_ps(_mm256_castps256_ps128(v), hi);
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
                _mm_cvtss_f32(s)
            }
        }
    }
}

/// The instruction set the kernels use on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F.
    Avx512,
    /// AVX2 + FMA.
    Avx2,
    /// Portable code.
    Portable,
}

#[cfg(test)]
thread_local! {
    static FORCED: std::cell::Cell<Option<Isa>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with the kernels of this thread using `isa` (tests of every code path on one
/// machine; `isa` must be one the CPU has, see [`available`]).
#[cfg(test)]
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    assert!(available().contains(&isa), "this CPU lacks {isa:?}");
    FORCED.with(|forced| forced.set(Some(isa)));
    let result = f();
    FORCED.with(|forced| forced.set(None));
    result
}

/// The instruction sets this CPU can run, the portable code included.
pub fn available() -> Vec<Isa> {
    let mut isas = vec![Isa::Portable];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            isas.push(Isa::Avx2);
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            isas.push(Isa::Avx512);
        }
    }
    isas
}

/// The best instruction set of this CPU (detection is cached by the standard library).
pub fn isa() -> Isa {
    #[cfg(test)]
    if let Some(isa) = FORCED.with(std::cell::Cell::get) {
        return isa;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// Defines a function that runs an `#[inline(always)]` body compiled for the best
/// instruction set of this CPU, so that the compiler vectorises its loops (plain
/// element-wise passes: batch-norm maps, masks, sums) with that set's widest vectors:
///
/// `multiversion!(pub fn name(a: &[f32], b: f32) -> f32 = body);`
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $body:path;) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                match $crate::nn::simd::isa() {
                    // SAFETY: the instruction set was detected on this CPU.
                    $crate::nn::simd::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::nn::simd::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::nn::simd::Isa::Portable => {}
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;
