//! # weft-core: what a pipeline is, before anything runs
//!
//! The pure layer of Weft: no wasm, no storage, no HTTP.
//!
//! - [`graph`]: graph JSON and the fluent builder → a validated [`graph::Plan`];
//! - [`task`]: task types, the registry that knows them, one task run (input
//!   checked, run under its timeout, output checked) and how it can fail;
//! - [`schema`]: reading the JSON Schemas task types declare;
//! - [`event`]: what happens during a run, and where a task's logs go;
//! - [`cache`]: the output cache's key and policy;
//! - [`json`]: JSON values kept long, made as small as their contents;
//! - [`rate`]: sliding-window rate arithmetic;
//! - [`clock`]: the time;
//! - [`schedule`]: when a schedule fires (cron patterns, intervals, catch-up);
//! - [`workflow`]: a builder that connects tasks by their port names, and
//!   the code generator that writes builder code for a graph.
//!
//! Task types are registered in a [`task::Registry`]; a graph is checked
//! against it:
//!
//! ```
//! use weft_core::graph::{Graph, Plan};
//! use weft_core::task::{NativeTask, Registry};
//! let mut registry = Registry::new();
//! registry
//!     .register_native(NativeTask::new("demo.echo", |input, _ctx| async move { Ok(input) }))
//!     .unwrap();
//! let graph = Graph::builder().task("a", "demo.echo").build();
//! assert!(Plan::new(&graph, &registry, "demo", &Default::default()).is_ok());
//! let wrong = Graph::builder().task("a", "demo.ecko").build();
//! let errors = Plan::new(&wrong, &registry, "demo", &Default::default()).unwrap_err();
//! assert!(errors.to_string().contains("did you mean `demo.echo`"), "{errors}");
//! ```
#![deny(missing_docs)]

pub mod cache;
pub mod clock;
pub mod event;
pub mod grant;
pub mod graph;
pub mod json;
pub mod rate;
pub mod schedule;
pub mod schema;
pub mod task;
pub mod workflow;
