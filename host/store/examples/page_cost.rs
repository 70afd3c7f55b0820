//! How long one page of runs takes on redb as the store grows: 100, 10,000
//! and 100,000 runs, through redb's indexes. Run:
//! `cargo run --release -p weft-store --example page_cost`.

use std::time::Instant;

use weft_core::graph::Graph;
use weft_store::prelude::*;
use weft_store::{NewRun, RedbStore, RunFilter, RunRecord, RunSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // redb's in-memory backend: the same tables and indexes, without a sync
    // per created run (creating 100,000 runs durably takes minutes).
    let backend = redb::backends::InMemoryBackend::new();
    let store = RedbStore::with_backend(backend, std::path::Path::new("memory"))?;
    let spec = RunSpec {
        graph: Graph::default(),
        origin: "g.json".into(),
        input: serde_json::json!({}),
        components: Default::default(),
    };
    let mut made = 0u64;
    println!(
        "runs     first page  page of a rare owner  page 100 pages in  reading every run (before)"
    );
    for target in [100u64, 10_000, 100_000] {
        while made < target {
            let mut run = RunRecord::new(&format!("run-{made:08}"), "g.json");
            run.created_ms = made;
            // One run in 1,000 is the rare owner's.
            run.owner = Some(if made % 1_000 == 7 { "rare" } else { "busy" }.into());
            store.create_run(NewRun::new(run, spec.clone())).await?;
            made += 1;
        }
        let time = |filter: RunFilter, after: Option<String>| {
            let store = store.clone();
            async move {
                let started = Instant::now();
                let page = store
                    .runs_page(&filter, after.as_deref(), 50)
                    .await
                    .unwrap();
                (started.elapsed(), page.last().map(|r| r.run_id.clone()))
            }
        };
        let (first, _) = time(RunFilter::default(), None).await;
        let rare = RunFilter {
            owner: Some("rare".into()),
            ..RunFilter::default()
        };
        let (rare_page, _) = time(rare, None).await;
        let deep = format!("run-{:08}", made.saturating_sub(5_000).max(1));
        let (deep_page, _) = time(RunFilter::default(), Some(deep)).await;
        let started = Instant::now();
        let all = store.list_runs().await?.len();
        let every = started.elapsed();
        assert_eq!(all as u64, made);
        println!(
            "{target:>7}  {first:>10.2?}  {rare_page:>20.2?}  {deep_page:>18.2?}  {every:>26.2?}"
        );
    }
    Ok(())
}
