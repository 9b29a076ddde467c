//! The machine's single-precision peak, measured: a loop of independent fused
//! multiply-adds in registers (no memory traffic), on each of the job's threads at once.
//! It uses AVX-512 where the CPU has it, else AVX2 + FMA, else plain scalar code, so it is
//! the ceiling this binary can reach on this CPU at the clock it holds under that load.

use std::time::Instant;

/// Multiply-add rounds timed per thread.
const ROUNDS: u64 = 20_000_000;

/// Peak GFLOP/s of `threads` threads and how it was obtained.
#[derive(Debug, Clone)]
pub struct Peak {
    /// Billions of single-precision operations per second, all threads together.
    pub gflops: f64,
    /// The instruction set the loop used.
    pub isa: &'static str,
}

/// Measures the peak of `threads` threads running the FMA loop at the same time.
pub fn measure(threads: usize) -> Peak {
    let isa = isa();
    let started = Instant::now();
    let flops: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1)).map(|_| scope.spawn(run_loop)).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    Peak {
        gflops: flops as f64 / started.elapsed().as_secs_f64() / 1e9,
        isa,
    }
}

fn isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "avx2+fma";
        }
    }
    "scalar"
}

/// Runs the loop; returns the operations done (2 per lane per multiply-add).
fn run_loop() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { x86::fma512(ROUNDS) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { x86::fma256(ROUNDS) };
        }
    }
    scalar(ROUNDS / 16)
}

fn scalar(rounds: u64) -> u64 {
    let mut acc = [1.0f32; 8];
    for _ in 0..rounds {
        for a in &mut acc {
            *a = a.mul_add(0.999_999, 1e-7);
        }
    }
    std::hint::black_box(acc);
    rounds * 8 * 2
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Twelve independent 16-lane accumulators hide the FMA latency on two FMA units.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512(rounds: u64) -> u64 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); 12];
        for _ in 0..rounds {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        std::hint::black_box(acc);
        rounds * 12 * 16 * 2
    }

    /// Twelve independent 8-lane accumulators.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256(rounds: u64) -> u64 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..rounds {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        std::hint::black_box(acc);
        rounds * 12 * 8 * 2
    }
}
