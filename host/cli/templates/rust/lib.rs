//! {{name}}: a Weft plugin. Each task is a plain function over serde types;
//! the SDK derives the JSON Schemas from them.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, TaskDef, TaskError};

#[derive(Deserialize, JsonSchema)]
struct Input {
    /// The text to greet.
    name: String,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    /// The greeting.
    greeting: String,
}

fn greet(input: Input, ctx: &Context) -> Result<Output, TaskError> {
    if input.name.is_empty() {
        return Err(TaskError::invalid_input("name is empty"));
    }
    ctx.log(weft_sdk::Level::Info, "greeting");
    Ok(Output {
        greeting: format!("Hello, {}!", input.name),
    })
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("{{id}}.greet", greet)
            .title("Greet")
            .description("Greets someone by name."),
    ]
}

weft_sdk::export_plugin!(tasks);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_by_name() {
        let ctx = Context {
            run_id: "r".into(),
            node_id: "n".into(),
            attempt: 1,
            idempotency_key: "r/n".into(),
        };
        let out = greet(Input { name: "loom".into() }, &ctx);
        assert_eq!(out.map(|o| o.greeting).ok(), Some("Hello, loom!".into()));
    }
}
