//! Standard tasks: utilities for building and debugging pipelines (`util.*`).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, Level, TaskDef, TaskError, Value};

#[derive(Deserialize, JsonSchema)]
struct DelayIn {
    /// How long to sleep, in milliseconds (at most one hour).
    ms: u64,
    /// Passed through to the output unchanged.
    #[serde(default)]
    value: Value,
}

#[derive(Serialize, JsonSchema)]
struct DelayOut {
    /// The input `value`, unchanged.
    value: Value,
    /// How long the task slept, in milliseconds.
    slept_ms: u64,
}

fn delay(input: DelayIn, ctx: &Context) -> Result<DelayOut, TaskError> {
    if input.ms > 3_600_000 {
        return Err(TaskError::invalid_input("ms is over one hour (3600000)"));
    }
    ctx.progress(0.0, Some("sleeping"));
    std::thread::sleep(std::time::Duration::from_millis(input.ms));
    ctx.progress(1.0, None);
    Ok(DelayOut {
        value: input.value,
        slept_ms: input.ms,
    })
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
enum LogLevel {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

#[derive(Deserialize, JsonSchema)]
struct DebugIn {
    /// What to log: a string as is, anything else as JSON.
    message: Value,
    /// Severity (default `info`).
    #[serde(default)]
    level: LogLevel,
}

#[derive(Serialize, JsonSchema)]
struct DebugOut {
    /// The input `message`, unchanged.
    message: Value,
}

fn debug_log(input: DebugIn, ctx: &Context) -> Result<DebugOut, TaskError> {
    let text = match &input.message {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let level = match input.level {
        LogLevel::Trace => Level::Trace,
        LogLevel::Debug => Level::Debug,
        LogLevel::Info => Level::Info,
        LogLevel::Warn => Level::Warn,
        LogLevel::Error => Level::Error,
    };
    ctx.log(level, &text);
    Ok(DebugOut {
        message: input.message,
    })
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("util.delay", delay)
            .title("Delay")
            .description(
                "Sleeps `ms` milliseconds, then passes `value` through. For tests and demos.",
            )
            .not_cacheable(),
        TaskDef::new("util.debug-log", debug_log)
            .title("Debug log")
            .description("Logs `message` at `level` through the host's log, and passes it through.")
            .not_cacheable(),
    ]
}

weft_sdk::export_plugin!(tasks);
