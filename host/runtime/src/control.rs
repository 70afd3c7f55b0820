//! The control-flow kinds that run a task type several times on a node's
//! behalf: fallback, reduce and while (map has [`crate::map`]).
//!
//! Owns what each kind does with its instances ([`crate::instance`]): which
//! runs next, with what input, and what the node gives. Each instance is
//! durable on its own, so a resumed run goes on from the instance it was at.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::graph::{FallbackSpec, NodeKind, ReduceSpec, WhileSpec};
use crate::instance::Instances;
use crate::task::TaskError;
use weft_core::event::LogLevel;

/// Run node kind `kind` on `input` through `instances`; `parallelism`: a
/// map's default concurrency.
pub(crate) async fn run_kind(
    kind: NodeKind,
    input: Arc<Value>,
    instances: Instances,
    parallelism: usize,
) -> Result<Value, TaskError> {
    match kind {
        NodeKind::Map(spec) => {
            let concurrency = spec.concurrency.unwrap_or(parallelism);
            let m = crate::map::MapRun {
                spec,
                input,
                concurrency,
                instances,
            };
            crate::map::run_map(m).await
        }
        NodeKind::Fallback(spec) => fallback(&spec, object(input), &instances).await,
        NodeKind::Reduce(spec) => reduce(&spec, object(input), &instances).await,
        NodeKind::While(spec) => repeat(&spec, object(input), &instances).await,
        NodeKind::Task | NodeKind::Conditional(_) | NodeKind::Wait(_) => Err(TaskError::Host(
            "not a kind that runs instances (a host bug)".into(),
        )),
    }
}

fn object(v: Arc<Value>) -> Map<String, Value> {
    match v.as_ref() {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    }
}

/// Try each alternative in order (its inputs over the node's) until one
/// completes; every failure is in the node's log. All failed: the last
/// failure, with how many were tried.
async fn fallback(
    spec: &FallbackSpec,
    input: Map<String, Value>,
    inst: &Instances,
) -> Result<Value, TaskError> {
    let n = spec.alternatives.len();
    let mut last = String::new();
    for (k, (task, overrides)) in spec.alternatives.iter().enumerate() {
        if let Some(output) = inst.finished(k) {
            return Ok(output);
        }
        let mut one = input.clone();
        one.extend(overrides.clone());
        match inst.run(task, k, Value::Object(one)).await {
            (Ok(output), _) => return Ok(output),
            (Err(e @ TaskError::Cancelled(_)), _) => return Err(e),
            (Err(e), _) => {
                let message = e.to_string();
                let (at, id) = (k + 1, &task.id);
                let line = format!("alternative {at} of {n} (`{id}`) failed: {message}");
                inst.log(LogLevel::Warn, line);
                last = message;
            }
        }
    }
    Err(TaskError::Failed(format!(
        "all {n} alternatives failed; the last: {last}"
    )))
}

/// Carry the accumulator through one step per item of the `over` port: a
/// step's input is the node's, with the item and the accumulator; its
/// `carry` output is the next accumulator. The node gives the last step's
/// output (with no items: the accumulator as the `carry` port).
async fn reduce(
    spec: &ReduceSpec,
    input: Map<String, Value>,
    inst: &Instances,
) -> Result<Value, TaskError> {
    let items = match input.get(&spec.over) {
        Some(Value::Array(items)) => items.clone(),
        _ => {
            return Err(TaskError::InvalidInput(format!(
                "port `{}` is reduced over but is not an array",
                spec.over
            )));
        }
    };
    let mut accumulator = input.get(&spec.accumulator).cloned().unwrap_or(Value::Null);
    let mut last = Value::Object(Map::from_iter([(spec.carry.clone(), accumulator.clone())]));
    for (k, item) in items.into_iter().enumerate() {
        let output = match inst.finished(k) {
            Some(output) => output,
            None => {
                let mut one = input.clone();
                one.insert(spec.over.clone(), item);
                one.insert(spec.accumulator.clone(), accumulator.clone());
                let (end, _) = inst.run(&spec.task, k, Value::Object(one)).await;
                end.map_err(|e| step_failed(k, e))?
            }
        };
        accumulator = output.get(&spec.carry).cloned().unwrap_or(Value::Null);
        last = output;
        inst.progress("reduce", k + 1, input_len(&input, &spec.over));
    }
    Ok(last)
}

fn input_len(input: &Map<String, Value>, port: &str) -> usize {
    input
        .get(port)
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// Step `k` failed with `e`: the node fails with it (a cancellation stays
/// one).
fn step_failed(k: usize, e: TaskError) -> TaskError {
    match e {
        TaskError::Cancelled(why) => TaskError::Cancelled(why),
        e => TaskError::Failed(format!("step {k} failed: {e}")),
    }
}

/// Run the task type, then again with its output over its input, while the
/// condition holds of the last `output` and `input`, at most
/// `max_iterations` times. The node gives the last iteration's output.
async fn repeat(
    spec: &WhileSpec,
    mut input: Map<String, Value>,
    inst: &Instances,
) -> Result<Value, TaskError> {
    let max = spec.max_iterations;
    for k in 0..max {
        let output = match inst.finished(k) {
            Some(output) => output,
            None => {
                let (end, _) = inst.run(&spec.task, k, Value::Object(input.clone())).await;
                end.map_err(|e| step_failed(k, e))?
            }
        };
        inst.progress("while", k + 1, max);
        let this_input = Value::Object(input.clone());
        let go_on = spec
            .condition
            .holds_on(&[("output", &output), ("input", &this_input)])
            .map_err(|e| TaskError::Failed(format!("iteration {k}: the condition: {e}")))?;
        if !go_on || k + 1 == max {
            if go_on {
                inst.log(
                    LogLevel::Warn,
                    format!("stopped at max_iterations ({max}) with the condition still true"),
                );
            }
            return Ok(output);
        }
        if let Value::Object(fields) = output {
            input.extend(fields);
        }
    }
    Err(TaskError::Failed("no iteration ran".into()))
}
