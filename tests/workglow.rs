//! Graphs written by Workglow itself run in Weft with Workglow's results.
//!
//! `tests/workglow/cases.mjs` builds graphs with the real npm package
//! (`@workglow/task-graph`, pinned in `tests/workglow/package.json`), writes
//! each with Workglow's `toJSON()` or `toDependencyJSON()` and runs it in
//! Workglow; here each is read and run by Weft, and the leaf outputs
//! compared. Its task classes carry Weft's standard type ids and mirror
//! their behaviour.

use crate::cases;
use crate::common;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use weft::events::RunStatus;
use weft::graph::Graph;

/// Arrays sorted (by their JSON text), where Workglow's order is the order
/// its leaves happened to finish in; numbers by value (JavaScript has one
/// number type: `4` and `4.0` are the same).
fn unordered(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(unordered).collect();
            items.sort_by_key(|i| i.to_string());
            Value::Array(items)
        }
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), unordered(v))).collect())
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => json!(f as i64),
            _ => v.clone(),
        },
        other => other.clone(),
    }
}

/// Run `node ARGS FILES` in `tests/workglow`; its stdout (it must succeed).
fn node(args: &[&str], files: &[std::path::PathBuf]) -> Vec<u8> {
    let out = Command::new("node")
        .args(args)
        .args(files)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("workglow"))
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "node {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn graphs_workglow_writes_run_in_weft_with_workglows_results() {
    let host = common::host(None).await;
    let cases = cases::workglow_cases();
    assert_eq!(cases.len(), 12, "every case ran in Workglow");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let graph = Graph::from_json(&case["json"].to_string(), name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (result, _) = common::run(&host, &graph, json!({})).await;
        assert_eq!(
            result.status,
            RunStatus::Succeeded,
            "{name}: {:?}",
            result.failures
        );
        let leaves = serde_json::to_value(result.leaf_outputs()).unwrap();
        if name == "conditional in conditionConfig form" {
            // Workglow 0.2.37 does not route this form (see cases.mjs):
            // what its config says is checked instead.
            assert_eq!(leaves, json!({"onbig": {"text": "big 5"}}), "{name}");
            for untaken in ["onsmall", "onelse"] {
                assert_eq!(result.nodes[untaken], weft::events::NodeStatus::Disabled);
            }
            continue;
        }
        let expected = &case["result"];
        let got = match name {
            // Workflow.run() gives its one leaf's output (the OutputTask's).
            "workflow with boundary nodes" => {
                leaves.as_object().unwrap().values().next().unwrap().clone()
            }
            // Workglow gives the bare array; a Weft node gives an object.
            "compound, graph result array" => json!({"grp": leaves["grp"]["results"]}),
            // Weft replaces a compound node by its subgraph: its one leaf
            // gives the result under its own id.
            "compound, one leaf" => json!({"grp": leaves["grp/g2"]}),
            _ => leaves,
        };
        assert_eq!(unordered(&got), unordered(expected), "{name}");
    }
}

#[test]
fn what_weft_does_not_support_is_named_with_its_node() {
    let error = |v: Value| {
        Graph::from_json(&v.to_string(), "wg.json")
            .unwrap_err()
            .to_string()
    };
    let e = error(
        json!({"tasks": [{"id": "m", "type": "MapTask", "defaults": {},
        "config": {"maxIterations": "unbounded", "preserveOrder": false}}]}),
    );
    assert!(
        e.contains("tasks[0] (node \"m\"): not supported: config key `preserveOrder`"),
        "{e}"
    );
    let e = error(
        json!({"tasks": [{"id": "a", "type": "math.add-one", "defaults": {},
        "config": {"title": "x", "timeout": -1}}]}),
    );
    assert!(
        e.contains("tasks[0] (node \"a\"): `timeout` must be a number of milliseconds"),
        "{e}"
    );
    // Weft's own keys keep their typos' errors.
    let e = error(
        json!({"tasks": [{"id": "a", "type": "math.add-one", "defaults": {},
        "config": {"title": "x", "timeout_mss": 5}}]}),
    );
    assert!(e.contains("unknown field `timeout_mss`"), "{e}");
    let e =
        error(json!([{"id": "b", "type": "math.add-one", "dependencies": {"value": {"id": "a"}}}]));
    assert!(
        e.contains("[0] (node \"b\"): dependency of port `value` needs `id` and `output`"),
        "{e}"
    );
}

/// Graphs `weft graph export --format workglow` writes, loaded and run by
/// Workglow's own `createGraphFromGraphJSON`, give Weft's results; read
/// back, they are the graphs they were.
#[tokio::test]
async fn exported_graphs_run_in_workglow_with_weft_results() {
    cases::workglow_cases(); // installs the package if needed
    let host = common::host(None).await;
    let graphs = [
        json!({"tasks": [
            {"id": "a", "type": "math.add-one", "defaults": {"value": 41},
             "config": {"timeout_ms": 5000, "retries": 3, "priority": 2, "title": "first"}},
            {"id": "show", "type": "text.template", "defaults": {"template": "got {{text}}"}}],
         "dataflows": [{"sourceTaskId": "a", "sourceTaskPortId": "value",
            "targetTaskId": "show", "targetTaskPortId": "text",
            "transforms": [{"id": "numberToString"}, {"id": "truncate", "params": {"max": 1}}]}]}),
        json!({"tasks": [
            {"id": "a", "type": "math.add-one", "defaults": {"value": 1}},
            {"id": "grp", "type": "graph", "graph": {"tasks": [
                {"id": "g1", "type": "math.add-one"}, {"id": "g2", "type": "math.add-one"}],
                "dataflows": [{"sourceTaskId": "g1", "sourceTaskPortId": "value",
                               "targetTaskId": "g2", "targetTaskPortId": "value"}]}},
            {"id": "last", "type": "math.add-one"}],
         "dataflows": [
            {"sourceTaskId": "a", "sourceTaskPortId": "value", "targetTaskId": "grp", "targetTaskPortId": "value"},
            {"sourceTaskId": "grp", "sourceTaskPortId": "value", "targetTaskId": "last", "targetTaskPortId": "value"}]}),
        json!({"tasks": [
            {"id": "div", "type": "math.divide", "defaults": {"a": 1, "b": 0}, "config": {"retries": 0}},
            {"id": "next", "type": "math.add-one"},
            {"id": "handle", "type": "text.template", "defaults": {"template": "{{errorType}}"}}],
         "dataflows": [
            {"sourceTaskId": "div", "sourceTaskPortId": "value", "targetTaskId": "next", "targetTaskPortId": "value"},
            {"sourceTaskId": "div", "sourceTaskPortId": "[error]", "targetTaskId": "handle", "targetTaskPortId": "*"}]}),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut weft_results = Vec::new();
    for (i, g) in graphs.iter().enumerate() {
        let graph = common::graph(g.clone());
        let (result, _) = common::run(&host, &graph, json!({})).await;
        assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
        weft_results.push(serde_json::to_value(result.leaf_outputs()).unwrap());
        let exported = weft::graph::workglow::from_weft(&graph).unwrap();
        // Read back, it is the same graph.
        assert_eq!(
            Graph::from_value(exported.clone(), "exported").unwrap(),
            graph
        );
        let file = dir.path().join(format!("g{i}.json"));
        std::fs::write(&file, exported.to_string()).unwrap();
        files.push(file);
    }
    let out = node(&["run.mjs"], &files);
    let theirs: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(theirs, weft_results);

    // A kind with no Workglow form is refused, naming the node.
    let map = common::graph(
        json!({"tasks": [{"id": "m", "type": "map", "config": {"task": "math.add-one"}}]}),
    );
    let e = weft::graph::workglow::from_weft(&map).unwrap_err();
    assert!(
        e.contains("tasks[0] (node \"m\"): a `map` node has no Workglow form"),
        "{e}"
    );
}

/// Workglow's class names of Weft's standard tasks (same ports, same
/// behaviour) name those task types.
#[tokio::test]
async fn workglow_class_names_are_aliases_of_the_same_tasks() {
    let host = common::host(None).await;
    let graph = Graph::from_json(
        &json!({"tasks": [{"id": "s", "type": "TextSummaryTask", "defaults": {}}]}).to_string(),
        "wg.json",
    )
    .unwrap();
    let plan = host.plan(&graph, "wg.json").unwrap();
    assert_eq!(plan.nodes[0].task.id, "ai.text-summary");
    let listed = host.registry().get("ai.text-summary").unwrap().to_json();
    assert_eq!(listed["aliases"], json!(["TextSummaryTask"]));
}

/// Workglow's own `Scalar*Task` and `String*Task` classes (the npm
/// package) and Weft's tasks of the same class names, on the same inputs,
/// edge cases included, give the same outputs; where Workglow refuses an
/// input, so does Weft.
#[tokio::test]
async fn scalar_and_string_tasks_answer_as_workglows_own_classes() {
    let cases = json!([
        ["ScalarAddTask", {"a": 0.1, "b": 0.2}],
        ["ScalarAddTask", {"a": 2, "b": 3}],
        ["ScalarSubtractTask", {"a": 2, "b": 3.5}],
        ["ScalarMultiplyTask", {"a": 4, "b": 2.5}],
        ["ScalarDivideTask", {"a": 1, "b": 3}],
        ["ScalarDivideTask", {"a": 1, "b": 0}],
        ["ScalarSumTask", {"values": [0.1, 0.2, 0.3]}],
        ["ScalarSumTask", {"values": [1e16, 1, -1e16]}],
        ["ScalarSumTask", {"values": []}],
        ["ScalarMaxTask", {"values": [3, -1, 7.5]}],
        ["ScalarMinTask", {"values": [3, -1, 7.5]}],
        ["ScalarAbsTask", {"value": -4.25}],
        ["ScalarCeilTask", {"value": -1.5}],
        ["ScalarFloorTask", {"value": -1.5}],
        ["ScalarRoundTask", {"value": -2.5}],
        ["ScalarRoundTask", {"value": 2.5}],
        ["ScalarRoundTask", {"value": 0.49999999999999994}],
        ["ScalarTruncTask", {"value": -7.9}],
        ["StringConcatTask", {"a": "wa", "b": "rp", "c": "!"}],
        ["StringIncludesTask", {"text": "weft", "search": "ef"}],
        ["StringIncludesTask", {"text": "weft", "search": ""}],
        ["StringJoinTask", {"texts": ["a", "b", "c"], "separator": "-"}],
        ["StringJoinTask", {"texts": ["a", "b"]}],
        ["StringLengthTask", {"text": "día 🧵"}],
        ["StringLowerCaseTask", {"text": "ÉTÉ"}],
        ["StringUpperCaseTask", {"text": "straße"}],
        ["StringReplaceTask", {"text": "a.b.c", "search": ".", "replace": "/"}],
        ["StringSliceTask", {"text": "weft and warp", "start": 5, "end": 8}],
        ["StringSliceTask", {"text": "weft and warp", "start": -4}],
        ["StringSliceTask", {"text": "🧵x", "start": 2}],
        ["StringSliceTask", {"text": "abc", "start": 2, "end": 1}],
        ["StringTrimTask", {"text": "\u{feff}\t weft \n"}],
        ["StringTemplateTask", {"template": "{{a}} and {{b}}, {{a}}!", "values": {"a": "weft", "b": "warp"}}],
        ["StringTemplateTask", {"template": "{{n}} {{x}} {{big}} {{tiny}} {{ok}} {{none}}", "values": {"n": 3, "x": 0.5, "big": 1e21, "tiny": 1.5e-7, "ok": true, "none": null}}],
        ["StringTemplateTask", {"template": "[{{list}}] {{obj}} {{first}}", "values": {"list": [1, null, "x", [2, 3]], "obj": {"k": 1}, "first": "{{second}}", "second": "chained"}}],
    ]);
    side_by_side(cases, |ours, theirs| unordered(ours) == unordered(theirs)).await;
}

/// Run `cases` (`[[class, input], …]`) through Workglow's own classes (the
/// npm package) and through Weft's tasks of those class names: where
/// Workglow refuses an input, so must Weft; otherwise the outputs must be
/// `same`.
async fn side_by_side(cases: Value, same: fn(&Value, &Value) -> bool) {
    side_by_side_on(&common::host(None).await, cases, same).await;
}

/// As `side_by_side`, on `host`.
async fn side_by_side_on(host: &weft::Host, cases: Value, same: fn(&Value, &Value) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.json");
    std::fs::write(&file, cases.to_string()).unwrap();
    let out = node(&["--conditions=browser", "tasks_side_by_side.mjs"], &[file]);
    let theirs: Vec<Value> = serde_json::from_slice(&out).unwrap();

    for (case, theirs) in cases.as_array().unwrap().iter().zip(theirs) {
        let (class, input) = (case[0].as_str().unwrap(), &untyped(&case[1]));
        let g = common::graph(json!({"tasks": [{"id": "t", "type": class, "defaults": input}]}));
        let (result, _) = common::run(host, &g, json!({})).await;
        if theirs.get("error").is_some() {
            assert_ne!(
                result.status,
                RunStatus::Succeeded,
                "{class} {input}: Workglow refused it: {theirs}"
            );
            continue;
        }
        assert_eq!(
            result.status,
            RunStatus::Succeeded,
            "{class} {input}: {:?}",
            result.failures
        );
        assert!(
            same(&result.outputs["t"], &theirs),
            "{class} {input}: Weft {} vs Workglow {theirs}",
            result.outputs["t"]
        );
    }
}

/// `value` with each typed array the Workglow side is given (`{"$typed":
/// "Float64Array", "values": [...]}`) as the plain array Weft takes.
fn untyped(value: &Value) -> Value {
    match value {
        Value::Object(m) if m.contains_key("$typed") => m["values"].clone(),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), untyped(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(untyped).collect()),
        v => v.clone(),
    }
}

/// Numbers equal to 1 part in 10^6 (Workglow gives some vectors as
/// `Float32Array`s, which JSON writes as objects keyed "0", "1", …), the
/// same shape otherwise.
fn close(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Array(a), Value::Object(m)) => {
            let b: Vec<Value> = (0..m.len())
                .map(|i| m.get(&i.to_string()).cloned().unwrap_or(Value::Null))
                .collect();
            close(ours, &Value::Array(b)) && a.len() == m.len()
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| close(v, w)))
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0)
        }
        (a, b) => a == b,
    }
}

/// Workglow's own `Vector*Task` classes and Weft's tasks of the same class
/// names agree, refusals included (a division by zero, which Workglow
/// writes as `null`, is refused by Weft: tested in `standard_tasks.rs`).
#[tokio::test]
async fn vector_tasks_answer_as_workglows_own_classes() {
    let cases = json!([
        ["VectorSumTask", {"vectors": [[1, 2.5], [3, 4]]}],
        ["VectorSumTask", {"vectors": [[0.1, 1e16], [0.2, 1], [0.3, -1e16]]}],
        ["VectorSumTask", {"vectors": []}],
        ["VectorSumTask", {"vectors": [[1], [1, 2]]}],
        ["VectorSubtractTask", {"vectors": [[5, 5], [1, 2], [1, 1]]}],
        ["VectorSubtractTask", {"vectors": [[5, 5]]}],
        ["VectorMultiplyTask", {"vectors": [[2, 3], [4, 5]]}],
        ["VectorMultiplyTask", {"vectors": [[2, 3]]}],
        ["VectorDivideTask", {"vectors": [[1, 9], [2, 3], [0.5, 3]]}],
        ["VectorDivideTask", {"vectors": [[1, 9]]}],
        ["VectorScaleTask", {"vector": [1, -2, 0.1], "scalar": 1.5}],
        ["VectorNormalizeTask", {"vector": [3, 4]}],
        ["VectorNormalizeTask", {"vector": [0, 0]}],
        ["VectorDistanceTask", {"vectors": [[0, 0], [3, 4]]}],
        ["VectorDistanceTask", {"vectors": [[0, 0], [3, 4], [9, 9]]}],
        ["VectorDistanceTask", {"vectors": [[0, 0]]}],
        ["VectorDistanceTask", {"vectors": [[0, 0], [1]]}],
        ["VectorDotProductTask", {"vectors": [[1, 2, 3], [4, 5, 6]]}],
        ["VectorDotProductTask", {"vectors": [[1, 2], [4]]}],
    ]);
    side_by_side(cases, close).await;
}

/// Workglow's `RegexTask`, `TemplateTask`, `JsonPathTask` and
/// `DateFormatTask` and Weft's tasks of those class names agree. (Weft
/// formats dates in en-US only and refuses other locales: tested in
/// `standard_tasks.rs`.)
#[tokio::test]
async fn utility_tasks_answer_as_workglows_own_classes() {
    let cases = json!([
        ["RegexTask", {"value": "a1b22c333", "pattern": "\\d+", "flags": "g"}],
        ["RegexTask", {"value": "a1b22c333", "pattern": "([a-z])(\\d+)(x)?"}],
        ["RegexTask", {"value": "ABC", "pattern": "b", "flags": "i"}],
        ["RegexTask", {"value": "abc", "pattern": "z"}],
        ["RegexTask", {"value": "abc", "pattern": "z", "flags": "g"}],
        ["RegexTask", {"value": "one\ntwo", "pattern": "^t\\w+", "flags": "m"}],
        ["RegexTask", {"value": "abc", "pattern": "("}],
        ["RegexTask", {"value": "abc", "pattern": "a", "flags": "gg"}],
        ["TemplateTask", {"template": "Hi {{user.name}}, {{missing|nobody}} {{ n }} {{obj}} {{list}} {{list.1}} {{nil|-}}", "values": {"user": {"name": "Ann"}, "n": 2.5, "obj": {"a": 1}, "list": [1, "x"], "nil": null}}],
        ["TemplateTask", {"template": "{{a}} {{}} {{{b}}} {{c|x|y}}", "values": {"a": 1e21, "b": "B"}}],
        ["JsonPathTask", {"value": {"a": {"b": [{"n": 1}, {"n": 2}]}}, "path": "a.b.*.n"}],
        ["JsonPathTask", {"value": {"a": {"b": [{"n": 1}, {"n": 2}]}}, "path": "a.b.1.n"}],
        ["JsonPathTask", {"value": {"a": 1}, "path": "a.x.y"}],
        ["JsonPathTask", {"value": {"a": {"x": [1, 2], "y": [3]}}, "path": "a.*"}],
        ["JsonPathTask", {"value": {"a": {"x": {"k": [1, 2]}, "y": {"k": 3}, "z": {}}}, "path": "a.*.k"}],
        ["JsonPathTask", {"value": [[1, 2], [3]], "path": "*.0"}],
        ["DateFormatTask", {"value": "2026-12-03T21:05:03.250Z"}],
        ["DateFormatTask", {"value": "2026-12-03T21:05:03.1239Z"}],
        ["DateFormatTask", {"value": "1764795903250", "format": "unix"}],
        ["DateFormatTask", {"value": "1764795903250"}],
        ["DateFormatTask", {"value": "2026-12-03T21:05:03Z", "format": "date"}],
        ["DateFormatTask", {"value": "2026-12-03T21:05:03Z", "format": "time"}],
        ["DateFormatTask", {"value": "2026-12-03T00:30:00Z", "format": "time"}],
        ["DateFormatTask", {"value": "2026-12-03T12:00:00Z", "format": "datetime"}],
        ["DateFormatTask", {"value": "2026-12-03T09:05:03+02:00", "format": "datetime", "timeZone": "America/New_York"}],
        ["DateFormatTask", {"value": "2026-07-03T00:05:03Z", "format": "datetime", "timeZone": "Europe/Paris"}],
        ["DateFormatTask", {"value": "2026-12-03T00:05:03Z", "format": "time", "timeZone": "Asia/Tokyo"}],
        ["DateFormatTask", {"value": "2026-12-03"}],
        ["DateFormatTask", {"value": "2026-12-03T10:00"}],
        ["DateFormatTask", {"value": "not a date"}],
        ["DateFormatTask", {"value": "2026-12-03", "format": "date", "timeZone": "Not/AZone"}],
    ]);
    side_by_side(cases, |ours, theirs| ours == theirs).await;
}

/// Workglow's `TextChunkerTask` (`@workglow/ai`) and `rag.text-chunker`
/// split the same texts into the same chunks, at the same positions.
#[tokio::test]
async fn the_text_chunker_splits_as_workglows_own_class() {
    let prose = "One two three. Four five six! Seven eight nine?  Ten... Eleven.twelve 3.14 is pi.\n\
                 New line here!\tTabbed. Last one";
    let paras = "Para one line.\n\nPara two is here, a bit longer.\n \n\nThree.\n\n\n  \n\
                 Four is the last paragraph of all.\n";
    let mut cases = Vec::new();
    for (size, overlap) in [(20, 5), (20, 0), (35, 12), (7, 7), (500, 50), (1, 0)] {
        for strategy in ["fixed", "sentence", "paragraph", "semantic"] {
            for text in [prose, paras, "", "   ", "no breaks at all"] {
                cases.push(json!(["TextChunkerTask", {
                    "text": text, "chunkSize": size, "chunkOverlap": overlap, "strategy": strategy
                }]));
            }
        }
    }
    cases.push(json!(["TextChunkerTask", {"text": prose, "doc_id": "doc-7", "chunkSize": 30}]));
    cases.push(json!(["TextChunkerTask", {"text": "día 🧵 and more text here", "chunkSize": 6, "chunkOverlap": 2}]));
    side_by_side(Value::Array(cases), |ours, theirs| ours == theirs).await;
}

/// Workglow's `ContextBuilderTask`, `QueryExpanderTask` (`@workglow/ai`)
/// and `rag.context-builder`, `rag.query-expander` give the same contexts
/// and queries.
#[tokio::test]
async fn context_builder_and_query_expander_answer_as_workglows_own_classes() {
    let chunks = json!([
        "Weft runs <tasks> & graphs.",
        "Second chunk, 'quoted'.",
        "Third: día 🧵 done."
    ]);
    let metadata = json!([{"source": "a.md", "page": 3, "tags": ["x", "y"]}, {"nested": {"k": 1}, "ok": true}]);
    let scores = json!([0.91234, 0.03125, 0.5]);
    let mut cases = Vec::new();
    for format in ["simple", "numbered", "xml", "markdown", "json"] {
        for include in [false, true] {
            cases.push(json!(["ContextBuilderTask", {
                "chunks": chunks, "metadata": metadata, "scores": scores,
                "format": format, "includeMetadata": include
            }]));
            cases.push(json!(["ContextBuilderTask", {"chunks": chunks, "format": format, "includeMetadata": include, "scores": [1]}]));
        }
        for (length, tokens) in [
            (60, 0),
            (30, 0),
            (12, 0),
            (5, 0),
            (0, 10),
            (0, 3),
            (0, 2),
            (40, 20),
        ] {
            cases.push(json!(["ContextBuilderTask", {
                "chunks": chunks, "format": format, "maxLength": length, "maxTokens": tokens,
                "separator": " | "
            }]));
        }
    }
    cases.push(json!(["ContextBuilderTask", {"chunks": []}]));
    cases.push(json!(["ContextBuilderTask", {"chunks": ["🧵🧵🧵🧵🧵🧵🧵🧵"], "maxLength": 11}]));
    for query in [
        "What is Weft",
        "what is weft",
        "WHAT is weft",
        "How do I find the problem",
        "Why run wasm",
        "where are the logs",
        "Tell me about graphs",
        "Explain the method",
        "help me create and delete a solution",
        "  find  me",
        "Straße find",
        "ßtraße find",
        "find",
        "",
        "whatever",
    ] {
        for n in [1, 2, 3, 5, 10] {
            for method in ["multi-query", "synonyms"] {
                cases.push(json!(["QueryExpanderTask", {"query": query, "numVariations": n, "method": method}]));
            }
        }
    }
    cases.push(json!(["QueryExpanderTask", {"query": "What is it", "numVariations": 2.5}]));
    side_by_side(Value::Array(cases), |ours, theirs| ours == theirs).await;
}

/// Workglow's `RerankerTask` (`@workglow/ai`) and `rag.reranker` reorder
/// chunks alike (scores to 1 part in 10^6: `Math.log` and Rust's `ln` may
/// differ in the last bit).
#[tokio::test]
async fn the_reranker_answers_as_workglows_own_class() {
    let chunks = json!([
        "Bananas are rich in potassium.",
        "Weft threads run across the WARP on a loom; weft, weft.",
        "The loom was invented to weave cloth.",
        "Σίσυφος ΣΟΦΟΣ σοφός ſ straße",
        "weft threads"
    ]);
    let metadata = json!([{"n": 0}, {"n": 1}, {"n": 2}]);
    let mut cases = Vec::new();
    for query in [
        "weft threads",
        "Weft",
        "LOOM cloth",
        "",
        "   ",
        "σοφος ς",
        "ß s",
        "(a+)*",
    ] {
        for method in ["simple", "reciprocal-rank-fusion"] {
            cases.push(
                json!(["RerankerTask", {"query": query, "chunks": chunks, "method": method}]),
            );
            cases.push(json!(["RerankerTask", {
                "query": query, "chunks": chunks, "method": method,
                "scores": [0.2, 0.9, 0.85], "metadata": metadata, "topK": 3
            }]));
        }
    }
    cases.push(json!(["RerankerTask", {"query": "weft", "chunks": chunks, "topK": 2.5}]));
    cases.push(json!(["RerankerTask", {"query": "weft", "chunks": []}]));
    side_by_side(Value::Array(cases), close).await;
}

/// Workglow's `TopicSegmenterTask` (`@workglow/ai`) and
/// `rag.topic-segmenter` cut the same texts into the same segments.
#[tokio::test]
async fn the_topic_segmenter_answers_as_workglows_own_class() {
    let para = |words: &str, n: usize| vec![words; n].join(" ");
    let text = [
        para("Looms weave weft threads across the warp.", 3),
        para(
            "However, bananas are rich in potassium and grow in bunches.",
            2,
        ),
        "Short one.".to_string(),
        para(
            "1. Markets closed higher on Friday after a quiet week of trading.",
            2,
        ),
        para(
            "Finally the loom and the weft and the warp again, with threads.",
            4,
        ),
        "  \r\n  tail with día 🧵 and ＫELVIN  ".to_string(),
    ];
    let mut cases = Vec::new();
    for separator in ["\n\n", "\n \n\n  ", "\r\n\r\n", "\n"] {
        let joined = format!("  {}\n", text.join(separator));
        for method in ["heuristic", "embedding-similarity", "hybrid"] {
            for (min, max, threshold) in [
                (100, 2000, 0.5),
                (50, 100, 0.5),
                (50, 300, 0.1),
                (200, 250, 0.9),
            ] {
                cases.push(json!(["TopicSegmenterTask", {
                    "text": joined, "method": method, "minSegmentSize": min,
                    "maxSegmentSize": max, "similarityThreshold": threshold
                }]));
            }
        }
    }
    cases.push(json!(["TopicSegmenterTask", {"text": ""}]));
    cases.push(json!(["TopicSegmenterTask", {"text": "\n\n \n"}]));
    cases.push(
        json!(["TopicSegmenterTask", {"text": "Thus one.\n\nThus two.", "minSegmentSize": 50}]),
    );
    side_by_side(Value::Array(cases), |ours, theirs| ours == theirs).await;
}

/// Workglow's `VectorQuantizeTask` (given `Float64Array`s, as JSON has no
/// typed arrays) and `vector.quantize` give the same numbers. (Workglow's
/// `float16` gives zeros on Node 20, which lacks `Float16Array`; tested
/// in `standard_tasks.rs`.)
#[tokio::test]
async fn vector_quantize_answers_as_workglows_own_class() {
    let f64s = |values: Value| json!({"$typed": "Float64Array", "values": values});
    let mut cases = Vec::new();
    for target in ["int8", "uint8", "int16", "uint16", "float32", "float64"] {
        for normalize in [true, false] {
            for v in [
                json!([0.5, -0.25, 1]),
                json!([3, 4]),
                json!([0, 0]),
                json!([-2.5, 7, 0.001]),
                json!([]),
            ] {
                cases.push(json!(["VectorQuantizeTask", {"vector": f64s(v.clone()), "targetType": target, "normalize": normalize}]));
            }
            cases.push(json!(["VectorQuantizeTask", {
                "vector": [f64s(json!([0.1, 0.2])), f64s(json!([5, -5]))], "targetType": target, "normalize": normalize
            }]));
        }
    }
    side_by_side(Value::Array(cases), |ours, theirs| ours == theirs).await;
}

/// `value` without the keys named `key`, at any depth: for comparing
/// outputs whose ids Workglow makes at random.
fn without(value: &Value, key: &str) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| *k != key)
                .map(|(k, v)| (k.clone(), without(v, key)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| without(v, key)).collect()),
        other => other.clone(),
    }
}

/// Markdown and plain documents for the structural parser and the
/// hierarchical chunker: nested and skipped heading levels, seven `#`,
/// `#` with no space, CRLF lines, blank lines, text before the first
/// heading, non-ASCII and astral characters.
fn documents() -> Vec<String> {
    let long = |words: &str, n: usize| vec![words; n].join(" ");
    vec![
        format!(
            "Preface line.\n\n# Looms\n{}\n\n## Warp\n{}\n### Deep\nshort\n## Weft\n{}\n# Fruit\n{}\n",
            long("Looms weave weft threads across the warp, día after día.", 12),
            long("The warp runs lengthwise and is held in tension.", 20),
            long("ＫELVIN weft is the crosswise thread.", 30),
            long("Bananas are rich in potassium and grow in bunches.", 8),
        ),
        "#### Skipped to four\ntext\n# Back to one\n###### six\n####### seven is text\n#no space\n#\ttab heading\n".to_string(),
        "# Title\r\nbody\r\n\r\n## Sub\r\nmore 🧵 here\r\n".to_string(),
        format!(
            "  First paragraph 🧵.\n\n\n  Second one\nstill second.\n \n\t\nThird {}\n\n",
            long("with many words in it", 40)
        ),
        "# Only a heading".to_string(),
        "#\n# \nx".to_string(),
        String::new(),
        "\n\n  \n".to_string(),
    ]
}

/// Workglow's `StructuralParserTask` (`@workglow/ai`) and
/// `rag.structural-parser` parse the same documents into the same trees
/// (ids aside: Workglow's are random, Weft's derived).
#[tokio::test]
async fn the_structural_parser_answers_as_workglows_own_class() {
    let mut cases = Vec::new();
    for (n, text) in documents().into_iter().enumerate() {
        for format in ["auto", "markdown", "text"] {
            cases.push(json!(["StructuralParserTask", {
                "text": text, "title": format!("Doc {n}"), "format": format, "doc_id": format!("d{n}")
            }]));
        }
        cases.push(json!(["StructuralParserTask", {"text": text, "title": "T", "sourceUri": "file:///a.md"}]));
        cases.push(json!(["StructuralParserTask", {"text": text, "title": "T", "doc_id": "", "sourceUri": "s"}]));
    }
    side_by_side(Value::Array(cases), |ours, theirs| {
        without(ours, "nodeId") == without(theirs, "nodeId")
    })
    .await;
}

/// Workglow's `HierarchicalChunkerTask` and `rag.hierarchical-chunker`
/// cut the same document trees (made by `rag.structural-parser`) into the
/// same chunks, at budgets that keep paragraphs whole, split them, drop
/// the section-title prefix, and refuse (chunk ids aside: Workglow's are
/// random).
#[tokio::test]
async fn the_hierarchical_chunker_answers_as_workglows_own_class() {
    let host = common::host(None).await;
    let mut cases = Vec::new();
    for (n, text) in documents().into_iter().enumerate() {
        let g = common::graph(json!({"tasks": [{"id": "p", "type": "StructuralParserTask",
            "defaults": {"text": text, "title": format!("Doc {n}"), "doc_id": format!("d{n}")}}]}));
        let (parsed, _) = common::run(&host, &g, json!({})).await;
        let tree = &parsed.outputs["p"]["documentTree"];
        assert!(tree.is_object(), "{:?}", parsed.failures);
        for strategy in ["hierarchical", "flat", "sentence"] {
            for (max, overlap, reserved) in [
                (512, 50, 10),
                (50, 0, 0),
                (60, 20, 10),
                (50, 39, 10),
                (100, 5, 90),
            ] {
                cases.push(json!(["HierarchicalChunkerTask", {
                    "doc_id": format!("d{n}"), "documentTree": tree, "maxTokens": max,
                    "overlap": overlap, "reservedTokens": reserved, "strategy": strategy
                }]));
            }
        }
    }
    let tree = json!({"nodeId": "r", "kind": "document", "children": []});
    cases.push(json!(["HierarchicalChunkerTask", {"doc_id": "x", "documentTree": tree, "reservedTokens": 600}]));
    cases.push(json!(["HierarchicalChunkerTask", {"doc_id": "", "documentTree": tree}]));
    side_by_side(Value::Array(cases), |ours, theirs| {
        without(ours, "chunkId") == without(theirs, "chunkId")
    })
    .await;
}

const TABLE_CSV: &str =
    "name, age ,city\nAda,36,London\n\n\"Babbage, C\",79,\"London\"\nLove,1\nX,1,2,3\n";
const SEMI_CSV: &str = "a;b\n1;2\n3;4\n";

/// Files for `FileLoaderTask`, on a loopback port served by a runtime of
/// its own (the test's thread waits for node meanwhile): the base URL.
fn file_server() -> String {
    use axum::http::header::CONTENT_TYPE;
    let markdown = "---\ntitle: \"Looms\"\nauthor: Ada\ntags:\n  - weaving\n  - 'cloth'\n\
                    meta:\n  year: 1843\n  ratio: 1.5\n  draft: false\nlist: [a, 2, true]\n\
                    empty:\nblock: |\n# a comment\n---\n\n# Looms\nWarp and weft.\n";
    let files: Vec<(&str, &str, Vec<u8>)> = vec![
        ("/notes.md", "text/markdown", markdown.into()),
        (
            "/data.json",
            "application/json",
            br#"{"a": [1, 2.5, "x"], "b": {"c": null}}"#.to_vec(),
        ),
        (
            "/table.csv",
            "text/csv",
            b"name, age ,city\nAda,36,London\n\n\"Babbage, C\",79,\"London\"\nLove,1\nX,1,2,3\n"
                .to_vec(),
        ),
        ("/semi.csv", "text/csv", b"a;b\n1;2\n3;4\n".to_vec()),
        (
            "/pic.png",
            "image/png",
            vec![137, 80, 78, 71, 13, 10, 26, 10, 0, 255],
        ),
        ("/doc.pdf", "application/pdf", b"%PDF-1.4 not much".to_vec()),
        ("/page.html", "text/html", b"<p>Hello</p>".to_vec()),
        ("/plain", "text/plain", "caf\u{e9} \u{1f9f6}".into()),
    ];
    let mut app = axum::Router::new();
    for (path, mime, body) in files {
        let handler = move || async move { ([(CONTENT_TYPE, mime)], body) };
        app = app.route(path, axum::routing::get(handler));
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    base
}

/// Workglow's own `FileLoaderTask` and Weft's `net.file-loader` load the
/// same files from a loopback server alike: Markdown's front matter by its
/// YAML subset, JSON, an image and a PDF as `data:` URLs, HTML and text, a
/// format given over the URL's ending; both refuse a 404. CSV rows (quoted
/// fields, a short row, an extra field, a `;` file) are as Papa Parse's own
/// with Workglow's options (Workglow's class cannot load Papa Parse in Node:
/// "parse is not a function").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_loader_loads_as_workglows_own_class() {
    let base = file_server();
    let host = common::builder(None)
        .fetch_origins(vec![base.clone()])
        .build()
        .await
        .unwrap();
    let load = |path: &str, format: Option<&str>| {
        let mut input = json!({"url": format!("{base}{path}")});
        if let Some(format) = format {
            input["format"] = json!(format);
        }
        json!(["FileLoaderTask", input])
    };
    let cases = json!([
        load("/notes.md", None),
        load("/data.json", None),
        load("/pic.png", None),
        load("/doc.pdf", None),
        load("/page.html", None),
        load("/plain", None),
        load("/notes.md", Some("text")),
        load("/data.json", Some("markdown")),
        load("/missing.txt", None),
    ]);
    side_by_side_on(&host, cases, |a, b| unordered(a) == unordered(b)).await;

    let dir = tempfile::tempdir().unwrap();
    for (path, text) in [("/table.csv", TABLE_CSV), ("/semi.csv", SEMI_CSV)] {
        let file = dir.path().join("table.csv");
        std::fs::write(&file, text).unwrap();
        let script = "const Papa = require('papaparse'); \
            const text = require('fs').readFileSync(process.argv[1], 'utf8'); \
            const options = {header: true, skipEmptyLines: true, transformHeader: h => h.trim()}; \
            console.log(JSON.stringify(Papa.parse(text, options).data));";
        let theirs = node(&["-e", script], &[file]);
        let theirs: Value = serde_json::from_slice(&theirs).unwrap();
        let g = common::graph(json!({"tasks": [{"id": "t", "type": "FileLoaderTask",
            "defaults": {"url": format!("{base}{path}")}}]}));
        let (result, _) = common::run(&host, &g, json!({})).await;
        assert_eq!(
            result.outputs["t"]["csv"], theirs,
            "{path}: {:?}",
            result.failures
        );
        assert_eq!(result.outputs["t"]["metadata"]["mimeType"], "text/csv");
    }
}

/// The SVG Workglow's Node renderer (`buildTextSvg` of `@workglow/tasks`
/// 0.2.37) writes for `ImageTextTask`, rasterised by the sharp (librsvg)
/// Workglow uses: its alpha channel. Workglow's class itself needs Node 22.
fn workglow_text_alpha(
    w: u32,
    h: u32,
    text: &str,
    font: &str,
    size: u32,
    bold: bool,
    position: &str,
) -> Vec<u8> {
    let (row, col) = position.split_once('-').unwrap();
    let line_height = size as f64 * 1.25;
    let block = text.lines().count() as f64 * line_height;
    let (anchor, x) = match col {
        "left" => ("start", 2.0),
        "center" => ("middle", w as f64 / 2.0),
        _ => ("end", w as f64 - 2.0),
    };
    let y = match row {
        "top" => 2.0,
        "middle" => (h as f64 - block) / 2.0,
        _ => h as f64 - 2.0 - block,
    };
    let spans: String = text
        .lines()
        .enumerate()
        .map(|(i, line)| match i {
            0 => format!(r#"<tspan x="{x}" y="{y}">{line}</tspan>"#),
            _ => format!(r#"<tspan x="{x}" dy="{line_height}">{line}</tspan>"#),
        })
        .collect();
    let weight = if bold { "bold" } else { "normal" };
    let svg = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"><text xml:space="preserve" font-family="{font}" font-size="{size}" font-weight="{weight}" font-style="normal" fill="rgba(255,0,0,1)" text-anchor="{anchor}" dominant-baseline="hanging">{spans}</text></svg>"#
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("text.svg");
    std::fs::write(&file, svg).unwrap();
    let script = "require('sharp')(process.argv[1]).ensureAlpha().raw().toBuffer() \
        .then(d => process.stdout.write(Buffer.from(d.filter((_, i) => i % 4 == 3))))";
    node(&["-e", script], &[file])
}

/// The box around the pixels with at least half their alpha, and the sum
/// of all alpha (how much ink).
fn ink(alpha: &[u8], w: usize) -> ([usize; 4], u64) {
    let mut b = [usize::MAX, usize::MAX, 0, 0];
    for (i, &a) in alpha.iter().enumerate() {
        if a >= 128 {
            let (x, y) = (i % w, i / w);
            b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
        }
    }
    (b, alpha.iter().map(|&a| u64::from(a)).sum())
}

/// `ImageTextTask` draws where Workglow's renderer draws, as much: each
/// anchor row and column, three families, bold, two lines. The rasterisers
/// differ (ab_glyph and librsvg, the same DejaVu faces), so the ink's box
/// may differ by 1 px at each side and its amount by 5%.
#[tokio::test]
async fn image_text_draws_where_workglows_renderer_draws() {
    use base64::Engine;
    let host = common::host(None).await;
    let cases = [
        (200, 60, "Hello", "sans-serif", 24, false, "top-left"),
        (240, 120, "Weft\nruns", "serif", 30, true, "middle-center"),
        (160, 50, "mono 42", "monospace", 20, false, "bottom-right"),
        (
            300,
            80,
            "Kerning AV",
            "Arial, sans-serif",
            28,
            true,
            "middle-left",
        ),
    ];
    for (w, h, text, font, size, bold, position) in cases {
        let theirs = workglow_text_alpha(w, h, text, font, size, bold, position);
        let g = common::graph(json!({"tasks": [{"id": "t", "type": "ImageTextTask",
            "defaults": {"text": text, "font": font, "fontSize": size, "bold": bold,
                         "color": "#ff0000", "position": position, "width": w, "height": h}}]}));
        let (result, _) = common::run(&host, &g, json!({})).await;
        let uri = result.outputs["t"]["image"].as_str().unwrap_or_else(|| {
            panic!("{text}: {:?}", result.failures);
        });
        let png = base64::engine::general_purpose::STANDARD
            .decode(uri.strip_prefix("data:image/png;base64,").unwrap())
            .unwrap();
        let ours = image::load_from_memory(&png).unwrap().into_rgba8();
        assert_eq!(ours.dimensions(), (w, h));
        assert!(
            ours.pixels()
                .all(|p| p.0[3] == 0 || p.0[..3] == [255, 0, 0])
        );
        let ours: Vec<u8> = ours.pixels().map(|p| p.0[3]).collect();
        let ((ob, oi), (tb, ti)) = (ink(&ours, w as usize), ink(&theirs, w as usize));
        let off = ob
            .iter()
            .zip(&tb)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(
            off <= 1,
            "{text:?} {position}: ink box {ob:?}, Workglow's {tb:?}"
        );
        let ratio = oi as f64 / ti as f64;
        assert!(
            (0.95..=1.05).contains(&ratio),
            "{text:?}: ink {oi} against {ti}"
        );
    }
}
