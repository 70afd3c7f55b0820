//! The `Workflow` builder: tasks connect themselves by port names, and what
//! it builds runs.

use crate::common;

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

#[tokio::test]
async fn scopes_build_bodies_that_connect_by_the_ports_they_leave_open() {
    let host = common::host(None).await;
    let registry = host.registry();
    // A map whose body is two add-ones; the map node takes and gives
    // arrays of their ports, so `math.sum` follows it by a rename.
    let graph = Workflow::new(&registry)
        .map(json!({}))
        .pipe(&["math.add-one", "math.add-one"])
        .end_map()
        .named("each")
        .config(json!({"concurrency": 2}))
        .rename("value", "values")
        .add("math.sum", json!({}))
        .build()
        .unwrap();
    let body = graph.tasks[0].graph.as_ref().unwrap();
    assert_eq!(
        body.dataflows[0].to_string(),
        "add-one-1.value → add-one-2.value"
    );
    assert_eq!(graph.tasks[0].config.concurrency, Some(2));
    assert_eq!(graph.dataflows[0].to_string(), "each.value → sum-1.values");
    let (result, _) = common::run(&host, &graph, json!({"value": [1, 2, 3]})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["sum-1"]["value"], 12);

    // A scope's node is fed like a task: add-one's `value` feeds the
    // while body's open `value` port.
    let graph = Workflow::new(&registry)
        .add("math.add-one", json!({"value": 0}))
        .while_loop(json!({}))
        .add("math.add-one", json!({}))
        .end_while()
        .config(json!({"condition": "output.value < 5", "max_iterations": 10}))
        .build()
        .unwrap();
    assert_eq!(
        graph.dataflows[0].to_string(),
        "add-one-1.value → while-1.value"
    );
    let (result, _) = common::run(&host, &graph, json!({})).await;
    assert_eq!(
        result.outputs["while-1"]["value"], 5,
        "{:?}",
        result.failures
    );

    // A failure handler, fed by the `[error]` port: the run goes on.
    let graph = Workflow::new(&registry)
        .add("math.divide", json!({"a": 1, "b": 0}))
        .config(json!({"retries": 0}))
        .on_error("text.template", json!({"template": "caught: {{error}}"}))
        .build()
        .unwrap();
    assert_eq!(
        graph.dataflows[0].to_string(),
        "divide-1.[error] → template-1.*"
    );
    let (result, _) = common::run(&host, &graph, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    let text = result.outputs["template-1"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("caught: ") && text.contains("zero"),
        "{text}"
    );

    // Mistakes are named.
    let e = Workflow::new(&registry).map(json!({})).end_reduce().build();
    assert_eq!(e.unwrap_err().to_string(), "end_reduce(): a map is open");
    let e = Workflow::new(&registry).map(json!({})).build();
    assert_eq!(
        e.unwrap_err().to_string(),
        "build(): the map `map-1` is still open (end it with end_map)"
    );
    let e = Workflow::new(&registry)
        .add("math.add-one", json!({}))
        .config(json!({"retries": "many"}))
        .build();
    assert!(
        e.unwrap_err()
            .to_string()
            .starts_with("config(): invalid type")
    );
}
