//! Key-value spaces in the redb file: `kv` ((scope, namespace, key) →
//! version, expiry and value), `kv_usage` ((scope, namespace) → keys and
//! bytes), `kv_expiry` ((expires ms, scope, namespace, key)), `kv_vectors`
//! ((scope, namespace, key) → expiry and vector) and the last version given out
//! (`meta`: `kv_version`). Each call is one transaction. Nearest keys are
//! found by reading every key under the prefix with its vector.

use redb::{ReadableTable, WriteTransaction};

use super::{KV, KV_EXPIRY, KV_USAGE, KV_VECTORS, META, RedbStore, backend};
use crate::StoreError;
use crate::key_values::{
    Delete, Entry, KeyValues, KvError, Near, Nearest, Quota, Space, Usage, Write, admit,
    check_version, listed, size_of, vector_bytes,
};

/// An entry as stored: version, expiry (0: none), then the value.
fn encode(entry: &Entry) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16 + entry.value.len());
    bytes.extend(entry.version.to_le_bytes());
    bytes.extend(entry.expires_ms.unwrap_or(0).to_le_bytes());
    bytes.extend(&entry.value);
    bytes
}

fn decode(key: &str, bytes: &[u8]) -> Result<Entry, StoreError> {
    let corrupt = || StoreError::Corrupt {
        key: key.to_string(),
        message: "a key-value entry shorter than its header".into(),
    };
    let word = |at: usize| -> Result<u64, StoreError> {
        let b = bytes.get(at..at + 8).ok_or_else(corrupt)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| corrupt())?))
    };
    let expires = word(8)?;
    Ok(Entry {
        version: word(0)?,
        expires_ms: (expires != 0).then_some(expires),
        value: bytes[16..].to_vec(),
    })
}

/// The entry of `key` in `space`, live or not, read inside `tx`, with the
/// bytes it counts for (its vector's among them).
fn stored(
    tx: &WriteTransaction,
    space: &Space,
    key: &str,
) -> Result<Option<(Entry, u64)>, StoreError> {
    let at = (space.scope.as_str(), space.namespace.as_str(), key);
    let table = tx.open_table(KV).map_err(backend)?;
    let Some(entry) = table.get(at).map_err(backend)? else {
        return Ok(None);
    };
    let entry = decode(key, entry.value())?;
    let vectors = tx.open_table(KV_VECTORS).map_err(backend)?;
    let vector = vectors.get(at).map_err(backend)?;
    let dims_bytes = vector.map_or(0, |v| v.value().len().saturating_sub(8) as u64);
    let size = size_of(key, &entry.value) + dims_bytes;
    Ok(Some((entry, size)))
}

fn usage(tx: &WriteTransaction, space: &Space) -> Result<Usage, StoreError> {
    let table = tx.open_table(KV_USAGE).map_err(backend)?;
    let found = table
        .get((space.scope.as_str(), space.namespace.as_str()))
        .map_err(backend)?;
    Ok(found.map_or(Usage::default(), |v| {
        let (keys, bytes) = v.value();
        Usage { keys, bytes }
    }))
}

fn set_usage(tx: &WriteTransaction, space: &Space, usage: Usage) -> Result<(), StoreError> {
    let mut table = tx.open_table(KV_USAGE).map_err(backend)?;
    let at = (space.scope.as_str(), space.namespace.as_str());
    match usage.keys {
        0 => table.remove(at).map(drop),
        _ => table.insert(at, (usage.keys, usage.bytes)).map(drop),
    }
    .map_err(backend)
}

/// Remove `key` of `space` (with its expiry and vector), returning it and
/// the bytes it counted for; usage is the caller's.
fn remove(
    tx: &WriteTransaction,
    space: &Space,
    key: &str,
) -> Result<Option<(Entry, u64)>, StoreError> {
    let (scope, ns) = (space.scope.as_str(), space.namespace.as_str());
    let old = stored(tx, space, key)?;
    if old.is_some() {
        let mut table = tx.open_table(KV).map_err(backend)?;
        table.remove((scope, ns, key)).map_err(backend)?;
        let mut vectors = tx.open_table(KV_VECTORS).map_err(backend)?;
        vectors.remove((scope, ns, key)).map_err(backend)?;
    }
    if let Some(t) = old.as_ref().and_then(|(e, _)| e.expires_ms) {
        let mut expiry = tx.open_table(KV_EXPIRY).map_err(backend)?;
        expiry.remove((t, scope, ns, key)).map_err(backend)?;
    }
    Ok(old)
}

/// The next version, counted in `meta`.
fn next_version(tx: &WriteTransaction) -> Result<u64, StoreError> {
    let mut meta = tx.open_table(META).map_err(backend)?;
    let last = meta
        .get("kv_version")
        .map_err(backend)?
        .map_or(0, |v| v.value());
    meta.insert("kv_version", last + 1).map_err(backend)?;
    Ok(last + 1)
}

fn put(tx: &WriteTransaction, space: &Space, w: &Write) -> Result<u64, StoreError> {
    remove(tx, space, &w.key)?;
    let entry = Entry {
        value: w.value.clone(),
        version: next_version(tx)?,
        expires_ms: w.expires_ms,
    };
    let (scope, ns) = (space.scope.as_str(), space.namespace.as_str());
    let mut table = tx.open_table(KV).map_err(backend)?;
    table
        .insert((scope, ns, w.key.as_str()), encode(&entry).as_slice())
        .map_err(backend)?;
    if let Some(t) = entry.expires_ms {
        let mut expiry = tx.open_table(KV_EXPIRY).map_err(backend)?;
        expiry
            .insert((t, scope, ns, w.key.as_str()), ())
            .map_err(backend)?;
    }
    if let Some(v) = &w.vector {
        // Its expiry first, so a search reads this table alone.
        let mut kept = entry.expires_ms.unwrap_or(0).to_le_bytes().to_vec();
        kept.extend(vector_bytes(v));
        let mut vectors = tx.open_table(KV_VECTORS).map_err(backend)?;
        vectors
            .insert((scope, ns, w.key.as_str()), kept.as_slice())
            .map_err(backend)?;
    }
    Ok(entry.version)
}

#[async_trait::async_trait]
impl KeyValues for RedbStore {
    async fn kv_get(
        &self,
        space: &Space,
        keys: &[String],
        now_ms: u64,
    ) -> Result<Vec<Option<Entry>>, StoreError> {
        let (space, keys) = (space.clone(), keys.to_vec());
        self.read(move |tx| {
            let table = tx.open_table(KV).map_err(backend)?;
            let (scope, ns) = (space.scope.as_str(), space.namespace.as_str());
            keys.iter()
                .map(|k| {
                    let found = table.get((scope, ns, k.as_str())).map_err(backend)?;
                    let entry = found.map(|v| decode(k, v.value())).transpose()?;
                    Ok(entry.filter(|e| e.live(now_ms)))
                })
                .collect()
        })
        .await
    }

    async fn kv_set(
        &self,
        space: &Space,
        writes: &[Write],
        quota: Quota,
        now_ms: u64,
    ) -> Result<Vec<u64>, KvError> {
        let (space, writes) = (space.clone(), writes.to_vec());
        self.write(move |tx| {
            let before = usage(tx, &space)?;
            let mut after = before;
            for w in &writes {
                let old = stored(tx, &space, &w.key)?;
                let current = old
                    .as_ref()
                    .filter(|(e, _)| e.live(now_ms))
                    .map(|(e, _)| e.version);
                check_version(&w.key, current, w.if_version)?;
                match &old {
                    Some((_, size)) => after.bytes = after.bytes.saturating_sub(*size),
                    None => after.keys += 1,
                }
                after.bytes += w.size();
            }
            admit(&space, before, after, quota)?;
            let versions = writes
                .iter()
                .map(|w| put(tx, &space, w))
                .collect::<Result<Vec<u64>, StoreError>>()?;
            set_usage(tx, &space, after)?;
            Ok(versions)
        })
        .await
    }

    async fn kv_delete(
        &self,
        space: &Space,
        deletes: &[Delete],
        now_ms: u64,
    ) -> Result<Vec<bool>, KvError> {
        let (space, deletes) = (space.clone(), deletes.to_vec());
        // One transaction: a failed condition returns an error, which
        // discards every delete before it.
        self.write(move |tx| {
            let mut u = usage(tx, &space)?;
            let mut found = Vec::with_capacity(deletes.len());
            for d in &deletes {
                let old = stored(tx, &space, &d.key)?;
                let current = old
                    .as_ref()
                    .filter(|(e, _)| e.live(now_ms))
                    .map(|(e, _)| e.version);
                check_version(&d.key, current, d.if_version)?;
                if let Some((_, size)) = remove(tx, &space, &d.key)? {
                    u.keys = u.keys.saturating_sub(1);
                    u.bytes = u.bytes.saturating_sub(size);
                }
                found.push(current.is_some());
            }
            set_usage(tx, &space, u)?;
            Ok(found)
        })
        .await
    }

    async fn kv_list(
        &self,
        space: &Space,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let space = space.clone();
        let (prefix, after) = (prefix.to_string(), after.map(str::to_string));
        self.read(move |tx| {
            let table = tx.open_table(KV).map_err(backend)?;
            let (scope, ns) = (space.scope.as_str(), space.namespace.as_str());
            // Keys with the prefix are together, from the prefix on.
            let start = after
                .as_deref()
                .filter(|a| *a > prefix.as_str())
                .unwrap_or(&prefix);
            let mut keys = Vec::new();
            for item in table.range((scope, ns, start)..).map_err(backend)? {
                let (k, v) = item.map_err(backend)?;
                let (s, n, key) = k.value();
                if s != scope || n != ns || !key.starts_with(prefix.as_str()) || keys.len() == limit
                {
                    break;
                }
                if listed(key, &prefix, after.as_deref()) && decode(key, v.value())?.live(now_ms) {
                    keys.push(key.to_string());
                }
            }
            Ok(keys)
        })
        .await
    }

    async fn kv_nearest(
        &self,
        space: &Space,
        prefix: &str,
        query: &[f32],
        skip: usize,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<Near>, StoreError> {
        let (space, prefix, query) = (space.clone(), prefix.to_string(), query.to_vec());
        self.read(move |tx| {
            let vectors = tx.open_table(KV_VECTORS).map_err(backend)?;
            let (scope, ns) = (space.scope.as_str(), space.namespace.as_str());
            let mut nearest = Nearest::new(&query, skip, limit);
            let under = vectors
                .range((scope, ns, prefix.as_str())..)
                .map_err(backend)?;
            for item in under {
                let (k, v) = item.map_err(backend)?;
                let (s, n, key) = k.value();
                if s != scope || n != ns || !key.starts_with(prefix.as_str()) {
                    break;
                }
                // Expiry (8 bytes, 0: none), then the vector.
                let (expires, numbers) = v.value().split_at_checked(8).unwrap_or((&[], &[]));
                let expires = expires.try_into().map_or(0, u64::from_le_bytes);
                if expires == 0 || expires > now_ms {
                    nearest.offer_stored(key, numbers);
                }
            }
            Ok(nearest.finish())
        })
        .await
    }

    async fn kv_spaces(&self, scope: &str) -> Result<Vec<(String, Usage)>, StoreError> {
        let scope = scope.to_string();
        self.read(move |tx| {
            let table = tx.open_table(KV_USAGE).map_err(backend)?;
            let mut spaces = Vec::new();
            for item in table.range((scope.as_str(), "")..).map_err(backend)? {
                let (k, v) = item.map_err(backend)?;
                let (s, ns) = k.value();
                if s != scope {
                    break;
                }
                let (keys, bytes) = v.value();
                spaces.push((ns.to_string(), Usage { keys, bytes }));
            }
            Ok(spaces)
        })
        .await
    }

    async fn kv_sweep(&self, now_ms: u64, limit: usize) -> Result<usize, StoreError> {
        self.write(move |tx| {
            let due: Vec<(String, String, String)> = {
                let expiry = tx.open_table(KV_EXPIRY).map_err(backend)?;
                let mut due = Vec::new();
                for item in expiry.range((0, "", "", "")..).map_err(backend)? {
                    let (k, _) = item.map_err(backend)?;
                    let (t, scope, ns, key) = k.value();
                    if t > now_ms || due.len() == limit {
                        break;
                    }
                    due.push((scope.to_string(), ns.to_string(), key.to_string()));
                }
                due
            };
            for (scope, ns, key) in &due {
                let space = Space::new(scope, ns);
                if let Some((_, size)) = remove(tx, &space, key)? {
                    let mut u = usage(tx, &space)?;
                    u.keys = u.keys.saturating_sub(1);
                    u.bytes = u.bytes.saturating_sub(size);
                    set_usage(tx, &space, u)?;
                }
            }
            Ok(due.len())
        })
        .await
    }
}
