//! Schedules as stored: a saved graph, its input and a cadence, owned by a
//! user, with when it is due next. The store keeps them and finds the due
//! ones; when they fire and what a firing starts is the daemon's.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::StoreError;
use weft_core::schedule::{Cadence, CatchUp};

/// A schedule: a saved graph started with an input on a cadence, as its
/// owner. Named per owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Whose runs it starts.
    pub owner: String,
    /// Its name (1–128 of `[A-Za-z0-9._-]`), unique per owner.
    pub name: String,
    /// The saved graph it starts, as the owner names it.
    pub graph: String,
    /// That graph's version; none: the newest at each firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The runs' input.
    pub input: Value,
    /// When it fires.
    pub cadence: Cadence,
    /// What it does about occurrences no host was up for.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Paused: not due until resumed.
    #[serde(default)]
    pub paused: bool,
    /// When it was made, ms since the Unix epoch.
    pub created_ms: u64,
    /// Its next occurrence, ms since the Unix epoch (none: never again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_ms: Option<u64>,
    /// Its latest firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Fired>,
}

impl Schedule {
    /// When it is due (none while paused or when it never fires again).
    pub fn due_ms(&self) -> Option<u64> {
        self.next_ms.filter(|_| !self.paused)
    }
}

/// What a schedule's latest firing did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    /// The occurrence, ms since the Unix epoch.
    pub at_ms: u64,
    /// The run it started (or that the occurrence had started already).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Why it started none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Schedules, by owner and name, and the index of due ones.
#[async_trait::async_trait]
pub trait Schedules: Send + Sync {
    /// Record `schedule`, replacing the owner's schedule of that name.
    async fn schedule_put(&self, schedule: &Schedule) -> Result<(), StoreError>;

    /// `owner`'s schedule `name`.
    async fn schedule_get(&self, owner: &str, name: &str) -> Result<Option<Schedule>, StoreError>;

    /// `owner`'s schedules, by name.
    async fn schedule_list(&self, owner: &str) -> Result<Vec<Schedule>, StoreError>;

    /// Delete `owner`'s schedule `name`; false if there was none.
    async fn schedule_delete(&self, owner: &str, name: &str) -> Result<bool, StoreError>;

    /// Up to `limit` schedules due at or before `now_ms` (not paused),
    /// soonest first. Stores with an index answer without reading the rest.
    async fn schedules_due(&self, now_ms: u64, limit: usize) -> Result<Vec<Schedule>, StoreError>;

    /// If `owner`'s schedule `name` is still due at `from_ms` (no other
    /// host advanced it, nobody paused, replaced or deleted it), make it due
    /// at `to_ms` and record `last`, atomically across every process
    /// sharing the store: true then.
    async fn schedule_advance(
        &self,
        owner: &str,
        name: &str,
        from_ms: u64,
        to_ms: Option<u64>,
        last: Fired,
    ) -> Result<bool, StoreError>;
}
