//! Seeded stratified subsets: the same seed always picks the same images.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Picks `n` indices of `labels` keeping each class's share, reproducibly for a `seed`.
///
/// Each class gets `n × class_count / total` images rounded by largest remainder (ties to the
/// lower class), so the counts sum to exactly `n`; the images of each class are drawn with a
/// `ChaCha8Rng` seeded from `seed`. The indices come back sorted ascending.
///
/// When `n` exceeds `labels.len()` the subset is clamped to every index: callers report the
/// real count (`TrainReport::n_train`) rather than fail.
pub fn stratified_subset(labels: &[u8], n: usize, seed: u64) -> Vec<usize> {
    let n = n.min(labels.len());
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); 256];
    for (idx, &label) in labels.iter().enumerate() {
        by_class[usize::from(label)].push(idx);
    }
    let counts: Vec<usize> = by_class.iter().map(Vec::len).collect();
    let quotas = largest_remainder_quotas(&counts, n);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut chosen = Vec::with_capacity(n);
    for (indices, quota) in by_class.iter_mut().zip(quotas) {
        if quota > 0 {
            let (picked, _) = indices.partial_shuffle(&mut rng, quota);
            chosen.extend_from_slice(picked);
        }
    }
    chosen.sort_unstable();
    chosen
}

/// Splits `n` among classes proportionally to `counts`, summing to exactly `n`
/// (`n` must not exceed the sum of `counts`).
fn largest_remainder_quotas(counts: &[usize], n: usize) -> Vec<usize> {
    let total: u128 = counts.iter().map(|&c| c as u128).sum();
    if total == 0 {
        return vec![0; counts.len()];
    }
    let shares: Vec<(usize, u128)> = counts
        .iter()
        .map(|&count| {
            let exact = n as u128 * count as u128;
            ((exact / total) as usize, exact % total)
        })
        .collect();
    let mut quotas: Vec<usize> = shares.iter().map(|&(floor, _)| floor).collect();
    let missing = n - quotas.iter().sum::<usize>();
    let mut by_remainder: Vec<usize> = (0..counts.len()).filter(|&k| shares[k].1 > 0).collect();
    by_remainder.sort_by(|&a, &b| shares[b].1.cmp(&shares[a].1).then(a.cmp(&b)));
    for &class in by_remainder.iter().take(missing) {
        quotas[class] += 1;
    }
    quotas
}

/// A seed for a separate random stream (`stream` = 1, 2, …) derived from a job's seed with
/// SplitMix64, so the train subset, test subset, weights and shuffling stay independent.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed.wrapping_add(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,000 labels: class k appears (k + 1) × 1000 / 55 times, roughly.
    fn skewed_labels() -> Vec<u8> {
        (0..1000u32)
            .map(|i| {
                let mut k = 0u32;
                while (k + 1) * (k + 2) / 2 * 1000 / 55 <= i {
                    k += 1;
                }
                k as u8
            })
            .collect()
    }

    fn class_counts(labels: &[u8], indices: &[usize]) -> [usize; 10] {
        let mut counts = [0; 10];
        for &idx in indices {
            counts[usize::from(labels[idx])] += 1;
        }
        counts
    }

    #[test]
    fn same_seed_same_subset_other_seed_other_subset() {
        let labels = skewed_labels();
        let a = stratified_subset(&labels, 100, 7);
        assert_eq!(a, stratified_subset(&labels, 100, 7));
        assert_ne!(a, stratified_subset(&labels, 100, 8));
        assert_eq!(a.len(), 100);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
    }

    #[test]
    fn class_proportions_are_kept() {
        let labels = skewed_labels();
        let full = class_counts(&labels, &(0..labels.len()).collect::<Vec<_>>());
        for n in [10, 99, 100, 333] {
            let subset = stratified_subset(&labels, n, 1);
            let counts = class_counts(&labels, &subset);
            assert_eq!(counts.iter().sum::<usize>(), n);
            for (k, (&got, &all)) in counts.iter().zip(&full).enumerate() {
                let exact = n as f64 * all as f64 / labels.len() as f64;
                assert!(
                    (got as f64 - exact).abs() < 1.0,
                    "class {k}: {got} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn too_large_a_subset_is_clamped() {
        let labels = [0, 1, 1, 2];
        assert_eq!(stratified_subset(&labels, 10, 3), vec![0, 1, 2, 3]);
        assert!(stratified_subset(&labels, 0, 3).is_empty());
    }

    #[test]
    fn derived_seeds_differ() {
        assert_ne!(derive_seed(42, 1), derive_seed(42, 2));
        assert_ne!(derive_seed(42, 1), derive_seed(43, 1));
        assert_eq!(derive_seed(42, 1), derive_seed(42, 1));
    }
}
