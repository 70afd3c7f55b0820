//! Declares `broken.schema`, whose input schema says `"type": 12`: the host must
//! refuse the plugin at load time, naming the task and the schema.
use weft_sdk::{Context, TaskDef, TaskError, Value, json};

fn echo(v: Value, _: &Context) -> Result<Value, TaskError> {
    Ok(v)
}

fn tasks() -> Vec<TaskDef> {
    vec![TaskDef::new("broken.schema", echo).input_schema(json!({ "type": 12 }))]
}

weft_sdk::export_plugin!(tasks);
