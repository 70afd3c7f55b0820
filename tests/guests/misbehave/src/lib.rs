//! A test guest whose tasks misbehave on purpose: each must fail only its own
//! task, with a clear error, and leave the host and the rest of the graph alone.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, TaskDef, TaskError, Value, json};

#[derive(Deserialize, JsonSchema)]
struct In {
    /// Ignored by most tasks; `huge-output` reads it as the size in bytes.
    #[serde(default)]
    n: u64,
}

#[derive(Serialize, JsonSchema)]
struct Out {
    value: u64,
}

fn trap(_: In, _: &Context) -> Result<Out, TaskError> {
    // An `unreachable` instruction: the guest traps.
    std::process::abort()
}

fn panic(_: In, _: &Context) -> Result<Out, TaskError> {
    panic!("this task panics on purpose")
}

fn spin(_: In, _: &Context) -> Result<Out, TaskError> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn memory_bomb(_: In, _: &Context) -> Result<Out, TaskError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        block[0] = 1;
        hoard.push(std::hint::black_box(block));
    }
}

fn huge_output(input: In, _: &Context) -> Result<Value, TaskError> {
    Ok(json!({ "value": "x".repeat(input.n as usize) }))
}

fn stack_overflow(input: In, _: &Context) -> Result<Out, TaskError> {
    // Recursion whose result is used after each call: no loop can replace
    // it, so the wasm call stack runs out.
    fn deep(n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let below = deep(n - 1);
        std::hint::black_box(below) ^ n
    }
    Ok(Out {
        value: deep(input.n.max(u64::MAX / 2)),
    })
}

fn log_flood(input: In, ctx: &Context) -> Result<Out, TaskError> {
    // `n` lines of 10 KiB and as many progress reports, then a huge error.
    let line = "x".repeat(10 << 10);
    for i in 0..input.n {
        ctx.log(weft_sdk::Level::Info, &line);
        ctx.progress((i % 100) as f32 / 100.0, Some(&line));
    }
    Err(TaskError::failed("e".repeat(1 << 20)))
}

fn wrong_output(_: In, _: &Context) -> Result<Value, TaskError> {
    Ok(json!({ "value": "not a number" }))
}

fn fail(_: In, _: &Context) -> Result<Out, TaskError> {
    Err(TaskError::failed("this task fails on purpose"))
}

fn flaky(input: In, ctx: &Context) -> Result<Out, TaskError> {
    // The first attempt asks to be retried after `n` ms; later ones succeed.
    if ctx.attempt == 1 {
        return Err(TaskError::retryable("not yet", Some(input.n)));
    }
    Ok(Out {
        value: ctx.attempt as u64,
    })
}

fn echo_context(_: In, ctx: &Context) -> Result<Value, TaskError> {
    Ok(json!({
        "run_id": ctx.run_id, "node_id": ctx.node_id,
        "attempt": ctx.attempt, "idempotency_key": ctx.idempotency_key,
    }))
}

fn read_env(_: In, _: &Context) -> Result<Value, TaskError> {
    let vars: serde_json::Map<String, Value> = std::env::vars()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(json!({ "vars": vars }))
}

fn list_dir(_: In, _: &Context) -> Result<Value, TaskError> {
    let names: Vec<String> = match std::fs::read_dir("/data") {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => return Err(TaskError::failed(format!("cannot read /data: {e}"))),
    };
    Ok(json!({ "names": names }))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Connect {
    /// `ip:port` to connect to over TCP.
    addr: String,
}

/// Connects to `addr` and returns what the server sends before closing.
fn connect(input: Connect, _: &Context) -> Result<Value, TaskError> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(&input.addr)
        .map_err(|e| TaskError::failed(format!("cannot connect to {}: {e}", input.addr)))?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| TaskError::failed(format!("cannot read from {}: {e}", input.addr)))?;
    Ok(json!({ "text": text }))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct ModelCalls {
    model: String,
    calls: u32,
}

/// Calls `embed` `calls` times; reports how many succeeded and each error.
fn call_models(input: ModelCalls, _: &Context) -> Result<Value, TaskError> {
    let mut ok = 0;
    let mut errors = Vec::new();
    for i in 0..input.calls {
        match weft_sdk::models::embed(&input.model, &[format!("text {i}")]) {
            Ok(_) => ok += 1,
            Err(e) => errors.push(format!("{e:?}")),
        }
    }
    Ok(json!({ "ok": ok, "errors": errors }))
}

fn value_out() -> Value {
    json!({ "type": "object", "properties": { "value": { "type": "integer" } }, "required": ["value"] })
}

fn tasks() -> Vec<TaskDef> {
    let any = json!({ "type": "object", "additionalProperties": true });
    vec![
        TaskDef::new("bad.trap", trap),
        TaskDef::new("bad.panic", panic),
        TaskDef::new("bad.spin", spin),
        TaskDef::new("bad.memory-bomb", memory_bomb),
        TaskDef::new("bad.huge-output", huge_output).output_schema(any.clone()),
        TaskDef::raw("bad.bad-json", any.clone(), any.clone(), |_, _| {
            Ok("{\"value\": tru".into())
        }),
        TaskDef::new("bad.wrong-output", wrong_output).output_schema(value_out()),
        TaskDef::new("bad.fail", fail),
        TaskDef::new("bad.log-flood", log_flood),
        TaskDef::new("bad.stack-overflow", stack_overflow),
        TaskDef::new("bad.flaky", flaky),
        TaskDef::new("probe.context", echo_context).output_schema(any.clone()),
        TaskDef::new("probe.env", read_env).output_schema(any.clone()),
        TaskDef::new("probe.list-dir", list_dir).output_schema(any.clone()),
        TaskDef::new("probe.connect", connect)
            .output_schema(any.clone())
            .not_cacheable(),
        TaskDef::new("probe.models", call_models)
            .output_schema(any)
            .not_cacheable(),
    ]
}

weft_sdk::export_plugin!(tasks);
