//! The `storage` and `vectors` imports: a plugin's key-value namespaces,
//! and vectors kept with their keys, in the host's store ([`KeyValues`]).
//! Owns who may use which namespace (the
//! plugin's own, and those its manifest grants, each per user of the run),
//! the limits on keys, values, batches and pages, the rule that only task
//! types with side effects write, and the mapping of the store's answers to
//! the WIT's error values. It must not know how the store keeps them.

use std::sync::Arc;

use weft_core::clock::Clock;
use weft_store::key_values::{Delete, Entry, KeyValues, KvError, Quota, Space, Write};

use crate::instance::weft::plugin::storage as wit;
use crate::instance::weft::plugin::vectors as wit_vectors;
use crate::manifest::StorageGrant;

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// The largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// The most keys in a batch or a page.
pub const MAX_KEYS: usize = 1_000;
/// The most numbers in a vector (pgvector's most).
pub const MAX_DIMS: usize = 16_000;

/// What one task run's `storage` import may use.
#[derive(Clone)]
pub(crate) struct StorageAccess {
    pub store: Arc<dyn KeyValues>,
    pub clock: Arc<dyn Clock>,
    /// The run's user (empty: none).
    pub user: String,
    pub plugin: String,
    /// The task type running, and whether it declares side effects.
    pub task: String,
    pub may_write: bool,
    pub grants: Arc<[StorageGrant]>,
    /// The quota of each namespace it writes.
    pub quota: Quota,
}

type Result<T> = std::result::Result<T, wit::StorageError>;

fn invalid(message: String) -> wit::StorageError {
    wit::StorageError::Invalid(message)
}

fn check_key(key: &str) -> Result<()> {
    match key.len() {
        0 => Err(invalid("an empty key".into())),
        n if n > MAX_KEY_BYTES => Err(invalid(format!(
            "a key of {n} bytes; at most {MAX_KEY_BYTES}"
        ))),
        _ => Ok(()),
    }
}

fn check_count(n: usize, what: &str) -> Result<()> {
    match n {
        n if n > MAX_KEYS => Err(invalid(format!("{n} {what}; at most {MAX_KEYS}"))),
        _ => Ok(()),
    }
}

fn check_vector(v: &[f32], what: &str) -> Result<()> {
    if v.is_empty() || v.len() > MAX_DIMS {
        return Err(invalid(format!(
            "{what}: a vector of {} numbers; 1 to {MAX_DIMS}",
            v.len()
        )));
    }
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(invalid(format!("{what}: number {i} is not finite"))),
        None => Ok(()),
    }
}

fn from_store(e: KvError) -> wit::StorageError {
    match e {
        KvError::Conflict { current, .. } => wit::StorageError::Conflict(current),
        e @ KvError::Quota { .. } => wit::StorageError::Quota(e.to_string()),
        KvError::Store(e) => unavailable(e),
        e => wit::StorageError::Unavailable(e.to_string()),
    }
}

fn unavailable(e: weft_store::StoreError) -> wit::StorageError {
    tracing::warn!(error = %e, "storage call failed");
    wit::StorageError::Unavailable("the store failed; try again later".into())
}

fn to_wit(e: Entry) -> wit::Entry {
    wit::Entry {
        value: e.value,
        version: e.version,
        expires_ms: e.expires_ms,
    }
}

impl StorageAccess {
    /// The space `namespace` names for this run (`None`: the plugin's own),
    /// if it may be used so.
    fn space(&self, namespace: Option<&str>, write: bool) -> Result<Space> {
        if write && !self.may_write {
            return Err(wit::StorageError::NotGranted(format!(
                "task type `{}` does not declare side effects: it may read storage, not write it",
                self.task
            )));
        }
        let Some(name) = namespace else {
            return Ok(Space::new(&self.user, &format!("plugin.{}", self.plugin)));
        };
        let grant = self
            .grants
            .iter()
            .find(|g| g.name() == name)
            .ok_or_else(|| {
                wit::StorageError::NotGranted(format!(
                    "namespace `{name}` is not granted to plugin `{}` ([grants] storage)",
                    self.plugin
                ))
            })?;
        if write && !grant.writable() {
            return Err(wit::StorageError::NotGranted(format!(
                "namespace `{name}` is granted to plugin `{}` read-only",
                self.plugin
            )));
        }
        Ok(Space::new(&self.user, &format!("shared.{name}")))
    }

    pub(crate) async fn get_many(
        &self,
        namespace: Option<String>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<wit::Entry>>> {
        let space = self.space(namespace.as_deref(), false)?;
        check_count(keys.len(), "keys")?;
        keys.iter().try_for_each(|k| check_key(k))?;
        let now = self.clock.now_ms();
        let found = self
            .store
            .kv_get(&space, &keys, now)
            .await
            .map_err(unavailable)?;
        Ok(found.into_iter().map(|e| e.map(to_wit)).collect())
    }

    pub(crate) async fn set_many(
        &self,
        namespace: Option<String>,
        writes: Vec<wit::Write>,
    ) -> Result<Vec<u64>> {
        let vectors = std::iter::repeat_with(|| None).take(writes.len()).collect();
        self.write(namespace, writes, vectors).await
    }

    /// `vectors.set-many`: `storage.set-many`, each key keeping its vector.
    pub(crate) async fn set_many_with_vectors(
        &self,
        namespace: Option<String>,
        writes: Vec<wit::Write>,
        vectors: Vec<Vec<f32>>,
    ) -> Result<Vec<u64>> {
        if vectors.len() != writes.len() {
            return Err(invalid(format!(
                "{} writes with {} vectors; one vector per write",
                writes.len(),
                vectors.len()
            )));
        }
        check_count(writes.len(), "writes")?;
        for (w, v) in writes.iter().zip(&vectors) {
            check_vector(v, &format!("key `{}`", w.key))?;
        }
        self.write(namespace, writes, vectors.into_iter().map(Some).collect())
            .await
    }

    /// `vectors.nearest`.
    pub(crate) async fn nearest(
        &self,
        namespace: Option<String>,
        prefix: String,
        query: Vec<f32>,
        skip: u32,
        limit: u32,
    ) -> Result<Vec<wit_vectors::Near>> {
        let space = self.space(namespace.as_deref(), false)?;
        check_vector(&query, "the query")?;
        let limit = limit as usize;
        if !(1..=MAX_KEYS).contains(&limit) {
            return Err(invalid(format!("a page of {limit} keys; 1 to {MAX_KEYS}")));
        }
        let now = self.clock.now_ms();
        let found = self
            .store
            .kv_nearest(&space, &prefix, &query, skip as usize, limit, now)
            .await
            .map_err(unavailable)?;
        Ok(found
            .into_iter()
            .map(|n| wit_vectors::Near {
                key: n.key,
                similarity: n.similarity,
            })
            .collect())
    }

    async fn write(
        &self,
        namespace: Option<String>,
        writes: Vec<wit::Write>,
        vectors: Vec<Option<Vec<f32>>>,
    ) -> Result<Vec<u64>> {
        let space = self.space(namespace.as_deref(), true)?;
        check_count(writes.len(), "writes")?;
        let now = self.clock.now_ms();
        let mut seen = std::collections::HashSet::new();
        let mut checked = Vec::with_capacity(writes.len());
        for (w, vector) in writes.into_iter().zip(vectors) {
            check_key(&w.key)?;
            if w.value.len() > MAX_VALUE_BYTES {
                return Err(invalid(format!(
                    "key `{}`: a value of {} bytes; at most {MAX_VALUE_BYTES}",
                    w.key,
                    w.value.len()
                )));
            }
            if !seen.insert(w.key.clone()) {
                return Err(invalid(format!("key `{}` twice in one batch", w.key)));
            }
            checked.push(Write {
                expires_ms: w.ttl_ms.map(|t| now.saturating_add(t)),
                key: w.key,
                value: w.value,
                if_version: w.if_version,
                vector,
            });
        }
        self.store
            .kv_set(&space, &checked, self.quota, now)
            .await
            .map_err(from_store)
    }

    pub(crate) async fn delete_many(
        &self,
        namespace: Option<String>,
        deletions: Vec<wit::Deletion>,
    ) -> Result<Vec<bool>> {
        let space = self.space(namespace.as_deref(), true)?;
        check_count(deletions.len(), "deletions")?;
        let mut seen = std::collections::HashSet::new();
        let mut checked = Vec::with_capacity(deletions.len());
        for d in deletions {
            check_key(&d.key)?;
            if !seen.insert(d.key.clone()) {
                return Err(invalid(format!("key `{}` twice in one batch", d.key)));
            }
            checked.push(Delete {
                key: d.key,
                if_version: d.if_version,
            });
        }
        let now = self.clock.now_ms();
        self.store
            .kv_delete(&space, &checked, now)
            .await
            .map_err(from_store)
    }

    pub(crate) async fn list(
        &self,
        namespace: Option<String>,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<wit::Page> {
        let space = self.space(namespace.as_deref(), false)?;
        let limit = limit as usize;
        if !(1..=MAX_KEYS).contains(&limit) {
            return Err(invalid(format!("a page of {limit} keys; 1 to {MAX_KEYS}")));
        }
        let now = self.clock.now_ms();
        let keys = self
            .store
            .kv_list(&space, &prefix, after.as_deref(), limit, now)
            .await
            .map_err(unavailable)?;
        let next = (keys.len() == limit)
            .then(|| keys.last().cloned())
            .flatten();
        Ok(wit::Page { keys, next })
    }
}
