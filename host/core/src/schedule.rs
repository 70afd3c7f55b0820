//! When a schedule fires: a [`Cadence`] (a cron pattern read in a named
//! time zone, or a fixed interval) and what to do about occurrences missed
//! while no host was running ([`CatchUp`]). Pure arithmetic on milliseconds
//! since the Unix epoch: it must not know what a schedule starts, where it
//! is stored or what time it is now (the caller says).
//!
//! ```
//! use weft_core::schedule::{Cadence, CatchUp, due};
//! // 03:00 every day, Paris time; 2025-12-03T02:00:00Z is 03:00 there.
//! let nightly = Cadence::cron("0 3 * * *", "Europe/Paris").unwrap();
//! let first = nightly.next_after(1_764_720_000_000).unwrap();
//! assert_eq!(first, 1_764_727_200_000);
//! // Three days later, with no host up meanwhile: `one` starts one run,
//! // for the latest occurrence, and goes on from now.
//! let now = first + 3 * 86_400_000 + 60_000;
//! let d = due(&nightly, CatchUp::One, first, now, 100);
//! assert_eq!(d.fire, vec![first + 3 * 86_400_000]);
//! assert_eq!(d.next_ms, Some(first + 4 * 86_400_000));
//! ```

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An occurrence this late or less is on time (a busy or restarting host);
/// later, it was missed, and [`CatchUp::Skip`] drops it.
pub const MISSED_AFTER_MS: u64 = 60_000;

/// The shortest interval a schedule may have.
pub const MIN_EVERY_MS: u64 = 1_000;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    /// At the instants a cron pattern matches, read in a time zone.
    Cron {
        /// The pattern: five fields (minute to day of week), or six with
        /// seconds first.
        pattern: String,
        /// An IANA time-zone name (`Europe/Paris`, `UTC`).
        time_zone: String,
    },
    /// Every `every_ms`, counted from `from_ms`.
    Every {
        /// The interval.
        every_ms: u64,
        /// The first occurrence.
        from_ms: u64,
    },
}

/// What a schedule does about occurrences that passed while no host ran it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Nothing: an occurrence more than [`MISSED_AFTER_MS`] late is dropped.
    Skip,
    /// One run, for the latest missed occurrence.
    #[default]
    One,
    /// A run for every missed occurrence, oldest first.
    All,
}

/// A cadence or catch-up policy that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron pattern does not parse.
    #[error("cron pattern `{pattern}`: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// No such time zone.
    #[error("unknown time zone `{0}` (an IANA name such as `Europe/Paris` or `UTC`)")]
    TimeZone(String),
    /// The interval does not parse or is too short.
    #[error("interval `{text}`: {reason}")]
    Interval {
        /// The interval as given.
        text: String,
        /// Why.
        reason: String,
    },
    /// The pattern never matches after the given time.
    #[error("cron pattern `{0}` never fires")]
    Never(String),
}

impl Cadence {
    /// A cron cadence, checked: the pattern parses, the time zone exists,
    /// and it fires at least once more.
    pub fn cron(pattern: &str, time_zone: &str) -> Result<Cadence, ScheduleError> {
        let cadence = Cadence::Cron {
            pattern: pattern.trim().to_string(),
            time_zone: time_zone.trim().to_string(),
        };
        let (cron, tz) = parse_cron(pattern, time_zone)?;
        let now = jiff_tz::Timestamp::now().to_zoned(tz);
        cron.find_next_occurrence(&now, false)
            .map_err(|_| ScheduleError::Never(pattern.to_string()))?;
        Ok(cadence)
    }

    /// A fixed interval (`"15m"`, `"1h 30m"`, `"PT2H"`; at least a second),
    /// first firing at `from_ms`.
    pub fn every(text: &str, from_ms: u64) -> Result<Cadence, ScheduleError> {
        let bad = |reason: &str| ScheduleError::Interval {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let span = jiff::SignedDuration::from_str(text.trim())
            .map_err(|_| bad("not a duration (write it as \"15m\", \"1h 30m\" or \"PT2H\")"))?;
        let every_ms = u64::try_from(span.as_millis()).map_err(|_| bad("must be positive"))?;
        if every_ms < MIN_EVERY_MS {
            return Err(bad("must be at least one second"));
        }
        Ok(Cadence::Every { every_ms, from_ms })
    }

    /// The first occurrence strictly after `after_ms`; none if there is no
    /// other (or the stored cadence no longer parses).
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        match self {
            Cadence::Every { every_ms, from_ms } => {
                if after_ms < *from_ms {
                    return Some(*from_ms);
                }
                let n = (after_ms - from_ms) / every_ms + 1;
                n.checked_mul(*every_ms)?.checked_add(*from_ms)
            }
            Cadence::Cron { pattern, time_zone } => {
                let (cron, tz) = parse_cron(pattern, time_zone).ok()?;
                // Occurrences fall on whole seconds: search from the second
                // `after_ms` is in, exclusive, to get one strictly after it.
                let start = zoned(after_ms / 1_000 * 1_000, tz)?;
                let next = cron.find_next_occurrence(&start, false).ok()?;
                u64::try_from(next.timestamp().as_millisecond()).ok()
            }
        }
    }

    /// The latest occurrence at or before `at_ms`, if any.
    pub fn latest_until(&self, at_ms: u64) -> Option<u64> {
        match self {
            Cadence::Every { every_ms, from_ms } => {
                let since = at_ms.checked_sub(*from_ms)?;
                Some(from_ms + since / every_ms * every_ms)
            }
            Cadence::Cron { pattern, time_zone } => {
                let (cron, tz) = parse_cron(pattern, time_zone).ok()?;
                let start = zoned(at_ms / 1_000 * 1_000, tz)?;
                let found = cron.find_previous_occurrence(&start, true).ok()?;
                u64::try_from(found.timestamp().as_millisecond()).ok()
            }
        }
    }
}

fn parse_cron(
    pattern: &str,
    time_zone: &str,
) -> Result<(croner::Cron, jiff_tz::tz::TimeZone), ScheduleError> {
    let cron = croner::Cron::from_str(pattern.trim()).map_err(|e| ScheduleError::Pattern {
        pattern: pattern.to_string(),
        reason: e.to_string(),
    })?;
    let tz = jiff_tz::tz::TimeZone::get(time_zone.trim())
        .map_err(|_| ScheduleError::TimeZone(time_zone.to_string()))?;
    Ok((cron, tz))
}

fn zoned(ms: u64, tz: jiff_tz::tz::TimeZone) -> Option<jiff_tz::Zoned> {
    let ts = jiff_tz::Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
    Some(ts.to_zoned(tz))
}

/// What a schedule due at `due_ms` does at `now_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The occurrences to start a run for, oldest first.
    pub fire: Vec<u64>,
    /// When it is due next (none: never again).
    pub next_ms: Option<u64>,
}

/// The occurrences a schedule due at `due_ms` (at or before `now_ms`)
/// starts at `now_ms` under `catch_up`, at most `limit` of them (the rest
/// are due at once: `next_ms` is the first not started), and when it is
/// due next.
pub fn due(cadence: &Cadence, catch_up: CatchUp, due_ms: u64, now_ms: u64, limit: usize) -> Due {
    match catch_up {
        CatchUp::All => {
            let mut fire = Vec::new();
            let mut next = Some(due_ms);
            while let Some(at) = next.filter(|at| *at <= now_ms && fire.len() < limit) {
                fire.push(at);
                next = cadence.next_after(at);
            }
            Due {
                fire,
                next_ms: next,
            }
        }
        CatchUp::One | CatchUp::Skip => {
            let latest = cadence
                .latest_until(now_ms)
                .filter(|at| *at >= due_ms)
                .filter(|at| catch_up == CatchUp::One || now_ms - at <= MISSED_AFTER_MS);
            Due {
                fire: latest.into_iter().collect(),
                next_ms: cadence.next_after(now_ms),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    /// 2025-12-03T00:00:00Z.
    const DAY0: u64 = 1_764_720_000_000;

    #[test]
    fn cron_patterns_are_read_in_their_time_zone() {
        let utc = Cadence::cron("30 6 * * *", "UTC").unwrap();
        assert_eq!(utc.next_after(DAY0), Some(DAY0 + 6 * HOUR + 30 * 60_000));
        let tokyo = Cadence::cron("30 6 * * *", "Asia/Tokyo").unwrap();
        // 06:30 in Tokyo is 21:30 UTC the day before.
        assert_eq!(tokyo.next_after(DAY0), Some(DAY0 + 21 * HOUR + 30 * 60_000));
        // Strictly after: an occurrence is not its own next.
        let at = utc.next_after(DAY0).unwrap();
        assert_eq!(utc.next_after(at), Some(at + 24 * HOUR));
        assert_eq!(utc.latest_until(at + 500), Some(at));
        // Seconds, when six fields are given.
        let often = Cadence::cron("*/10 * * * * *", "UTC").unwrap();
        assert_eq!(often.next_after(DAY0 + 1), Some(DAY0 + 10_000));
    }

    #[test]
    fn daylight_saving_time_moves_the_utc_instant_not_the_local_one() {
        // 2026-03-29: Paris goes from UTC+1 to UTC+2 at 01:00 UTC.
        let paris = Cadence::cron("0 9 * * *", "Europe/Paris").unwrap();
        let march_28 = 1_774_656_000_000; // 2026-03-28T00:00:00Z
        let before = paris.next_after(march_28).unwrap();
        let after = paris.next_after(before).unwrap();
        assert_eq!(before, march_28 + 8 * HOUR);
        assert_eq!(after - before, 23 * HOUR);
    }

    #[test]
    fn bad_cadences_are_refused_naming_what_is_wrong() {
        let e = Cadence::cron("61 * * * *", "UTC").unwrap_err();
        assert!(matches!(e, ScheduleError::Pattern { .. }), "{e}");
        let e = Cadence::cron("0 3 * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(e, ScheduleError::TimeZone("Mars/Olympus".into()));
        assert!(Cadence::cron("0 0 30 2 *", "UTC").is_err(), "February 30th");
        for bad in ["soon", "0s", "500ms", "-5m"] {
            assert!(Cadence::every(bad, 0).is_err(), "{bad}");
        }
        assert_eq!(
            Cadence::every("1h 30m", 7).unwrap(),
            Cadence::Every {
                every_ms: 90 * 60_000,
                from_ms: 7
            }
        );
    }

    #[test]
    fn catch_up_policies() {
        let hourly = Cadence::Every {
            every_ms: HOUR,
            from_ms: DAY0,
        };
        // Due at DAY0, now 5h30m later: occurrences at 0h..5h passed.
        let now = DAY0 + 5 * HOUR + 30 * 60_000;
        let all = due(&hourly, CatchUp::All, DAY0, now, 100);
        assert_eq!(
            all.fire,
            (0..6).map(|h| DAY0 + h * HOUR).collect::<Vec<_>>()
        );
        assert_eq!(all.next_ms, Some(DAY0 + 6 * HOUR));
        let one = due(&hourly, CatchUp::One, DAY0, now, 100);
        assert_eq!(one.fire, vec![DAY0 + 5 * HOUR]);
        assert_eq!(one.next_ms, Some(DAY0 + 6 * HOUR));
        let skip = due(&hourly, CatchUp::Skip, DAY0, now, 100);
        assert_eq!(skip.fire, Vec::<u64>::new());
        assert_eq!(skip.next_ms, Some(DAY0 + 6 * HOUR));
        // On time (within a minute), skip fires too.
        let on_time = due(&hourly, CatchUp::Skip, DAY0, DAY0 + 2_000, 100);
        assert_eq!(on_time.fire, vec![DAY0]);
        // `all` is bounded per call; the rest is due at once.
        let some = due(&hourly, CatchUp::All, DAY0, now, 2);
        assert_eq!(some.fire, vec![DAY0, DAY0 + HOUR]);
        assert_eq!(some.next_ms, Some(DAY0 + 2 * HOUR));
    }

    #[test]
    fn a_month_of_missed_seconds_costs_one_step_unless_all_are_asked_for() {
        let every_second = Cadence::cron("* * * * * *", "UTC").unwrap();
        let month = 30 * 24 * HOUR;
        let one = due(&every_second, CatchUp::One, DAY0, DAY0 + month, 1_000);
        assert_eq!(one.fire, vec![DAY0 + month]);
        let all = due(&every_second, CatchUp::All, DAY0, DAY0 + month, 1_000);
        assert_eq!(all.fire.len(), 1_000);
        assert_eq!(all.next_ms, Some(DAY0 + 1_000_000));
    }
}
