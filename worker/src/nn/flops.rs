//! A count of the model's arithmetic: every convolution and linear layer adds the
//! multiply-adds its forward and backward need (2 FLOPs each, the useful ones only: no
//! padding, no junk columns), so that `worker bench` can report achieved GFLOP/s.

use std::sync::atomic::{AtomicU64, Ordering};

static FLOPS: AtomicU64 = AtomicU64::new(0);

/// Adds `multiply_adds` × 2 FLOPs.
pub fn add(multiply_adds: usize) {
    FLOPS.fetch_add(2 * multiply_adds as u64, Ordering::Relaxed);
}

/// The FLOPs counted since the process started.
pub fn done() -> u64 {
    FLOPS.load(Ordering::Relaxed)
}
