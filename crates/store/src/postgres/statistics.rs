//! Fresh planner statistics while the data grows.
//!
//! PostgreSQL plans from statistics that autovacuum refreshes only after a table has grown
//! by a fraction of its size at the last analyze, and a minute later at the earliest. During
//! a bulk load (a region's records arriving as transaction bundles) the statistics describe a
//! far smaller database, and the planner chooses hash joins over sequential scans that cost
//! 0.5–2 s per search at 1M resources instead of 0.2 ms (measured; docs/PERFORMANCE.md). So
//! the store analyzes its own tables when this process has written a good deal since the
//! last time: after the first 10,000 resources, then after each further quarter (at least
//! 10,000), in the background, one at a time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Resources written before the first analyze, and the least growth between two.
pub const MIN_GROWTH: u64 = 10_000;

/// The tables whose statistics the search and read plans depend on.
pub const ANALYZE_SQL: &str = "ANALYZE resource_current, resource_versions, index_token, \
     index_string, index_date, index_reference, index_number, index_uri, index_composite";

#[derive(Debug)]
pub struct Statistics {
    written: AtomicU64,
    next_at: AtomicU64,
    running: AtomicBool,
}

impl Default for Statistics {
    fn default() -> Self {
        Statistics {
            written: AtomicU64::new(0),
            next_at: AtomicU64::new(MIN_GROWTH),
            running: AtomicBool::new(false),
        }
    }
}

impl Statistics {
    /// Records `n` resources written. `true` means an analyze is due and the caller must run
    /// it and then call [`Statistics::analyzed`]; no other caller gets `true` meanwhile.
    pub fn wrote(&self, n: u64) -> bool {
        let total = self.written.fetch_add(n, Ordering::Relaxed) + n;
        total >= self.next_at.load(Ordering::Relaxed) && !self.running.swap(true, Ordering::AcqRel)
    }

    /// The analyze finished (or failed: the next one is tried after the same growth).
    pub fn analyzed(&self) {
        let total = self.written.load(Ordering::Relaxed);
        self.next_at
            .store(total + (total / 4).max(MIN_GROWTH), Ordering::Relaxed);
        self.running.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_after_growth_and_once_at_a_time() {
        let s = Statistics::default();
        assert!(!s.wrote(MIN_GROWTH - 1));
        assert!(s.wrote(1), "due at 10,000");
        assert!(!s.wrote(50_000), "not twice while one runs");
        s.analyzed(); // at 60,000: next after 15,000 more (a quarter)
        assert!(!s.wrote(14_999));
        assert!(s.wrote(1));
        s.analyzed(); // at 75,000: next after 18,750 more
        assert!(!s.wrote(18_749));
        assert!(s.wrote(1));
    }
}
