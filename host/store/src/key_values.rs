//! Key-value spaces: the storage plugins keep through the `storage` import
//! (and the host's own per-user records, such as secrets). A key lives in a
//! space: whose it is (a user) and which namespace. Every write gives its
//! key a version no other write in the store ever had, so compare-and-swap
//! cannot be fooled by a key deleted and written again; a write may expire.
//! Each space counts its keys and bytes, and a write that would take it past
//! its quota is refused whole. A key may keep a vector beside its value,
//! and the keys whose vectors are nearest a query are found by the store
//! (exactly: every key is considered). The store keeps the spaces and
//! applies these rules atomically; who may use which space, and the
//! quotas, are the caller's.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Where keys live: whose (a user; empty for runs without an owner) and
/// which namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Space {
    /// The user.
    pub scope: String,
    /// The namespace (`plugin.NAME`, `shared.NAME`, …: the caller's names).
    pub namespace: String,
}

impl Space {
    /// Namespace `namespace` of user `scope`.
    pub fn new(scope: &str, namespace: &str) -> Self {
        Space {
            scope: scope.to_string(),
            namespace: namespace.to_string(),
        }
    }
}

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The bytes.
    pub value: Vec<u8>,
    /// Its version: unique in the store, greater than every earlier one.
    pub version: u64,
    /// When it expires, ms since the Unix epoch.
    pub expires_ms: Option<u64>,
}

impl Entry {
    /// Whether it is still there at `now_ms`.
    pub fn live(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|t| t > now_ms)
    }
}

/// One write of [`KeyValues::kv_set`].
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The key.
    pub key: String,
    /// The bytes.
    pub value: Vec<u8>,
    /// Only if the key is at this version now; `Some(0)`: only if it is
    /// absent (or expired).
    pub if_version: Option<u64>,
    /// When it expires, ms since the Unix epoch.
    pub expires_ms: Option<u64>,
    /// A vector kept beside the value, for [`KeyValues::kv_nearest`]
    /// (`None`: the key keeps none, and an earlier one is dropped).
    pub vector: Option<Vec<f32>>,
}

impl Write {
    /// The bytes this write's entry counts for: key, value and vector.
    pub fn size(&self) -> u64 {
        size_of(&self.key, &self.value) + vector_size(self.vector.as_ref().map_or(0, Vec::len))
    }
}

/// One key found by [`KeyValues::kv_nearest`].
#[derive(Debug, Clone, PartialEq)]
pub struct Near {
    /// The key.
    pub key: String,
    /// Cosine similarity of its vector to the query (see [`similarity`]).
    pub similarity: f32,
}

/// One delete of [`KeyValues::kv_delete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// The key.
    pub key: String,
    /// Only if the key is at this version now; `Some(0)`: only if it is
    /// absent (or expired).
    pub if_version: Option<u64>,
}

impl Delete {
    /// A delete of `key` with no condition.
    pub fn key(key: &str) -> Self {
        Delete {
            key: key.to_string(),
            if_version: None,
        }
    }
}

/// What a space may hold: keys, and bytes of keys and values together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// The most keys (expired ones count until they are swept).
    pub max_keys: u64,
    /// The most bytes of keys and values.
    pub max_bytes: u64,
}

/// What a space holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Keys (expired ones until swept).
    pub keys: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

/// The bytes an entry of `key` with `value` counts for (plus
/// [`vector_size`] when it keeps a vector).
pub fn size_of(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

/// The bytes a kept vector of `dims` numbers counts for.
pub fn vector_size(dims: usize) -> u64 {
    4 * dims as u64
}

/// A vector as stored: its numbers as little-endian `f32`s.
pub fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A vector stored by [`vector_bytes`] (a trailing partial number is
/// ignored).
pub fn vector_from(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Cosine similarity of `a` and `b` (of one length), as pgvector computes
/// it (sums in `f32`, the division in `f64`), clamped to -1 to 1; 0 when
/// either is all zeros.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let norms = f64::from(na) * f64::from(nb);
    if norms == 0.0 || !norms.is_finite() {
        return 0.0;
    }
    (f64::from(dot) / norms.sqrt()).clamp(-1.0, 1.0) as f32
}

/// A key ranked by nearness: greater is further (a heap's top is the one
/// to drop).
#[derive(PartialEq)]
struct Ranked(Near);

impl Eq for Ranked {}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .similarity
            .total_cmp(&self.0.similarity)
            .then_with(|| self.0.key.cmp(&other.0.key))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The exact nearest keys to a query, offered one by one: keeps the best
/// `skip + limit` seen (memory bounded by that, whatever the space holds).
pub struct Nearest<'q> {
    query: &'q [f32],
    skip: usize,
    keep: usize,
    best: BinaryHeap<Ranked>,
    /// A stored vector read by [`Nearest::offer_stored`].
    read: Vec<f32>,
}

impl<'q> Nearest<'q> {
    /// Rank keys by nearness to `query`; `finish` gives those past the
    /// first `skip`, at most `limit`.
    pub fn new(query: &'q [f32], skip: usize, limit: usize) -> Self {
        Nearest {
            query,
            skip,
            keep: skip.saturating_add(limit),
            best: BinaryHeap::new(),
            read: Vec::with_capacity(query.len()),
        }
    }

    /// [`Nearest::offer`] a vector stored by [`vector_bytes`].
    pub fn offer_stored(&mut self, key: &str, bytes: &[u8]) {
        if bytes.len() != 4 * self.query.len() {
            return;
        }
        let mut read = std::mem::take(&mut self.read);
        read.clear();
        read.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        self.offer(key, &read);
        self.read = read;
    }

    /// Consider `key` with `vector` (skipped unless of the query's length).
    pub fn offer(&mut self, key: &str, vector: &[f32]) {
        if vector.len() != self.query.len() || self.keep == 0 {
            return;
        }
        let similarity = similarity(self.query, vector);
        // The key is copied only when it is kept.
        let full = self.best.len() >= self.keep;
        if full
            && self.best.peek().is_some_and(|worst| {
                let w = &worst.0;
                similarity
                    .total_cmp(&w.similarity)
                    .then(w.key.as_str().cmp(key))
                    .is_lt()
            })
        {
            return;
        }
        if full {
            self.best.pop();
        }
        self.best.push(Ranked(Near {
            key: key.to_string(),
            similarity,
        }));
    }

    /// The keys kept, nearest first, past the first `skip`.
    pub fn finish(self) -> Vec<Near> {
        let sorted = self.best.into_sorted_vec();
        sorted.into_iter().skip(self.skip).map(|r| r.0).collect()
    }
}

/// Why a write was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// A write's `if_version` did not hold: nothing was written.
    #[error("key `{key}` is at version {} now", .current.map_or("none (absent)".to_string(), |v| v.to_string()))]
    Conflict {
        /// The key.
        key: String,
        /// Its version now (`None`: absent).
        current: Option<u64>,
    },
    /// The writes would take the space past its quota: nothing was written.
    #[error("over the quota of namespace `{namespace}`: {needed} {what} needed, {max} allowed")]
    Quota {
        /// The namespace.
        namespace: String,
        /// `keys` or `bytes`.
        what: &'static str,
        /// What the space would hold.
        needed: u64,
        /// Its quota.
        max: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Check that writes taking `space` from `before` to `usage` keep it
/// within `quota` (writes that only shrink it pass, even over a quota
/// lowered since).
pub(crate) fn admit(
    space: &Space,
    before: Usage,
    usage: Usage,
    quota: Quota,
) -> Result<(), KvError> {
    if usage.keys <= before.keys && usage.bytes <= before.bytes {
        return Ok(());
    }
    let over = |what, needed, max| KvError::Quota {
        namespace: space.namespace.clone(),
        what,
        needed,
        max,
    };
    if usage.keys > quota.max_keys && usage.keys > before.keys {
        return Err(over("keys", usage.keys, quota.max_keys));
    }
    if usage.bytes > quota.max_bytes && usage.bytes > before.bytes {
        return Err(over("bytes", usage.bytes, quota.max_bytes));
    }
    Ok(())
}

/// Key-value spaces, atomic across every process sharing the store.
#[async_trait::async_trait]
pub trait KeyValues: Send + Sync {
    /// The entries of `keys` in `space` that are live at `now_ms`, in order.
    async fn kv_get(
        &self,
        space: &Space,
        keys: &[String],
        now_ms: u64,
    ) -> Result<Vec<Option<Entry>>, StoreError>;

    /// Apply `writes` (to distinct keys) to `space` all together or not at
    /// all: refused when an
    /// `if_version` does not hold (an expired entry counts as absent) or the
    /// space would go past `quota`. The new version of each key, in order.
    async fn kv_set(
        &self,
        space: &Space,
        writes: &[Write],
        quota: Quota,
        now_ms: u64,
    ) -> Result<Vec<u64>, KvError>;

    /// Apply `deletes` (to distinct keys) to `space` all together or not at
    /// all: refused when an `if_version` does not hold (an expired entry
    /// counts as absent). Whether each key had a live entry, in order.
    async fn kv_delete(
        &self,
        space: &Space,
        deletes: &[Delete],
        now_ms: u64,
    ) -> Result<Vec<bool>, KvError>;

    /// Up to `limit` keys of `space` that start with `prefix`, come after
    /// `after` and are live at `now_ms`, in key order.
    async fn kv_list(
        &self,
        space: &Space,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<String>, StoreError>;

    /// The keys of `space` that start with `prefix`, are live at `now_ms`
    /// and keep a vector of `query`'s length, nearest `query` first (by
    /// [`similarity`]; ties by key, in byte order), past the first `skip`,
    /// at most `limit`. Exact: every such key is considered.
    async fn kv_nearest(
        &self,
        space: &Space,
        prefix: &str,
        query: &[f32],
        skip: usize,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<Near>, StoreError>;

    /// The namespaces user `scope` has keys in, with what each holds.
    async fn kv_spaces(&self, scope: &str) -> Result<Vec<(String, Usage)>, StoreError>;

    /// Delete up to `limit` entries expired at `now_ms`; how many.
    async fn kv_sweep(&self, now_ms: u64, limit: usize) -> Result<usize, StoreError>;
}

/// Check that `key`, at version `current` now (`None`: absent or expired),
/// is at the version a write asks for (`Some(0)`: absent), if it asks.
pub(crate) fn check_version(
    key: &str,
    current: Option<u64>,
    want: Option<u64>,
) -> Result<(), KvError> {
    match want {
        Some(want) if current.unwrap_or(0) != want => Err(KvError::Conflict {
            key: key.to_string(),
            current,
        }),
        _ => Ok(()),
    }
}

/// Whether `key` starts with `prefix` and comes after `after`.
pub(crate) fn listed(key: &str, prefix: &str, after: Option<&str>) -> bool {
    key.starts_with(prefix) && after.is_none_or(|a| key > a)
}
