//! # Weft: a durable pipeline runtime for sandboxed WebAssembly tasks
//!
//! The path of a run reads top to bottom:
//!
//! - [`graph`]: graph JSON and the fluent builder → a validated [`graph::Plan`];
//! - [`runner`]: schedules ready nodes, in parallel, with cancellation;
//! - [`cluster`]: with a store shared by several hosts, which host executes a
//!   run (leases) and a busy host's tasks (dispatch);
//! - [`task`]: task types and their registry; one task run = input check, run
//!   under a timeout, output check;
//! - [`plugin`]: wasm components that provide task types, each task run in a
//!   fresh sandboxed instance;
//! - [`events`]: the numbered event stream of each run;
//! - [`store`]: runs, node states, outputs and event logs, durable (redb) or in memory;
//! - [`schema`]: reading the JSON Schemas plugins declare;
//! - [`providers`]: models (local ONNX, HTTP APIs) served to plugins;
//! - [`data`]: file and SQL tasks over folders and databases the configuration grants;
//! - [`workflow`]: a builder that connects tasks by their port names;
//! - [`config`] and [`setup`]: `weft.toml`, and the one place that turns it
//!   (with a caller's overrides) into a store and a host.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use weft::{Host, graph::Graph};
//! let host = Host::builder().build().await?;
//! let graph = Graph::builder()
//!     .task("a", "math.add-one").defaults(serde_json::json!({"value": 1}))
//!     .task("b", "math.add-one")
//!     .flow("a.value", "b.value")
//!     .build();
//! let result = host.run(&graph, serde_json::json!({})).await?;
//! assert_eq!(result.outputs["b"]["value"], 3);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub use weft_core::{cache, clock, grant, graph, json, rate, schedule, schema, task, workflow};
pub use weft_plugin as plugin;
pub use weft_plugin::providers;
pub use weft_queue as limiter;
pub use weft_store as store;

pub mod budget;
pub mod cluster;
pub mod config;
mod control;
pub mod data;
pub mod events;
mod host;
mod in_flight;
pub mod instance;
mod map;
pub mod pinning;
pub mod retention;
pub mod runner;
pub mod secrets;
pub mod setup;
pub mod signals;
mod subgraph;

pub use host::{
    DeadLetter, Host, HostBuilder, HostError, Prepared, PreparedRun, Submission, new_run_id,
};
