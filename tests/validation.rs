//! Every way a graph can be wrong is caught before anything runs, with an error
//! naming the file, the node or dataflow, and the port.

use crate::common;

use serde_json::{Value, json};
use weft::graph::{Graph, ValidationError};

async fn problems(g: Value) -> Vec<ValidationError> {
    let host = common::host(None).await;
    let graph = common::graph(g);
    host.plan(&graph, "g.json")
        .expect_err("graph should be invalid")
        .errors
}

async fn message(g: Value) -> String {
    let host = common::host(None).await;
    host.plan(&common::graph(g), "g.json")
        .expect_err("graph should be invalid")
        .to_string()
}

fn flow(s: &str, sp: &str, t: &str, tp: &str) -> Value {
    json!({"sourceTaskId": s, "sourceTaskPortId": sp, "targetTaskId": t, "targetTaskPortId": tp})
}

#[test]
fn malformed_json_names_line_and_column() {
    let err = Graph::from_json(
        "{\"tasks\": [\n  {\"id\": \"a\", \"type\": \"math.add-one\"\n]}",
        "pipe.json",
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("pipe.json:3:1: malformed JSON"), "{msg}");
    let err = Graph::from_json("{\"tasks\": [{\"id\": \"a\"}]}", "pipe.json").unwrap_err();
    assert!(err.to_string().contains("missing field `type`"), "{err}");
}

#[tokio::test]
async fn duplicate_node_id() {
    let msg = message(json!({"tasks": [
        {"id": "a", "type": "math.add-one", "defaults": {"value": 1}},
        {"id": "a", "type": "math.add-one", "defaults": {"value": 1}}
    ]}))
    .await;
    assert!(
        msg.contains("g.json: tasks[1]: duplicate node id \"a\" (first used by tasks[0])"),
        "{msg}"
    );
}

#[tokio::test]
async fn unknown_task_type_with_suggestion() {
    let errs = problems(json!({"tasks": [{"id": "a", "type": "text.splitt"}]})).await;
    assert_eq!(
        errs[0].to_string(),
        "tasks[0] (node \"a\"): unknown task type `text.splitt` (did you mean `text.split`?)"
    );
}

#[tokio::test]
async fn unknown_ports_on_both_ends() {
    let errs = problems(json!({
        "tasks": [{"id": "s", "type": "text.split", "defaults": {"text": "x"}}, {"id": "j", "type": "text.join"}],
        "dataflows": [flow("s", "pieces", "j", "parts"), flow("s", "parts", "j", "bits")]
    }))
    .await;
    let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(msgs.contains(&"dataflows[0] (s.pieces → j.parts): node \"s\" (`text.split`) has no output port `pieces` (ports: parts, count)".to_string()), "{msgs:?}");
    assert!(msgs.contains(&"dataflows[1] (s.parts → j.bits): node \"j\" (`text.join`) has no input port `bits` (ports: parts, separator)".to_string()), "{msgs:?}");
}

#[tokio::test]
async fn unknown_node_in_dataflow() {
    let errs = problems(json!({
        "tasks": [{"id": "a", "type": "math.add-one", "defaults": {"value": 1}}],
        "dataflows": [flow("a", "value", "ghost", "value")]
    }))
    .await;
    assert_eq!(
        errs[0].to_string(),
        "dataflows[0] (a.value → ghost.value): no node \"ghost\" in the graph"
    );
}

#[tokio::test]
async fn cycle_names_the_nodes_on_it() {
    let errs = problems(json!({
        "tasks": [
            {"id": "start", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "a", "type": "math.add"},
            {"id": "b", "type": "math.add-one"},
            {"id": "c", "type": "math.add-one"}
        ],
        "dataflows": [
            flow("start", "value", "a", "a"), flow("c", "value", "a", "b"),
            flow("a", "value", "b", "value"), flow("b", "value", "c", "value")
        ]
    }))
    .await;
    assert_eq!(
        errs,
        vec![ValidationError::Cycle {
            nodes: vec!["a".into(), "b".into(), "c".into(), "a".into()]
        }]
    );
    assert_eq!(errs[0].to_string(), "cycle: a → b → c → a");
    let self_loop = problems(json!({
        "tasks": [{"id": "x", "type": "math.add-one"}],
        "dataflows": [flow("x", "value", "x", "value")]
    }))
    .await;
    assert_eq!(self_loop[0].to_string(), "cycle: x → x");
}

#[tokio::test]
async fn required_input_without_default_or_dataflow() {
    let errs = problems(json!({
        "tasks": [{"id": "a", "type": "math.add-one", "defaults": {"value": 1}}, {"id": "sum", "type": "math.add"}],
        "dataflows": [flow("a", "value", "sum", "a")]
    }))
    .await;
    assert_eq!(
        errs[0].to_string(),
        "tasks[1] (node \"sum\"): required input `b` of `math.add` has no default, no dataflow"
    );
}

#[tokio::test]
async fn root_inputs_may_come_from_the_run_input() {
    let host = common::host(None).await;
    let g = common::graph(json!({"tasks": [{"id": "a", "type": "math.add-one"}]}));
    let plan = host
        .plan(&g, "g.json")
        .expect("a root's inputs can come at run time");
    assert_eq!(plan.expected_input(), vec!["a.value"]);
    let err = plan
        .check_input(&json!({"other": 1}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("required input `value` of `math.add-one` has no default, no dataflow and is not in the run's input"), "{err}");
    plan.check_input(&json!({"value": 1})).unwrap();
}

#[tokio::test]
async fn connected_ports_whose_types_cannot_match() {
    let errs = problems(json!({
        "tasks": [{"id": "j", "type": "text.join", "defaults": {"parts": ["a"]}}, {"id": "n", "type": "math.add-one"}],
        "dataflows": [flow("j", "text", "n", "value")]
    }))
    .await;
    assert_eq!(
        errs[0].to_string(),
        "dataflows[0] (j.text → n.value): output port gives string but input port accepts number"
    );
}

#[tokio::test]
async fn input_port_fed_twice() {
    let errs = problems(json!({
        "tasks": [
            {"id": "a", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "b", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "c", "type": "math.add-one"}
        ],
        "dataflows": [flow("a", "value", "c", "value"), flow("b", "value", "c", "value")]
    }))
    .await;
    assert_eq!(
        errs[0].to_string(),
        "dataflows[1] (b.value → c.value): input port `value` of node \"c\" is already fed by dataflows[0] (only a port that takes an array collects several dataflows)"
    );
}

#[tokio::test]
async fn defaults_checked_against_ports() {
    let errs = problems(json!({"tasks": [
        {"id": "a", "type": "math.add-one", "defaults": {"value": "one"}},
        {"id": "b", "type": "math.add-one", "defaults": {"valu": 1}},
        {"id": "c", "type": "math.add-one", "defaults": 3}
    ]}))
    .await;
    let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(msgs, vec![
        "tasks[0] (node \"a\"): default for input port `value` is string, but `math.add-one` expects number".to_string(),
        "tasks[1] (node \"b\"): default for unknown input port `valu` of `math.add-one` (ports: value)".to_string(),
        "tasks[2] (node \"c\"): `defaults` must be a JSON object".to_string(),
    ]);
}

#[tokio::test]
async fn all_problems_are_reported_at_once() {
    let msg = message(json!({"tasks": [
        {"id": "a", "type": "nope.nope"},
        {"id": "a", "type": "math.add-one", "defaults": {"value": 1}}
    ]}))
    .await;
    assert!(msg.starts_with("g.json: 2 problems"), "{msg}");
}

#[tokio::test]
async fn compound_nodes_are_checked_inside_and_at_their_boundary() {
    let inner = |task: &str| {
        json!({"tasks": [{"id": "x", "type": task}, {"id": "y", "type": "math.add-one"}],
               "dataflows": [flow("x", "value", "y", "value")]})
    };
    // Inside the subgraph: positions are the subgraph's.
    let msg = message(json!({"tasks": [
        {"id": "src", "type": "math.add-one", "defaults": {"value": 1}},
        {"id": "c", "type": "graph", "graph": inner("math.add-on")}
    ]}))
    .await;
    assert!(
        msg.contains("tasks[1] (node \"c\"), in its subgraph: tasks[0] (node \"x\"): unknown task type `math.add-on` (did you mean `math.add-one`?)"),
        "{msg}"
    );
    // A port the subgraph's roots do not have.
    let msg = message(json!({
        "tasks": [
            {"id": "src", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "c", "type": "graph", "graph": inner("math.add-one")}
        ],
        "dataflows": [flow("src", "value", "c", "amount")]
    }))
    .await;
    assert!(
        msg.contains("dataflows[0] (src.value → c.amount): node \"c\" (`graph`) has no input port `amount` (ports: value)"),
        "{msg}"
    );
    // Two leaves give `value`: which one is meant?
    let msg = message(json!({
        "tasks": [
            {"id": "c", "type": "graph", "graph": {"tasks": [
                {"id": "p", "type": "math.add-one", "defaults": {"value": 1}},
                {"id": "q", "type": "math.add-one", "defaults": {"value": 2}}
            ]}},
            {"id": "after", "type": "math.add-one"}
        ],
        "dataflows": [flow("c", "value", "after", "value")]
    }))
    .await;
    assert!(
        msg.contains("output port `value` of compound node \"c\" is ambiguous: several of its leaf nodes give it (c/p, c/q)"),
        "{msg}"
    );
    // Types are checked across the boundary.
    let errors = problems(json!({
        "tasks": [
            {"id": "split", "type": "text.split", "defaults": {"text": "a,b", "separator": ","}},
            {"id": "c", "type": "graph", "graph": inner("math.add-one")}
        ],
        "dataflows": [flow("split", "parts", "c", "value")]
    }))
    .await;
    assert!(
        errors.iter().any(|e| matches!(e, ValidationError::SchemaMismatch { flow, .. } if flow == "split.parts → c/x.value")),
        "{errors:?}"
    );
    // A compound node needs its subgraph, and only compound nodes have one.
    let msg = message(json!({"tasks": [
        {"id": "c", "type": "graph"},
        {"id": "d", "type": "math.add-one", "graph": inner("math.add-one")}
    ]}))
    .await;
    assert!(
        msg.contains("tasks[0] (node \"c\"): a compound node (type `graph`) needs a `graph` field"),
        "{msg}"
    );
    assert!(
        msg.contains("tasks[1] (node \"d\"): a node of type `math.add-one` has no `graph` field"),
        "{msg}"
    );
}

#[tokio::test]
async fn problems_around_compound_nodes_point_at_the_graph_as_written() {
    let two = json!({"tasks": [{"id": "p", "type": "math.add-one"}, {"id": "q", "type": "math.add-one"}],
                     "dataflows": [flow("p", "value", "q", "value")]});
    // `x` is the graph's second task, though three nodes come before it once
    // `c` is expanded.
    let msg = message(json!({"tasks": [
        {"id": "c", "type": "graph", "defaults": {"value": 1}, "graph": two},
        {"id": "x", "type": "math.nope"}
    ]}))
    .await;
    assert!(
        msg.contains("tasks[1] (node \"x\"): unknown task type `math.nope`"),
        "{msg}"
    );
    // An input the compound node's dataflows leave missing: at its position.
    let msg = message(json!({
        "tasks": [
            {"id": "src", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "c", "type": "graph", "graph": {"tasks": [{"id": "sum", "type": "math.add"}]}}
        ],
        "dataflows": [flow("src", "value", "c", "a")]
    }))
    .await;
    assert!(
        msg.contains("tasks[1] (node \"c/sum\"): required input `b` of `math.add` has no default, no dataflow"),
        "{msg}"
    );
    // Nesting is bounded.
    let mut g =
        json!({"tasks": [{"id": "leaf", "type": "math.add-one", "defaults": {"value": 1}}]});
    for _ in 0..20 {
        g = json!({"tasks": [{"id": "n", "type": "graph", "graph": g}]});
    }
    let msg = message(g).await;
    assert!(
        msg.contains("compound nodes nest deeper than 16 levels"),
        "{msg}"
    );
}

/// A graph larger than a graph may be is refused by its size, before its
/// compound nodes are expanded and validated: the expansion a few thousand
/// dataflows into a compound node of a few thousand roots would make
/// (millions of dataflows) never happens.
#[tokio::test]
async fn oversized_graphs_are_refused_by_their_size_before_expansion() {
    use weft::graph::{MAX_DATAFLOWS, MAX_NODES};
    let roots: Vec<Value> = (0..3_000)
        .map(|i| json!({"id": format!("r{i}"), "type": "math.add-one"}))
        .collect();
    let feeds: Vec<Value> = (0..3_000)
        .map(|_| flow("src", "value", "fan", "value"))
        .collect();
    let fan = json!({
        "tasks": [
            {"id": "src", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "fan", "type": "graph", "graph": {"tasks": roots}},
        ],
        "dataflows": feeds,
    });
    let errors = problems(fan).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let shown = errors[0].to_string();
    assert!(
        shown.contains(&format!(
            "more than {MAX_DATAFLOWS} dataflows once its compound nodes are expanded"
        )),
        "{shown}"
    );

    // Too many nodes, counting those inside compound nodes.
    let inner: Vec<Value> = (0..MAX_NODES / 2 + 1)
        .map(|i| json!({"id": format!("i{i}"), "type": "math.add-one"}))
        .collect();
    let outer: Vec<Value> = (0..MAX_NODES / 2)
        .map(|i| json!({"id": format!("o{i}"), "type": "math.add-one", "defaults": {"value": 1}}))
        .chain([json!({"id": "c", "type": "graph", "graph": {"tasks": inner}})])
        .collect();
    let shown = message(json!({"tasks": outer})).await;
    assert!(
        shown.contains(&format!("more than {MAX_NODES} nodes")),
        "{shown}"
    );

    // At the limit is fine: 10,000 nodes in a chain validate.
    let chain: Vec<Value> = (0..MAX_NODES)
        .map(|i| json!({"id": format!("n{i}"), "type": "math.add-one", "defaults": {"value": 1}}))
        .collect();
    let links: Vec<Value> = (1..MAX_NODES)
        .map(|i| flow(&format!("n{}", i - 1), "value", &format!("n{i}"), "value"))
        .collect();
    let host = common::host(None).await;
    let graph = common::graph(json!({"tasks": chain, "dataflows": links}));
    let plan = host
        .plan(&graph, "chain.json")
        .expect("a graph at the limit is valid");
    assert_eq!(plan.nodes.len(), MAX_NODES);
}

/// An operator raises the size limit with `[quotas] graph_nodes`: a chain
/// longer than the default then validates, one longer than the setting is
/// refused with the setting named.
#[tokio::test]
async fn the_graph_size_limit_is_a_setting() {
    use weft::graph::MAX_NODES;
    let chain = |n: usize| {
        let tasks: Vec<Value> = (0..n)
            .map(|i| json!({"id": format!("n{i}"), "type": "math.add-one", "defaults": {"value": 1}}))
            .collect();
        let links: Vec<Value> = (1..n)
            .map(|i| flow(&format!("n{}", i - 1), "value", &format!("n{i}"), "value"))
            .collect();
        common::graph(json!({"tasks": tasks, "dataflows": links}))
    };
    let longer = chain(MAX_NODES + 500);
    let default = common::host(None).await;
    let refused = default.plan(&longer, "long.json").unwrap_err().to_string();
    assert!(
        refused.contains(&format!("more than {MAX_NODES} nodes")),
        "{refused}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weft.toml");
    let raised = MAX_NODES + 1_000;
    std::fs::write(&file, format!("[quotas]\ngraph_nodes = {raised}\n")).unwrap();
    let config = weft::config::Config::load(&file).unwrap();
    let host = config.apply(weft::Host::builder()).build().await.unwrap();
    assert_eq!(host.graph_sizes().nodes, raised);
    let plan = host.plan(&longer, "long.json").expect("within the setting");
    assert_eq!(plan.nodes.len(), MAX_NODES + 500);
    let refused = host
        .plan(&chain(raised + 1), "longest.json")
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&format!("more than {raised} nodes")),
        "{refused}"
    );
}
