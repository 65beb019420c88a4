//! Latency statistics: a log-linear ("HDR-style") histogram of microsecond values.
//!
//! Values below 256 µs are counted exactly; above that each power of two is split into 128
//! equal sub-buckets, so any reported value is within 1/128 (< 0.8 %) of a recorded one.
//! Percentiles use the nearest-rank definition: the smallest recorded value such that at
//! least p % of all values are ≤ it. Reported values are the top of their bucket, capped at
//! the true maximum.

const EXACT: u64 = 256;
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS; // 128 sub-buckets per power of two
const BUCKETS: usize = EXACT as usize + (64 - 8) * SUB as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Histogram(n={}, min={}, max={})",
            self.total, self.min, self.max
        )
    }
}

fn index_of(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // ≥ 8
    let shift = e - SUB_BITS;
    let m = v >> shift; // 128..=255
    EXACT as usize + (e as usize - 8) * SUB as usize + (m - SUB) as usize
}

/// The largest value that falls in bucket `idx`.
fn highest_of(idx: usize) -> u64 {
    if idx < EXACT as usize {
        return idx as u64;
    }
    let rel = idx - EXACT as usize;
    let e = (rel / SUB as usize) as u32 + 8;
    let m = (rel % SUB as usize) as u64 + SUB;
    let shift = e - SUB_BITS;
    ((m + 1) << shift).wrapping_sub(1)
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        self.counts[index_of(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v as u128;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    #[allow(dead_code)] // used by tests
    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    #[allow(dead_code)] // used by tests
    pub fn min(&self) -> u64 {
        if self.total == 0 { 0 } else { self.min }
    }

    #[allow(dead_code)] // used by tests
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// Nearest-rank percentile, `p` in (0, 100]; 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let rank = rank.min(self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return highest_of(i).min(self.max).max(self.min);
            }
        }
        self.max
    }
}

/// The median of `xs` (mean of the middle two for an even count); 0 when empty.
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_percentiles_on_small_values() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(90.0), 90);
        assert_eq!(h.percentile(99.0), 99);
        assert_eq!(h.percentile(100.0), 100);
        assert_eq!(h.percentile(0.1), 1);
        assert_eq!(h.max(), 100);
        assert_eq!(h.min(), 1);
        assert!((h.mean() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn nearest_rank_on_uneven_data() {
        let mut h = Histogram::new();
        for v in [15, 20, 35, 40, 50] {
            h.record(v);
        }
        // Classic nearest-rank example: P30 = 20, P40 = 20, P50 = 35, P100 = 50.
        assert_eq!(h.percentile(30.0), 20);
        assert_eq!(h.percentile(40.0), 20);
        assert_eq!(h.percentile(50.0), 35);
        assert_eq!(h.percentile(100.0), 50);
    }

    #[test]
    fn large_values_within_relative_error() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1_000); // 1 ms .. 10 s
        }
        for (p, exact) in [(50.0, 5_000_000u64), (90.0, 9_000_000), (99.0, 9_900_000)] {
            let got = h.percentile(p);
            let err = (got as f64 - exact as f64).abs() / exact as f64;
            assert!(err < 1.0 / 128.0, "p{p}: {got} vs {exact}");
            assert!(got >= exact, "reported value is the bucket top");
        }
        assert_eq!(h.percentile(100.0), 10_000_000);
    }

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        let mut prev = 0;
        for idx in 1..BUCKETS - 1 {
            let hi = highest_of(idx);
            assert!(hi > prev);
            assert_eq!(index_of(hi), idx);
            assert_eq!(index_of(highest_of(idx - 1) + 1), idx);
            prev = hi;
        }
        assert_eq!(index_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn merge_adds_up() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in 0..50 {
            a.record(v);
        }
        for v in 50..100 {
            b.record(v);
        }
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.percentile(50.0), 49);
        assert_eq!(a.max(), 99);
        assert_eq!(a.min(), 0);
    }

    #[test]
    fn empty_and_median() {
        let h = Histogram::new();
        assert_eq!(h.percentile(99.0), 0);
        assert_eq!(h.min(), 0);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
