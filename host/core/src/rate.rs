//! Sliding-window rates: the configuration (`rate = { max, per_ms }`), the
//! stored state of one limited key, and the arithmetic that decides how long
//! a start must wait. Pure: the stores keep the state, the limiters and
//! quotas ask; this module must not know where the state lives.

use serde::Deserialize;

/// A sliding-window rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Starts allowed per window.
    pub max: u32,
    /// The window, in milliseconds.
    pub per_ms: u64,
}

/// The stored state of one rate-limited key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateState {
    /// Start times within the window asked for, oldest first.
    pub starts: Vec<u64>,
    /// No start before this time (0: not paused).
    pub paused_until_ms: u64,
}

impl RateState {
    /// How long a start at `at_ms` must wait (None: it may start now) under
    /// at most `max` starts in any `window_ms`, and the pause.
    pub fn wait_ms(&self, at_ms: u64, window_ms: u64, max: u32) -> Option<u64> {
        wait_ms(&self.starts, self.paused_until_ms, at_ms, window_ms, max)
    }
}

/// The oldest start time still counted at `at_ms` in a window of
/// `window_ms`: a start at `t` counts from `t` until just before
/// `t + window_ms`, so a wait computed from it ends exactly when the start
/// leaves the window. Every store reads and forgets starts by this bound.
pub fn window_start(at_ms: u64, window_ms: u64) -> u64 {
    (at_ms + 1).saturating_sub(window_ms)
}

/// [`RateState::wait_ms`] on borrowed state: `starts` within the window,
/// oldest first, and the pause.
pub fn wait_ms(
    starts: &[u64],
    paused_until_ms: u64,
    at_ms: u64,
    window_ms: u64,
    max: u32,
) -> Option<u64> {
    let paused = paused_until_ms.saturating_sub(at_ms);
    let max = max as usize;
    let full = match starts.len().checked_sub(max) {
        // The start that leaves the window first makes room.
        Some(i) if max > 0 => (starts[i] + window_ms).saturating_sub(at_ms).max(1),
        // No start is ever allowed: wait a whole window.
        Some(_) => window_ms.max(1),
        None => 0,
    };
    match paused.max(full) {
        0 => None,
        wait => Some(wait),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(starts: &[u64], paused_until_ms: u64) -> RateState {
        RateState {
            starts: starts.to_vec(),
            paused_until_ms,
        }
    }

    #[test]
    fn a_start_waits_until_the_oldest_counted_start_leaves_the_window() {
        // 2 per 1000 ms; starts at 100 and 400.
        let s = state(&[100, 400], 0);
        assert_eq!(s.wait_ms(500, 1000, 3), None, "room for a third");
        assert_eq!(s.wait_ms(500, 1000, 2), Some(600), "100 leaves at 1100");
        assert_eq!(s.wait_ms(1099, 1000, 2), Some(1));
        assert_eq!(window_start(1099, 1000), 100, "100 still counts at 1099");
        assert_eq!(window_start(1100, 1000), 101, "and no longer at 1100");
        assert_eq!(window_start(500, 1000), 0);
        assert_eq!(
            s.wait_ms(1000, 1000, 1),
            Some(400),
            "the newer start counts"
        );
    }

    #[test]
    fn a_pause_holds_even_with_room_and_the_longer_wait_wins() {
        assert_eq!(state(&[], 900).wait_ms(500, 1000, 5), Some(400));
        assert_eq!(state(&[], 400).wait_ms(500, 1000, 5), None, "pause over");
        assert_eq!(state(&[100], 700).wait_ms(500, 1000, 1), Some(600));
    }

    #[test]
    fn a_rate_of_zero_allows_nothing() {
        assert_eq!(state(&[], 0).wait_ms(0, 1000, 0), Some(1000));
    }
}
