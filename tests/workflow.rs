//! The `Workflow` builder: tasks connect themselves by port names, and what
//! it builds runs.

#[path = "common/mod.rs"]
mod common;

use serde_json::json;
use weft::events::RunStatus;
use weft::graph::Graph;
use weft::workflow::{Workflow, WorkflowError};

#[tokio::test]
async fn tasks_connect_by_port_name_and_the_graph_runs() {
    let host = common::host(None).await;
    let registry = host.registry();
    // add-one → add-one by `value`; then `value` renamed into math.add's `a`.
    let graph = Workflow::new(&registry)
        .add("math.add-one", json!({"value": 1}))
        .named("first")
        .pipe(&["math.add-one"])
        .rename("value", "a")
        .add("math.add", json!({"b": 10}))
        .named("sum")
        .build()
        .unwrap();
    let flows: Vec<String> = graph.dataflows.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        flows,
        ["first.value → add-one-2.value", "add-one-2.value → sum.a"]
    );
    let (result, _) = common::run(&host, &graph, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["sum"]["value"], 13);
    // It is a plain graph: its JSON reads back the same.
    assert_eq!(
        Graph::from_json(&graph.to_json_pretty(), "w.json").unwrap(),
        graph
    );
}

#[tokio::test]
async fn parallel_steps_connect_pop_and_reset() {
    let host = common::host(None).await;
    let registry = host.registry();
    let graph = Workflow::new(&registry)
        .add("math.add-one", json!({"value": 1}))
        .parallel(&[
            ("math.add-one", json!({})),
            ("math.multiply", json!({"b": 3})),
        ])
        .build();
    // math.multiply takes `a` and `b`: nothing of add-one's matches.
    assert!(
        matches!(&graph, Err(WorkflowError::NothingToConnect { to, .. }) if to == "multiply-1"),
        "{graph:?}"
    );
    let graph = Workflow::new(&registry)
        .add("math.add-one", json!({"value": 1}))
        .rename("value", "a")
        .parallel(&[
            ("math.multiply", json!({"b": 3})),
            ("math.subtract", json!({"b": 1})),
        ])
        .reset()
        .add("math.add-one", json!({"value": 100}))
        .add("math.add-one", json!({}))
        .pop()
        .connect("subtract-1.value", "add-one-2.value", Vec::new())
        .build()
        .unwrap();
    let (result, _) = common::run(&host, &graph, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["multiply-1"]["value"], 6);
    // add-one-3 was popped; add-one-2's default 100 gives way to the
    // dataflow from subtract (1).
    assert_eq!(result.outputs["add-one-2"]["value"], 2);
    assert_eq!(graph.tasks.len(), 4);

    let e = Workflow::new(&registry)
        .add("math.nope", json!({}))
        .build()
        .unwrap_err();
    assert_eq!(e.to_string(), "unknown task type `math.nope`");
    let e = Workflow::new(&registry)
        .add("math.add-one", json!({}))
        .connect("math.value", "add-one-1.value", Vec::new())
        .build()
        .unwrap_err();
    assert_eq!(e.to_string(), "connect(): no task `math`");
}
