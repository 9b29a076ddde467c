//! The fast CPU op layer the nets train on: candle custom ops with their own backward,
//! so that candle's autograd and optimizers keep working.
//!
//! - [`conv`]: the conv block `pool(relu(affine(conv(x, w))))`, as im2col + matrix
//!   products, with bias or batch norm, ReLU and 2×2 max/average pooling fused.
//! - [`ops`]: batch norm (+ ReLU), 2×2 max and average pooling, global average pooling,
//!   channel concatenation, linear (+ ReLU) and softmax cross-entropy.
//! - [`layers`]: the layers built from a `VarBuilder` that nets are made of.
//! - [`adamw`]: AdamW updating every variable in place in one pass.
//!
//! Kernels work on raw slices; a batch is split into chunks of images run on the job's
//! threads ([`par`]), with scratch buffers reused across steps ([`scratch`]).

pub mod adamw;
pub mod conv;
pub mod elementwise;
pub mod flops;
pub mod gemm;
pub mod layers;
pub mod norm;
pub mod ops;
pub mod par;
pub mod pool;
pub mod raw;
pub mod scratch;
pub mod simd;

pub use adamw::FusedAdamW;
pub use conv::{BlockSpec, conv_block};
pub use pool::Pool;

/// Keeps freed memory in the process instead of returning it to the kernel, so that the
/// tensors of one training step reuse the pages of the previous one rather than fault in
/// fresh zeroed pages (glibc would otherwise map each tensor of over ~128 KiB afresh).
/// Call once, at the start of a training process.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is called before any other thread starts.
    unsafe {
        // 32 MiB is glibc's largest mmap threshold on 64-bit systems.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        // One arena for every thread: the compute threads' arenas would each map and
        // give back their own pages.
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(test)]
mod tests;
