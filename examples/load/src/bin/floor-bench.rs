//! The floor under Weft's per-task cost, side by side in one process: the
//! standard `math.add-one` component instantiated and called directly with
//! wasmtime (a fresh instance per call, as Weft does, on Weft's own engine
//! configuration: pooling allocator, fuel, epochs), against chains of N
//! add-one nodes run by Weft in memory with no output cache. Prints µs per
//! task (best of 3, after a warm-up), Weft's cost as a multiple of the
//! floor, and Weft's per-node cost against the longest chain's (how it
//! grows with the graph, in a warm process). `examples/bench/run.sh` runs
//! it.
//!   floor-bench [N ...]      chain lengths (default 100 1000 10000)

use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable, Val};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use weft::events::EventHub;
use weft::graph::Graph;
use weft::plugin::PluginHost;

/// The export Weft calls on a task plugin.
const TASK_INTERFACE: &str = "weft:plugin/task@0.1.5";

/// A store's data: the least WASI a Rust component needs to instantiate.
struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `math.add-one` called straight through wasmtime.
struct Direct {
    engine: Engine,
    pre: InstancePre<Bare>,
}

impl Direct {
    fn new(engine: &Engine) -> anyhow::Result<Self> {
        let bytes = PluginHost::standard_sources()
            .into_iter()
            .find(|s| s.name == "std-math")
            .context("std-math is not built in")?
            .bytes;
        let component = w(Component::new(engine, &bytes))?;
        let mut linker = Linker::new(engine);
        w(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
        // Weft's own imports (log, models, storage, …): add-one calls none.
        w(linker.define_unknown_imports_as_traps(&component))?;
        Ok(Direct {
            engine: engine.clone(),
            pre: w(linker.instantiate_pre(&component))?,
        })
    }

    /// One task: a fresh instance, one call of `run`, the output parsed.
    async fn call(&self, value: u64) -> anyhow::Result<u64> {
        let data = Bare {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, data);
        w(store.set_fuel(u64::MAX))?;
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = w(self.pre.instantiate_async(&mut store).await)?;
        let task = instance
            .get_export_index(&mut store, None, TASK_INTERFACE)
            .context("no task export")?;
        let run = instance
            .get_export_index(&mut store, Some(&task), "run")
            .and_then(|i| instance.get_func(&mut store, i))
            .context("no run export")?;
        let text = |s: &str| Val::String(s.into());
        let ctx = Val::Record(vec![
            ("run-id".into(), text("bench")),
            ("node-id".into(), text("t")),
            ("attempt".into(), Val::U32(1)),
            ("idempotency-key".into(), text("bench/t")),
        ]);
        let input = json!({ "value": value }).to_string();
        let mut out = [Val::Bool(false)];
        w(run
            .call_async(
                &mut store,
                &[text("math.add-one"), text(&input), ctx],
                &mut out,
            )
            .await)?;
        let Val::Result(Ok(Some(output))) = &out[0] else {
            anyhow::bail!("add-one failed: {:?}", out[0]);
        };
        let Val::String(output) = output.as_ref() else {
            anyhow::bail!("add-one returned {output:?}");
        };
        let output: serde_json::Value = serde_json::from_str(output)?;
        output["value"].as_u64().context("no value in the output")
    }
}

/// µs per task of a chain of `n` direct calls.
async fn direct_chain(direct: &Direct, n: usize) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut value = 0;
    for _ in 0..n {
        value = direct.call(value).await?;
    }
    anyhow::ensure!(value == n as u64, "the direct chain made {value}");
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// µs per node of a chain of `n` add-one nodes run by Weft in memory (its
/// planning not counted).
async fn weft_chain(host: &weft::Host, n: usize) -> anyhow::Result<f64> {
    let plan = host
        .plan(&chain(n), "bench")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let start = Instant::now();
    let result = host
        .run_plan(
            &plan,
            &json!({}),
            &EventHub::new("bench", 1),
            &CancellationToken::new(),
        )
        .await?;
    let per_node = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    let last = result.outputs.get(&format!("t{}", n - 1));
    anyhow::ensure!(
        last == Some(&json!({"value": n})),
        "the chain ended with {last:?}"
    );
    Ok(per_node)
}

/// wasmtime's error, with its chain, as the binary's.
fn w<T>(r: wasmtime::Result<T>) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// A chain of `n` add-one nodes, the first fed 0.
fn chain(n: usize) -> Graph {
    let mut b = Graph::builder()
        .task("t0", "math.add-one")
        .defaults(json!({"value": 0}));
    for i in 1..n {
        b = b.task(&format!("t{i}"), "math.add-one").connect(
            &format!("t{}", i - 1),
            "value",
            &format!("t{i}"),
            "value",
        );
    }
    b.build()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // On a worker thread, as `weft run` and the daemon run graphs: what a
    // run wakes is then scheduled beside it (from `block_on`'s thread, every
    // wake-up would cross to a parked worker).
    tokio::spawn(bench()).await?
}

async fn bench() -> anyhow::Result<()> {
    let sizes: Result<Vec<usize>, _> = std::env::args().skip(1).map(|a| a.parse()).collect();
    let sizes = match sizes {
        Ok(v) if !v.is_empty() => v,
        Ok(_) => vec![100, 1000, 10_000],
        Err(e) => anyhow::bail!("chain lengths are numbers: {e}"),
    };
    let host = weft::Host::builder()
        .cache(weft::cache::CachePolicy {
            enabled: false,
            ..Default::default()
        })
        .build()
        .await
        .context("host")?;
    let direct = Direct::new(host.plugin_host().engine().engine())?;
    // Warm up both: a first call pays for what a process does once (code
    // pages, pool slots, allocator arenas), which is not a task's cost.
    direct.call(0).await?;
    weft_chain(&host, 100).await?;

    // Best of 3 at each length: a chain of 100 takes ~2 ms, where one
    // descheduling shows.
    let mut rows = Vec::new();
    for &n in &sizes {
        let (mut floor, mut weft) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            floor = floor.min(direct_chain(&direct, n).await?);
            weft = weft.min(weft_chain(&host, n).await?);
        }
        rows.push((n, floor, weft));
    }
    println!(
        "{:<10} {:>14} {:>16} {:>8} {:>18}",
        "tasks", "wasmtime µs", "weft chain µs", "ratio", "weft vs longest"
    );
    let longest = rows.last().map_or(1.0, |r| r.2);
    for (n, floor, weft) in rows {
        println!(
            "{n:<10} {floor:>14.1} {weft:>16.1} {:>8.2} {:>18.2}",
            weft / floor,
            weft / longest
        );
    }
    Ok(())
}
