//! Tasks over the `storage` and `config` imports, for the tests:
//! `kv.count` (a compare-and-swap counter), `kv.put`, `kv.fill`, `kv.bench`, `kv.get`, `kv.keys`,
//! `kv.delete` (several keys at once), `kv.clear` (every key with a prefix),
//! `kv.try-put` (a task without side effects that tries to write),
//! `kv.vector-put` and `kv.nearest` (the `vectors` import),
//! `kv.config` and `kv.config-digest` (a value's SHA-256, not the value).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::storage::{self, StorageError, Write};
use weft_sdk::{Context, TaskDef, TaskError, Value, config, vectors};

#[derive(Deserialize, JsonSchema)]
struct Counter {
    /// A granted namespace; none: the plugin's own.
    namespace: Option<String>,
    /// The counter's key (default `n`).
    key: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct Count {
    /// The count after this increment.
    n: u64,
    /// Compare-and-swap attempts it took.
    tries: u32,
}

fn count(input: Counter, _: &Context) -> Result<Count, TaskError> {
    let ns = input.namespace.as_deref();
    let key = input.key.as_deref().unwrap_or("n");
    let mut tries = 0;
    loop {
        tries += 1;
        let (n, version) = match storage::get(ns, key)? {
            Some(e) => (storage::decode::<u64>(&e)?, e.version),
            None => (0, 0),
        };
        match storage::set_if(ns, key, &storage::encode(&(n + 1)), version) {
            Err(StorageError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(Count { n: n + 1, tries }),
        }
    }
}

#[derive(Deserialize, JsonSchema)]
struct Put {
    namespace: Option<String>,
    key: String,
    value: String,
    ttl_ms: Option<u64>,
    /// Write only at this version (0: only if absent).
    if_version: Option<u64>,
}

#[derive(Serialize, JsonSchema)]
struct Put2 {
    version: u64,
}

fn put(input: Put, _: &Context) -> Result<Put2, TaskError> {
    let write = Write {
        key: input.key,
        value: input.value.into_bytes(),
        if_version: input.if_version,
        ttl_ms: input.ttl_ms,
    };
    let version = storage::write(input.namespace.as_deref(), &write)?;
    Ok(Put2 { version })
}

#[derive(Deserialize, JsonSchema)]
struct Key {
    namespace: Option<String>,
    key: String,
}

#[derive(Serialize, JsonSchema)]
struct Got {
    value: Option<String>,
    version: Option<u64>,
}

fn get(input: Key, _: &Context) -> Result<Got, TaskError> {
    let found = storage::get(input.namespace.as_deref(), &input.key)?;
    Ok(Got {
        value: found
            .as_ref()
            .map(|e| String::from_utf8_lossy(&e.value).into_owned()),
        version: found.map(|e| e.version),
    })
}

#[derive(Deserialize, JsonSchema)]
struct Prefix {
    namespace: Option<String>,
    prefix: String,
}

#[derive(Serialize, JsonSchema)]
struct Keys {
    keys: Vec<String>,
}

fn keys(input: Prefix, _: &Context) -> Result<Keys, TaskError> {
    Ok(Keys {
        keys: storage::keys(input.namespace.as_deref(), &input.prefix)?,
    })
}

#[derive(Deserialize, JsonSchema)]
struct Deletions {
    /// Keys to delete together, each with an optional version it must be at.
    deletions: Vec<(String, Option<u64>)>,
}

#[derive(Serialize, JsonSchema)]
struct Found {
    /// Whether each key was there.
    found: Vec<bool>,
}

fn delete(input: Deletions, _: &Context) -> Result<Found, TaskError> {
    let deletions: Vec<storage::Deletion> = input
        .deletions
        .into_iter()
        .map(|(key, if_version)| storage::Deletion { key, if_version })
        .collect();
    Ok(Found {
        found: storage::delete_many(None, &deletions)?,
    })
}

#[derive(Serialize, JsonSchema)]
struct Cleared {
    /// How many keys were deleted.
    deleted: usize,
}

/// Delete every key with `prefix`, 1,000 to a call.
fn clear(input: Prefix, _: &Context) -> Result<Cleared, TaskError> {
    let keys = storage::keys(input.namespace.as_deref(), &input.prefix)?;
    Ok(Cleared {
        deleted: storage::delete_all(input.namespace.as_deref(), &keys)?,
    })
}

#[derive(Deserialize, JsonSchema)]
struct Fill {
    prefix: String,
    n: u32,
}

/// Write keys `PREFIX00000` to `PREFIX{n-1}`, 500 to a batch.
fn fill(input: Fill, _: &Context) -> Result<Keys, TaskError> {
    let keys: Vec<String> = (0..input.n)
        .map(|i| format!("{}{i:05}", input.prefix))
        .collect();
    for chunk in keys.chunks(500) {
        let writes: Vec<Write> = chunk.iter().map(|k| storage::plain(k, b"v")).collect();
        storage::write_many(None, &writes)?;
    }
    Ok(Keys { keys: Vec::new() })
}

#[derive(Deserialize, JsonSchema)]
struct Bench {
    /// Keys to write one by one, then read one by one.
    n: u32,
}

#[derive(Serialize, JsonSchema)]
struct Timed {
    set_ms: f64,
    get_ms: f64,
}

/// `n` single-key writes, then `n` single-key reads, each a host call, timed
/// inside the task (`examples/bench/storage.sh`).
fn bench(input: Bench, _: &Context) -> Result<Timed, TaskError> {
    let keys: Vec<String> = (0..input.n).map(|i| format!("bench/{i:08}")).collect();
    let started = std::time::Instant::now();
    for k in &keys {
        storage::set(None, k, b"0123456789abcdef")?;
    }
    let set_ms = started.elapsed().as_secs_f64() * 1000.0;
    let started = std::time::Instant::now();
    for k in &keys {
        if storage::get(None, k)?.is_none() {
            return Err(TaskError::failed(format!("{k} was not written")));
        }
    }
    let get_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Timed { set_ms, get_ms })
}

#[derive(Serialize, JsonSchema)]
struct Refused {
    /// What the host said.
    error: String,
}

fn try_put(input: Key, _: &Context) -> Result<Refused, TaskError> {
    let error = match storage::set(input.namespace.as_deref(), &input.key, b"x") {
        Ok(_) => "written".to_string(),
        Err(e) => storage::describe(&e),
    };
    Ok(Refused { error })
}

#[derive(Deserialize, JsonSchema)]
struct Nothing {}

/// Each call the host must refuse as `invalid`, by name: what it said.
fn try_invalid(_: Nothing, _: &Context) -> Result<Value, TaskError> {
    fn said<T>(r: Result<T, storage::StorageError>) -> String {
        match r {
            Ok(_) => "accepted".to_string(),
            Err(e) => storage::describe(&e),
        }
    }
    let many: Vec<String> = (0..1_001).map(|i| format!("k{i}")).collect();
    let writes: Vec<storage::Write> = many.iter().map(|k| storage::plain(k, b"x")).collect();
    let twice = [storage::plain("same", b"1"), storage::plain("same", b"2")];
    let deletion = |key: &str| storage::Deletion {
        key: key.to_string(),
        if_version: None,
    };
    let deletions: Vec<storage::Deletion> = many.iter().map(|k| deletion(k)).collect();
    let list = |limit| storage::list_keys(None, "", None, limit);
    Ok(serde_json::json!({
        "empty key": said(storage::set(None, "", b"x")),
        "long key": said(storage::set(None, &"k".repeat(513), b"x")),
        "big value": said(storage::set(None, "k", &vec![0u8; (1 << 20) + 1])),
        "big batch": said(storage::write_many(None, &writes)),
        "key twice": said(storage::write_many(None, &twice)),
        "big get": said(storage::get_many(None, &many)),
        "big delete": said(storage::delete_many(None, &deletions)),
        "delete twice": said(storage::delete_many(None, &[deletion("same"), deletion("same")])),
        "page of 0": said(list(0)),
        "page of 1001": said(list(1_001)),
        "vectors: one short": said(vectors::write_many(None, &twice[..1], &[])),
        "vectors: empty": said(vectors::write_many(None, &twice[..1], &[vec![]])),
        "vectors: too long": said(vectors::write_many(None, &twice[..1], &[vec![0.5; 16_001]])),
        "vectors: not finite": said(vectors::write_many(None, &twice[..1], &[vec![1.0, f32::NAN]])),
        "vectors: big batch": said(vectors::write_many(None, &writes, &vec![vec![1.0]; 1_001])),
        "vectors: key twice": said(vectors::write_many(None, &twice, &[vec![1.0], vec![2.0]])),
        "nearest: empty query": said(vectors::nearest(None, "", &[], 0, 10)),
        "nearest: infinite query": said(vectors::nearest(None, "", &[f32::INFINITY], 0, 10)),
        "nearest: page of 0": said(vectors::nearest(None, "", &[1.0], 0, 0)),
        "nearest: page of 1001": said(vectors::nearest(None, "", &[1.0], 0, 1_001)),
        "nothing written": storage::keys(None, "").map(|k| k.is_empty()).unwrap_or(false),
    }))
}

#[derive(Deserialize, JsonSchema)]
struct VectorPut {
    namespace: Option<String>,
    /// Keys with their vectors.
    keys: Vec<(String, Vec<f32>)>,
}

fn vector_put(input: VectorPut, _: &Context) -> Result<Keys, TaskError> {
    let writes: Vec<Write> = input
        .keys
        .iter()
        .map(|(k, _)| storage::plain(k, b"v"))
        .collect();
    let vectors: Vec<Vec<f32>> = input.keys.into_iter().map(|(_, v)| v).collect();
    vectors::write_many(input.namespace.as_deref(), &writes, &vectors)?;
    Ok(Keys {
        keys: writes.into_iter().map(|w| w.key).collect(),
    })
}

#[derive(Deserialize, JsonSchema)]
struct VectorQuery {
    namespace: Option<String>,
    prefix: String,
    query: Vec<f32>,
    skip: u32,
    limit: u32,
}

fn vector_nearest(input: VectorQuery, _: &Context) -> Result<Keys, TaskError> {
    let ns = input.namespace.as_deref();
    let near = vectors::nearest(ns, &input.prefix, &input.query, input.skip, input.limit)?;
    Ok(Keys {
        keys: near.into_iter().map(|n| n.key).collect(),
    })
}

#[derive(Deserialize, JsonSchema)]
struct ConfigKey {
    key: String,
}

#[derive(Serialize, JsonSchema)]
struct ConfigValue {
    value: Option<Value>,
    keys: Vec<String>,
}

fn config_get(input: ConfigKey, _: &Context) -> Result<ConfigValue, TaskError> {
    Ok(ConfigValue {
        value: config::get(&input.key)?,
        keys: config::keys(),
    })
}

#[derive(Serialize, JsonSchema)]
struct Digest {
    /// SHA-256 of the value's text, hex: proof it was read, without it.
    sha256: String,
}

fn config_digest(input: ConfigKey, _: &Context) -> Result<Digest, TaskError> {
    use sha2::Digest as _;
    let text = config::string(&input.key)?
        .ok_or_else(|| TaskError::failed(format!("config `{}` is not set", input.key)))?;
    Ok(Digest {
        sha256: hex::encode(sha2::Sha256::digest(text.as_bytes())),
    })
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("kv.count", count).side_effects(),
        TaskDef::new("kv.put", put).side_effects(),
        TaskDef::new("kv.fill", fill).side_effects(),
        TaskDef::new("kv.bench", bench).side_effects(),
        TaskDef::new("kv.delete", delete).side_effects(),
        TaskDef::new("kv.clear", clear).side_effects(),
        TaskDef::new("kv.vector-put", vector_put).side_effects(),
        TaskDef::new("kv.nearest", vector_nearest).not_cacheable(),
        TaskDef::new("kv.get", get).not_cacheable(),
        TaskDef::new("kv.keys", keys).not_cacheable(),
        TaskDef::new("kv.try-put", try_put).not_cacheable(),
        TaskDef::new("kv.try-invalid", try_invalid)
            .side_effects()
            .output_schema(serde_json::json!({"type": "object"})),
        TaskDef::new("kv.config", config_get).not_cacheable(),
        TaskDef::new("kv.config-digest", config_digest).not_cacheable(),
    ]
}

weft_sdk::export_plugin!(tasks);
