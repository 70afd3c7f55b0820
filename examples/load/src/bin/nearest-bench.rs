//! The keys nearest a query, as a knowledge base's search asks the store
//! (`vectors.nearest`): N keys with vectors of D numbers written to each
//! store (memory, redb, PostgreSQL when `--postgres URL` is given: pgvector
//! when installed), then the ten nearest found several times. Prints the
//! best time per search and per key considered, for N in the series.
//!   cargo run --release -p weft-load --bin nearest-bench -- --dims 384 100 10000 100000
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use weft::store::key_values::{KeyValues, Quota, Space, Write};
use weft::store::{MemoryStore, PgStore, RedbStore};

#[derive(Parser)]
struct Args {
    /// Numbers per vector.
    #[arg(long, default_value_t = 384)]
    dims: usize,
    /// Searches per size (the best is printed).
    #[arg(long, default_value_t = 5)]
    searches: usize,
    /// A PostgreSQL database to measure too (its `weft_kv` gets the keys).
    #[arg(long)]
    postgres: Option<String>,
    /// Sizes of the series.
    #[arg(default_values_t = [100, 10_000, 100_000])]
    sizes: Vec<usize>,
}

/// A repeatable pseudo-random vector (xorshift), numbers in -1..1.
fn vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dims)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

async fn fill(store: &dyn KeyValues, space: &Space, n: usize, dims: usize) -> anyhow::Result<()> {
    let quota = Quota {
        max_keys: u64::MAX,
        max_bytes: u64::MAX,
    };
    for start in (0..n).step_by(1_000) {
        let writes: Vec<Write> = (start..n.min(start + 1_000))
            .map(|i| Write {
                key: format!("chunk/{i:08}"),
                value: vec![0; 64],
                if_version: None,
                expires_ms: None,
                vector: Some(vector(i as u64 + 1, dims)),
            })
            .collect();
        store.kv_set(space, &writes, quota, 0).await?;
    }
    Ok(())
}

async fn measure(name: &str, store: &dyn KeyValues, args: &Args) -> anyhow::Result<()> {
    let query = vector(u64::MAX, args.dims);
    for &n in &args.sizes {
        let space = Space::new("bench", &format!("nearest.{n}"));
        fill(store, &space, n, args.dims).await?;
        let mut best = f64::MAX;
        for _ in 0..args.searches {
            let t = Instant::now();
            let found = store.kv_nearest(&space, "chunk/", &query, 0, 10, 0).await?;
            best = best.min(t.elapsed().as_secs_f64());
            anyhow::ensure!(found.len() == 10.min(n), "{name}: {} found", found.len());
        }
        println!(
            "{name:<10} {n:>8} keys × {:>4}: {:>9.2} ms a search, {:>7.3} µs a key",
            args.dims,
            best * 1e3,
            best * 1e6 / n as f64
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile_dir()?;
    measure("memory", &MemoryStore::new(), &args).await?;
    let redb = Arc::new(RedbStore::open(&dir.join("nearest.redb"))?);
    measure("redb", redb.as_ref(), &args).await?;
    if let Some(url) = &args.postgres {
        let pg = PgStore::connect(url, 4).await?;
        let name = if pg.pgvector() {
            "pgvector"
        } else {
            "postgres"
        };
        measure(name, &pg, &args).await?;
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("weft-nearest-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
