//! Per-thread scratch buffers, reused from one op call (and one training step) to the next.

use std::cell::RefCell;

thread_local! {
    static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `N` scratch buffers of the given lengths, taken from this thread's pool
/// and given back afterwards. Their contents are stale: callers overwrite what they read.
pub fn with_scratch<const N: usize, R>(
    lens: [usize; N],
    f: impl FnOnce([&mut [f32]; N]) -> R,
) -> R {
    let mut bufs: [Vec<f32>; N] = FREE.with(|free| {
        let mut free = free.borrow_mut();
        std::array::from_fn(|_| free.pop().unwrap_or_default())
    });
    for (buf, &len) in bufs.iter_mut().zip(&lens) {
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
    }
    let result = {
        let mut iter = bufs.iter_mut();
        let slices: [&mut [f32]; N] = std::array::from_fn(|i| {
            let buf = iter.next().expect("one buffer per length");
            &mut buf[..lens[i]]
        });
        f(slices)
    };
    FREE.with(|free| free.borrow_mut().extend(bufs));
    result
}
