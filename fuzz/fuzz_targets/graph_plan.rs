//! Graph JSON as a graph author writes it, then validation into a plan and
//! the run's input check: refused with errors or planned, never a panic,
//! never unbounded time or memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use weft_core::graph::{Graph, Plan};
use weft_core::task::{NativeTask, Registry};

fn registry() -> Registry {
    let mut reg = Registry::new();
    let mut num = NativeTask::new("t.num", |v, _| async move { Ok(v) });
    num.input_schema = json!({"type": "object", "properties": {"value": {"type": "number"}},
                              "required": ["value"], "additionalProperties": false});
    num.output_schema = num.input_schema.clone();
    reg.register_native(num).expect("valid task");
    reg.register_native(NativeTask::new("t.any", |v, _| async move { Ok(v) }))
        .expect("valid task");
    reg
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The graph, then (after a NUL) the run's input.
    let (graph, input) = text.split_once('\0').unwrap_or((text, "{}"));
    let Ok(graph) = Graph::from_json(graph, "fuzz.json") else { return };
    let registry = registry();
    if let Ok(plan) = Plan::new(&graph, &registry, "fuzz.json")
        && let Ok(input) = serde_json::from_str(input)
    {
        let _ = plan.check_input(&input);
    }
});
