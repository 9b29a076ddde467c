//! Work split over the job's threads: a batch is cut into chunks of images that
//! depend only on the layer's shape and the batch size, never on the thread count,
//! so that partial sums are added in the same order however many threads run them.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Threads the ops may use: rayon's pool size (`RAYON_NUM_THREADS`, which the worker
/// sets from the job's `threads`).
pub fn n_threads() -> usize {
    rayon::current_num_threads()
}

/// Images per chunk when a chunk of `batch` images costs `per_image` floats of scratch:
/// as many as fit in `budget` floats and at most a quarter of the batch, preferring an
/// even number of chunks (so that two threads share the work evenly); at least one.
pub fn chunk_len(batch: usize, per_image: usize, budget: usize) -> usize {
    let most = (budget / per_image.max(1)).min(batch.div_ceil(4)).max(1);
    (1..=most)
        .rev()
        .find(|&len| batch.div_ceil(len) % 2 == 0)
        .unwrap_or(most)
}

/// Runs `f` on every item, on every thread of the pool when it has more than one, and
/// returns the results in item order. Items usually carry disjoint `&mut` chunks of an
/// output, so each chunk is written by exactly one thread.
pub fn map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    if n_threads() > 1 && items.len() > 1 {
        items.into_par_iter().map(f).collect()
    } else {
        items.into_iter().map(f).collect()
    }
}

/// `data` cut into chunks of `len` images of `per_image` elements (the last may be
/// shorter); an empty `data` gives `n_chunks` empty chunks, for outputs an op skips.
pub fn chunks_mut<T>(
    data: &mut [T],
    per_image: usize,
    len: usize,
    n_chunks: usize,
) -> Vec<&mut [T]> {
    if data.is_empty() {
        return (0..n_chunks).map(|_| <&mut [T]>::default()).collect();
    }
    data.chunks_mut((len * per_image).max(1)).collect()
}

/// Adds the partial sums in chunk order into one vector (each element's additions in
/// the same order whatever the thread count; large vectors are split over the threads).
pub fn sum_in_order(parts: Vec<Vec<f32>>) -> Vec<f32> {
    const PIECE: usize = 1 << 13;
    let mut parts = parts.into_iter();
    let mut total = parts.next().unwrap_or_default();
    let rest: Vec<Vec<f32>> = parts.collect();
    let add = |start: usize, piece: &mut [f32]| {
        for part in &rest {
            for (t, p) in piece.iter_mut().zip(&part[start..]) {
                *t += p;
            }
        }
    };
    if n_threads() > 1 && total.len() > 4 * PIECE {
        total
            .par_chunks_mut(PIECE)
            .enumerate()
            .for_each(|(idx, piece)| add(idx * PIECE, piece));
    } else {
        add(0, &mut total);
    }
    total
}

/// Adds the f64 partial sums in chunk order into one vector.
pub fn sum_in_order_f64(parts: Vec<Vec<f64>>) -> Vec<f64> {
    let mut parts = parts.into_iter();
    let mut total = parts.next().unwrap_or_default();
    for part in parts {
        for (t, p) in total.iter_mut().zip(&part) {
            *t += p;
        }
    }
    total
}

/// `n` zeros, written by every thread of the pool for large `n` (a tensor of several
/// megabytes is zeroed at every step; one thread alone would hold the others up).
pub fn zeros(n: usize) -> Vec<f32> {
    const PIECE: usize = 1 << 14;
    if n_threads() == 1 || n < 4 * PIECE {
        return vec![0.0; n];
    }
    let mut v: Vec<f32> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(PIECE)
        .for_each(|piece| piece.fill(MaybeUninit::new(0.0)));
    // SAFETY: the loop above initialised all `n` elements.
    unsafe { v.set_len(n) };
    v
}
