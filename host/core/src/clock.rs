//! Time, as Weft reads it: milliseconds since the Unix epoch, from a
//! [`Clock`]. Where time decides behaviour (rate windows, leases, retry due
//! times, quota windows) the deciding code asks a clock it was given, so a
//! test can hold time still or move it by hand ([`ManualClock`]) and assert
//! exact behaviour. This module must not know what the time is used for.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// How long to sleep before looking again for something due at
    /// `due_ms`: until then, by a clock that moves by itself; a clock moved
    /// by hand may jump ahead at any time, so a waiter looks again soon.
    fn recheck_in(&self, due_ms: u64) -> Duration {
        Duration::from_millis(due_ms.saturating_sub(self.now_ms()))
    }
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// The system clock, shared.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to: for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `ms`.
    pub fn at(ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            ms: AtomicU64::new(ms),
        })
    }

    /// Move it forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.ms.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

/// How often a waiter on a [`ManualClock`] looks at it again.
const MANUAL_RECHECK: Duration = Duration::from_millis(20);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }

    fn recheck_in(&self, due_ms: u64) -> Duration {
        Duration::from_millis(due_ms.saturating_sub(self.now_ms())).min(MANUAL_RECHECK)
    }
}

/// Milliseconds since the Unix epoch by the system clock (0 if it is before
/// the epoch). For time that only stamps (event times); code whose behaviour
/// depends on time asks its [`Clock`].
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_millis(250));
        assert_eq!(clock.now_ms(), 1_250);
        assert!(SystemClock.now_ms() > 1_700_000_000_000);
        // Waiting for a time: until then on the system clock; soon again
        // on one moved by hand.
        let soon = SystemClock.now_ms() + 60_000;
        assert!(SystemClock.recheck_in(soon) > Duration::from_secs(59));
        assert_eq!(clock.recheck_in(1_250 + 60_000), MANUAL_RECHECK);
        assert_eq!(clock.recheck_in(1_000), Duration::ZERO);
    }
}
