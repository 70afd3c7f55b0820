//! Properties over generated input: validating any graph JSON never panics
//! (it is refused with located errors or planned), and the output cache key
//! does not depend on how the same input is written.

use proptest::prelude::*;
use serde_json::{Value, json};

use weft_core::graph::{Graph, Plan};
use weft_core::task::{NativeTask, Registry};

/// Task types with typed, string and open ports.
fn registry() -> Registry {
    let mut reg = Registry::new();
    let mut num = NativeTask::new("t.num", |v, _| async move { Ok(v) });
    num.input_schema = json!({"type": "object", "properties": {"value": {"type": "number"}},
                              "required": ["value"], "additionalProperties": false});
    num.output_schema = num.input_schema.clone();
    let mut text = NativeTask::new("t.str", |v, _| async move { Ok(v) });
    text.input_schema = json!({"type": "object", "properties": {"text": {"type": "string"}}});
    reg.register_native(num).unwrap();
    reg.register_native(text).unwrap();
    reg.register_native(NativeTask::new("t.any", |v, _| async move { Ok(v) }))
        .unwrap();
    reg
}

/// Small JSON values: scalars, short arrays and objects.
fn small_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        // Integers a float holds exactly (beyond 2^53, `Ne0` is another number).
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-z ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,3}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Graph-shaped JSON, often wrong: ids and ports from small sets (so
/// duplicates, cycles and dangling dataflows happen), unknown types, odd
/// config, compound nodes nested inside each other.
fn graph_json() -> impl Strategy<Value = Value> {
    let id = prop::sample::select(vec!["a", "b", "c", "d", "", "a.b", "in"]);
    let port = prop::sample::select(vec!["value", "text", "x", "*", "[error]", ""]);
    let flow = (id.clone(), port.clone(), id.clone(), port).prop_map(|(s, sp, t, tp)| {
        json!({"sourceTaskId": s, "sourceTaskPortId": sp, "targetTaskId": t, "targetTaskPortId": tp})
    });
    let ty = prop::sample::select(vec!["t.num", "t.str", "t.any", "graph", "nope", ""]);
    let config = prop_oneof![
        Just(json!({})),
        Just(json!({"timeout_ms": 0})),
        Just(json!({"retries": 4_000_000_000u64})),
        Just(json!({"queue": "q"})),
        small_json().prop_map(|v| json!({"cache": v})),
    ];
    let leaf_node = (id.clone(), ty, small_json(), config).prop_map(|(id, ty, defaults, config)| {
        json!({"id": id, "type": ty, "defaults": defaults, "config": config})
    })
    .boxed();
    let flows = prop::collection::vec(flow, 0..6).boxed();
    let flat = (
        prop::collection::vec(leaf_node.clone(), 0..6),
        flows.clone(),
    )
        .prop_map(|(tasks, dataflows)| json!({"tasks": tasks, "dataflows": dataflows}));
    flat.prop_recursive(3, 40, 4, move |inner| {
        let compound = (id.clone(), inner)
            .prop_map(|(id, sub)| json!({"id": id, "type": "graph", "graph": sub}));
        let node = prop_oneof![leaf_node.clone(), compound];
        (prop::collection::vec(node, 0..5), flows.clone())
            .prop_map(|(tasks, dataflows)| json!({"tasks": tasks, "dataflows": dataflows}))
    })
}

/// `v` as JSON text, keys in reverse order and integers spelled `Ne0`.
fn respelled(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .rev()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), respelled(v)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(respelled).collect();
            format!("[{}]", items.join(","))
        }
        Value::Number(n) if n.is_i64() || n.is_u64() => format!("{n}e0"),
        other => other.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn validating_any_graph_never_panics(graph in graph_json(), input in small_json()) {
        let registry = registry();
        if let Ok(graph) = Graph::from_json(&graph.to_string(), "generated.json")
            && let Ok(plan) = Plan::new(&graph, &registry, "generated.json", &Default::default())
        {
            let _ = plan.check_input(&input);
        }
    }

    #[test]
    fn the_cache_key_does_not_depend_on_spelling(input in small_json()) {
        let registry = registry();
        let task = registry.get("t.any").unwrap();
        let written: Value = serde_json::from_str(&input.to_string()).unwrap();
        let respelled: Value = serde_json::from_str(&respelled(&input)).unwrap();
        prop_assert_eq!(
            weft_core::cache::key(task, &written, None),
            weft_core::cache::key(task, &respelled, None)
        );
    }
}
