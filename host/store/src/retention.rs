//! The output cache's retention rule and size measure, written once for every
//! backend.
//!
//! `keep_last` K: a task type keeps its newest K entries. Finding the oldest
//! entries costs a scan of the type's index, so every backend prunes in
//! batches: when a put takes a type past K + K/10 entries, its oldest are
//! dropped back to K. Between prunes a type holds at most a tenth more than
//! K (exactly K for K under 10).

use weft_core::cache::CacheEntry;

/// The retention rule for one task type ([`crate::CachePut::keep_last`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Retention {
    keep: u64,
}

impl Retention {
    /// Keep the newest `keep` entries.
    pub(crate) fn keep_last(keep: usize) -> Self {
        Retention { keep: keep as u64 }
    }

    /// How many entries a type may hold beyond `keep` before it is pruned.
    fn slack(self) -> u64 {
        self.keep / 10
    }

    /// How many of the oldest entries to drop from a type that now holds
    /// `entries`: none until it holds more than `keep + keep / 10`, then
    /// enough to leave `keep`.
    pub(crate) fn excess(self, entries: u64) -> u64 {
        if entries > self.keep + self.slack() {
            entries - self.keep
        } else {
            0
        }
    }
}

/// An entry's size as [`crate::OutputCache::cache_stats`] reports it, on
/// every backend: the bytes of its stored (JSON) form.
pub(crate) fn entry_bytes(entry: &CacheEntry) -> u64 {
    serde_json::to_vec(entry).map_or(0, |v| v.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_limits_are_exact() {
        let r = Retention::keep_last(2);
        assert_eq!(r.excess(2), 0);
        assert_eq!(r.excess(3), 1);
    }

    #[test]
    fn large_limits_prune_in_batches_of_a_tenth() {
        let r = Retention::keep_last(1_000);
        assert_eq!(r.excess(1_100), 0, "a tenth more is allowed");
        assert_eq!(r.excess(1_101), 101, "then back to the limit");
    }

    #[test]
    fn zero_keeps_nothing() {
        assert_eq!(Retention::keep_last(0).excess(1), 1);
    }
}
