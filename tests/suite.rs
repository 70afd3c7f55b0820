//! Weft's cross-cutting tests, one module per concern, in one test binary:
//! each test binary links the whole host (~165 MB in a debug build), and
//! one per concern filled a CI machine's disk. One concern's tests:
//! `cargo test -p weft-tests --test suite store::`.

#[path = "workglow/cases.rs"]
mod cases;
mod common;
#[path = "common/fake_api.rs"]
mod fake_api;

mod bad_plugins;
mod cache;
mod codegen;
mod coverage;
mod graph_language;
mod http;
mod images;
mod limits;
mod models;
mod operations;
mod pinning;
mod plugins;
mod providers;
mod queues;
mod retry;
mod runner;
mod signals;
mod standard_tasks;
mod storage;
mod store;
mod validation;
mod workflow;
mod workglow;
