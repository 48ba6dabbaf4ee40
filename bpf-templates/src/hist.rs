//! Decoding of the kernel's decimal log-linear histograms (`huatuo_log10l_bucket` in
//! `include/huatuo.h`) into `huatuo_dsl::value::Histogram`.
//!
//! Bucket 0 is [0, 1 us); bucket `1 + 9k + (d - 1)` is [d * 10^k us, (d + 1) * 10^k us) for
//! k = 0..7 and d = 1..9; the last bucket is [100 s, inf). Every HUATUO zone edge (10/20/50 ms,
//! 10/100/1000 us, 20/30/50/100/200/400 ms) is a digit times a power of ten, so each is an
//! exact bucket edge and `Histogram::count_between` gives exact zone counts.

use huatuo_dsl::value::Histogram;

/// Number of decades of 9 linear buckets each (1 us .. 100 s).
pub const DECADES: usize = 8;
/// Number of buckets in one kernel histogram (`HUATUO_HIST_SLOTS`).
pub const SLOTS: usize = 2 + 9 * DECADES;

/// The exclusive upper bound, in ns, of bucket `slot` (`u64::MAX` for the last one).
pub fn upper_bound(slot: usize) -> u64 {
    if slot == 0 {
        return 1_000;
    }
    if slot >= SLOTS - 1 {
        return u64::MAX;
    }
    let k = (slot - 1) / 9;
    let d = (slot - 1) % 9 + 1;
    (d as u64 + 1) * 1_000 * 10u64.pow(k as u32)
}

/// The bucket a value in ns falls into: the same function as the kernel's, written from
/// the bounds (the parity test checks both agree).
pub fn bucket_of(ns: u64) -> usize {
    (0..SLOTS)
        .find(|slot| ns < upper_bound(*slot))
        .unwrap_or(SLOTS - 1)
}

/// Turns kernel bucket counts into a histogram of `(upper bound ns, count)`; all buckets are
/// kept (zeros too) so consumers see a stable shape.
pub fn to_histogram(slots: &[u64]) -> Histogram {
    Histogram {
        buckets: slots
            .iter()
            .enumerate()
            .map(|(slot, count)| (upper_bound(slot), *count))
            .collect(),
    }
}

/// Adds `other`'s counts into `acc` slot by slot (sums per-CPU copies).
pub fn add_into(acc: &mut [u64], other: &[u64]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a = a.wrapping_add(*b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const US: u64 = 1_000;

    #[test]
    fn bounds_are_increasing_and_cover_every_zone_edge() {
        let bounds: Vec<u64> = (0..SLOTS).map(upper_bound).collect();
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        let edges = [
            10 * US,
            100 * US,
            1000 * US,
            10 * MS,
            20 * MS,
            30 * MS,
            50 * MS,
            100 * MS,
            200 * MS,
            400 * MS,
        ];
        for edge in edges {
            assert!(bounds.contains(&edge), "{edge} ns is not a bucket edge");
        }
        assert_eq!(bounds[SLOTS - 2], 100_000 * MS);
    }

    #[test]
    fn zone_counts_are_exact_at_the_edges() {
        // Values just below and at 10 ms land on both sides of the runqlat zone0/zone1 edge.
        let mut slots = vec![0u64; SLOTS];
        for ns in [10 * MS - 1, 10 * MS, 20 * MS - 1, 20 * MS, 50 * MS, 3 * US] {
            slots[bucket_of(ns)] += 1;
        }
        let h = to_histogram(&slots);
        assert_eq!(h.count_between(0, 10 * MS), 2);
        assert_eq!(h.count_between(10 * MS, 20 * MS), 2);
        assert_eq!(h.count_between(20 * MS, 50 * MS), 1);
        assert_eq!(h.count_between(50 * MS, u64::MAX), 1);
    }

    #[test]
    fn sums_per_cpu_copies() {
        let mut acc = vec![1, 2, 3];
        add_into(&mut acc, &[10, 20, 30]);
        assert_eq!(acc, vec![11, 22, 33]);
    }
}
