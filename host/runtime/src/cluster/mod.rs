//! Hosts sharing one store (PostgreSQL): everything one host agrees with
//! the others through it.
//!
//! - [`leases`]: which host executes a run. A run is leased to one host at a
//!   time; the holder renews its leases with heartbeats, and a run whose
//!   lease expired (its host died) is claimed by another host, which resumes
//!   it from the store.
//! - [`dispatch`]: where one task of a run executes. A busy host offers tasks
//!   through the store; hosts with free task slots claim them, execute them
//!   under a heartbeat and record results for the run's host, which stays
//!   the only writer of the run.
//!
//! Concurrency slots shared across hosts (a queue's `concurrency = N`) are
//! held in the store by `weft-queue` and renewed by the dispatch heartbeat.
//! This module must not schedule a run's nodes (that is the runner) nor know
//! how a task is implemented.

pub mod dispatch;
pub mod leases;
