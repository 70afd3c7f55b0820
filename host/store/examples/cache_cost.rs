//! What a cache hit and a cache put cost as the output cache grows: 0, 100,
//! 10,000 and 1,000,000 entries, in memory and in a redb file. A hit is one
//! `cache_get` of a key that is there (the hot path of a warm node, beside
//! hashing its input); a put is one entry in a commit of 1,000. Run:
//! `cargo run --release -p weft-store --example cache_cost` (`SIZES="0 100"`
//! for a shorter series; `STORE_CACHE_MB=512` for a larger redb page cache
//! than the default 32 MiB).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use weft_core::cache::CacheEntry;
use weft_core::graph::Graph;
use weft_store::prelude::*;
use weft_store::{CachePut, Commit, MemoryStore, NewRun, RedbStore, RunRecord, RunSpec};

type Error = Box<dyn std::error::Error>;

const BATCH: usize = 1_000;
const LOOKUPS: usize = 10_000;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let sizes: Vec<usize> = match std::env::var("SIZES") {
        Ok(s) => s
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?,
        Err(_) => vec![0, 100, 10_000, 1_000_000],
    };
    let dir = tempfile::tempdir()?;
    let memory: Arc<dyn RunStore> = Arc::new(MemoryStore::new());
    // redb's page cache: the host's default, or `STORE_CACHE_MB` (as
    // `store_cache_mb` in the configuration).
    let cache_bytes = match std::env::var("STORE_CACHE_MB") {
        Ok(mb) => mb.parse::<usize>()? << 20,
        Err(_) => weft_store::REDB_CACHE_BYTES,
    };
    let path = dir.path().join("cache.redb");
    let redb: Arc<dyn RunStore> = Arc::new(RedbStore::open_with_cache(&path, cache_bytes)?);
    println!(
        "store    entries   hit p50 µs  hit p99 µs  miss p50 µs  put µs (in a commit of {BATCH})"
    );
    for (name, store) in [("memory", memory), ("redb", redb)] {
        let run = new_run(store.as_ref()).await?;
        let mut filled = 0;
        for &size in &sizes {
            while filled < size {
                let n = BATCH.min(size - filled);
                put_batch(store.as_ref(), &run, filled, n).await?;
                filled += n;
            }
            let (hit, hit99) = lookups(store.as_ref(), filled, true).await?;
            let (miss, _) = lookups(store.as_ref(), filled, false).await?;
            let started = Instant::now();
            put_batch(store.as_ref(), &run, filled, BATCH).await?;
            let put = started.elapsed() / BATCH as u32;
            filled += BATCH;
            println!(
                "{name:<7}{size:>9}  {:>11.2}  {:>10.2}  {:>11.2}  {:>7.2}",
                micros(hit),
                micros(hit99),
                micros(miss),
                micros(put)
            );
        }
    }
    Ok(())
}

/// A run for the cache entries to belong to.
async fn new_run(store: &dyn RunStore) -> Result<String, Error> {
    let spec = RunSpec {
        graph: Graph::default(),
        origin: "cache.json".into(),
        input: json!({}),
        components: Default::default(),
    };
    let run = RunRecord::new("cache-run", "cache.json");
    store.create_run(NewRun::new(run, spec)).await?;
    Ok("cache-run".into())
}

/// The key of entry `i`, shaped like a real one (a SHA-256 in hex).
fn key(i: usize) -> String {
    format!("{i:064x}")
}

/// Entries `from .. from + n`, one commit.
async fn put_batch(store: &dyn RunStore, run: &str, from: usize, n: usize) -> Result<(), Error> {
    let cache = (from..from + n)
        .map(|i| CachePut {
            key: key(i),
            entry: CacheEntry {
                task_type: "math.add-one".into(),
                version: "1.0.0".into(),
                output: json!({ "value": i }),
                created_ms: i as u64,
            },
            keep_last: None,
        })
        .collect();
    let commit = Commit {
        cache,
        ..Commit::default()
    };
    store.commit(run, commit).await?;
    Ok(())
}

/// Median and 99th percentile of `LOOKUPS` lookups, of keys among the
/// `filled` there (`hit`) or of keys not there.
async fn lookups(
    store: &dyn RunStore,
    filled: usize,
    hit: bool,
) -> Result<(Duration, Duration), Error> {
    if hit && filled == 0 {
        return Ok((Duration::ZERO, Duration::ZERO));
    }
    let mut times = Vec::with_capacity(LOOKUPS);
    for n in 0..LOOKUPS {
        // A spread of keys (a multiplicative hash), not a walk in order.
        let i = n.wrapping_mul(2_654_435_761);
        let i = if hit {
            i % filled
        } else {
            filled + BATCH * 2 + i % 1_000_000
        };
        let started = Instant::now();
        let found = store.cache_get(&key(i)).await?;
        times.push(started.elapsed());
        if found.is_some() != hit {
            return Err(format!("key {i}: expected hit = {hit}").into());
        }
    }
    times.sort();
    Ok((times[LOOKUPS / 2], times[LOOKUPS * 99 / 100]))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
