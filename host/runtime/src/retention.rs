//! How long ended runs are kept, and the pruning that deletes the rest.
//!
//! Owns the retention rule (`[retention]` in `weft.toml`): an age per
//! ended status (succeeded, failed, cancelled), overridden per user and per
//! saved graph; and [`Pruner`], which walks the store oldest run first, a
//! bounded number of runs per pass (resuming where the last pass stopped),
//! deleting each ended run older than its rule with everything of it.
//! Running runs are never deleted. It knows the store only through
//! [`RunLog`]'s `runs_oldest` and `delete_run`.
//!
//! ```toml
//! [retention]
//! succeeded = "30d"          # the defaults
//! failed = "90d"
//! cancelled = "30d"
//! [retention.users.ci]
//! succeeded = "1d"
//! [retention.graphs.audit]
//! succeeded = "never"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::events::RunStatus;
use crate::store::{RunLog, RunLogError, RunRecord};

/// How long a run is kept after it ended: a duration (`"30d"`, `"12h"`,
/// `"90m"`, `"45s"`, `"2w"`) or `"never"` (kept forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Age(pub Option<Duration>);

impl Age {
    /// Parse `"30d"`, `"12h"`, `"90m"`, `"45s"`, `"2w"` or `"never"`.
    pub fn parse(text: &str) -> Result<Age, String> {
        let text = text.trim();
        if text == "never" {
            return Ok(Age(None));
        }
        let unit_at = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{text}` needs a unit: s, m, h, d or w (e.g. \"30d\")"))?;
        let (number, unit) = text.split_at(unit_at);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a number and a unit (e.g. \"30d\")"))?;
        let seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(format!("`{text}`: the unit is one of s, m, h, d, w")),
        };
        let total = n
            .checked_mul(seconds)
            .ok_or_else(|| format!("`{text}` is too long"))?;
        Ok(Age(Some(Duration::from_secs(total))))
    }
}

impl<'de> Deserialize<'de> for Age {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Age::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("never"),
            Some(d) => write!(f, "{}s", d.as_secs()),
        }
    }
}

/// An age per ended status; unset ones fall back to the wider rule.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ages {
    /// Runs that succeeded.
    pub succeeded: Option<Age>,
    /// Runs that failed (and their dead letters).
    pub failed: Option<Age>,
    /// Runs that were cancelled.
    pub cancelled: Option<Age>,
}

impl Ages {
    fn of(&self, status: RunStatus) -> Option<Age> {
        match status {
            RunStatus::Succeeded => self.succeeded,
            RunStatus::Failed => self.failed,
            RunStatus::Cancelled => self.cancelled,
            _ => None,
        }
    }
}

/// `[retention]`: how long ended runs are kept (see the module docs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Runs that succeeded, unless a user's or graph's rule says otherwise.
    pub succeeded: Option<Age>,
    /// Runs that failed (and their dead letters).
    pub failed: Option<Age>,
    /// Runs that were cancelled.
    pub cancelled: Option<Age>,
    /// Per user (the run's owner), over the ages above.
    pub users: BTreeMap<String, Ages>,
    /// Per saved graph (by name), over the user's and the ages above.
    pub graphs: BTreeMap<String, Ages>,
    /// How often the daemon prunes, in seconds.
    pub every_s: u64,
    /// The most runs one pass looks at.
    pub per_pass: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        let days = |n: u64| Some(Age(Some(Duration::from_secs(n * 86_400))));
        RetentionConfig {
            succeeded: days(30),
            failed: days(90),
            cancelled: days(30),
            users: BTreeMap::new(),
            graphs: BTreeMap::new(),
            every_s: 300,
            per_pass: 10_000,
        }
    }
}

impl RetentionConfig {
    /// The rule for `run`: its saved graph's, else its owner's, else the
    /// general one; `None` for a run that has not ended or is kept forever.
    pub fn max_age(&self, run: &RunRecord) -> Option<Duration> {
        let status = run.status;
        let graph = run.graph_name.as_ref().and_then(|g| self.graphs.get(g));
        let user = run.owner.as_ref().and_then(|u| self.users.get(u));
        let general = Ages {
            succeeded: self.succeeded,
            failed: self.failed,
            cancelled: self.cancelled,
        };
        [graph, user, Some(&general)]
            .into_iter()
            .flatten()
            .find_map(|ages| ages.of(status))
            .and_then(|age| age.0)
    }

    /// The latest creation time (ms) a run may have and be past its rule at
    /// `now_ms`: the shortest age of any rule before `now_ms` (0 when every
    /// rule is `never`). Runs are listed oldest first, so a pass stops at
    /// the first run created after it.
    pub fn horizon(&self, now_ms: u64) -> u64 {
        let general = Ages {
            succeeded: self.succeeded,
            failed: self.failed,
            cancelled: self.cancelled,
        };
        let shortest = std::iter::once(&general)
            .chain(self.users.values())
            .chain(self.graphs.values())
            .flat_map(|a| [a.succeeded, a.failed, a.cancelled])
            .filter_map(|age| age.and_then(|a| a.0))
            .min();
        shortest.map_or(0, |age| now_ms.saturating_sub(age.as_millis() as u64))
    }

    /// Whether `run` is past its rule at `now_ms`.
    pub fn expired(&self, run: &RunRecord, now_ms: u64) -> bool {
        self.max_age(run)
            .is_some_and(|age| run.updated_ms.saturating_add(age.as_millis() as u64) <= now_ms)
    }
}

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Runs looked at.
    pub scanned: usize,
    /// Runs deleted.
    pub deleted: usize,
    /// Whether the pass reached the newest run (the next starts over).
    pub finished: bool,
}

/// Walks the store, oldest run first, deleting expired runs; remembers
/// where it stopped so that each pass costs at most `per_pass` runs.
#[derive(Debug, Default)]
pub struct Pruner {
    cursor: Option<(u64, String)>,
}

impl Pruner {
    /// One pass over at most `per_pass` runs: deletes those `expired` says
    /// (given each run record and `now_ms`). No run created after
    /// `horizon_ms` can be expired: the pass ends there, and the next starts
    /// over from the oldest run (so a store of young runs costs nothing).
    pub async fn pass(
        &mut self,
        store: &dyn RunLog,
        per_pass: usize,
        now_ms: u64,
        horizon_ms: u64,
        expired: impl Fn(&RunRecord, u64) -> bool,
    ) -> Result<Pass, RunLogError> {
        let mut pass = Pass::default();
        while pass.scanned < per_pass {
            let after = self.cursor.as_ref().map(|(c, id)| (*c, id.as_str()));
            let page = store
                .runs_oldest(after, (per_pass - pass.scanned).min(500))
                .await?;
            if page.is_empty() {
                self.cursor = None;
                pass.finished = true;
                break;
            }
            // The page's expired runs go in one transaction: deleting one
            // at a time competes with the runs' own commits.
            let mut doomed = Vec::new();
            for run in &page {
                if run.created_ms > horizon_ms {
                    self.cursor = None;
                    pass.finished = true;
                    break;
                }
                pass.scanned += 1;
                self.cursor = Some((run.created_ms, run.run_id.clone()));
                if run.status != RunStatus::Running && expired(run, now_ms) {
                    doomed.push(run.run_id.clone());
                }
            }
            if !doomed.is_empty() {
                pass.deleted += store.delete_runs(&doomed).await?;
            }
            if pass.finished {
                break;
            }
        }
        Ok(pass)
    }

    /// Passes until one reaches the newest run: every run looked at once.
    pub async fn all(
        &mut self,
        store: &dyn RunLog,
        now_ms: u64,
        horizon_ms: u64,
        expired: impl Fn(&RunRecord, u64) -> bool,
    ) -> Result<Pass, RunLogError> {
        let mut total = Pass::default();
        loop {
            let pass = self
                .pass(store, 10_000, now_ms, horizon_ms, &expired)
                .await?;
            total.scanned += pass.scanned;
            total.deleted += pass.deleted;
            if pass.finished {
                total.finished = true;
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_people_write_them() {
        assert_eq!(
            Age::parse("30d").unwrap().0,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            Age::parse("12h").unwrap().0,
            Some(Duration::from_secs(12 * 3_600))
        );
        assert_eq!(Age::parse("never").unwrap().0, None);
        assert!(Age::parse("30").unwrap_err().contains("needs a unit"));
        assert!(
            Age::parse("3y")
                .unwrap_err()
                .contains("one of s, m, h, d, w")
        );
        assert!(Age::parse("99999999999999999999d").is_err());
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let config: RetentionConfig = toml::from_str(
            "succeeded = \"1d\"\n[users.ci]\nsucceeded = \"1h\"\n[graphs.audit]\nsucceeded = \"never\"\n",
        )
        .unwrap();
        let mut run = RunRecord::new("r", "g.json");
        run.status = RunStatus::Succeeded;
        assert_eq!(config.max_age(&run), Some(Duration::from_secs(86_400)));
        run.owner = Some("ci".into());
        assert_eq!(config.max_age(&run), Some(Duration::from_secs(3_600)));
        run.graph_name = Some("audit".into());
        assert_eq!(config.max_age(&run), None);
        // Unset in the override: the wider rule (the default 90 days).
        run.status = RunStatus::Failed;
        assert_eq!(config.max_age(&run), Some(Duration::from_secs(90 * 86_400)));
        run.status = RunStatus::Running;
        assert_eq!(config.max_age(&run), None);
    }

    #[test]
    fn the_horizon_is_the_shortest_rule_before_now() {
        let config: RetentionConfig =
            toml::from_str("[users.ci]\nsucceeded = \"1h\"\n[graphs.audit]\nfailed = \"never\"\n")
                .unwrap();
        let now = 10 * 86_400_000;
        assert_eq!(config.horizon(now), now - 3_600_000);
        let never: RetentionConfig =
            toml::from_str("succeeded = \"never\"\nfailed = \"never\"\ncancelled = \"never\"\n")
                .unwrap();
        assert_eq!(never.horizon(now), 0);
    }

    /// A pass stops at the first run too young to be expired, and the next
    /// starts over from the oldest: young runs are not looked at.
    #[tokio::test]
    async fn passes_stop_at_the_horizon() {
        use crate::store::prelude::*;
        let store = crate::store::MemoryStore::new();
        for (i, created) in [1_000, 2_000, 3_000, 9_000, 9_500].into_iter().enumerate() {
            let mut run = RunRecord::new(&format!("r{i}"), "g.json");
            (run.created_ms, run.updated_ms, run.status) = (created, created, RunStatus::Succeeded);
            let spec = crate::store::RunSpec {
                graph: crate::graph::Graph::default(),
                origin: "g.json".into(),
                input: serde_json::json!({}),
                components: Default::default(),
            };
            store
                .create_run(crate::store::NewRun::new(run, spec))
                .await
                .unwrap();
        }
        let expired = |run: &RunRecord, now: u64| run.updated_ms + 5_000 <= now;
        let mut pruner = Pruner::default();
        let pass = pruner
            .pass(&store, 2, 10_000, 5_000, expired)
            .await
            .unwrap();
        assert_eq!((pass.scanned, pass.deleted, pass.finished), (2, 2, false));
        let pass = pruner
            .pass(&store, 100, 10_000, 5_000, expired)
            .await
            .unwrap();
        assert_eq!((pass.scanned, pass.deleted, pass.finished), (1, 1, true));
        let left: Vec<String> = store
            .list_runs()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(left, ["r4", "r3"]);
    }
}
