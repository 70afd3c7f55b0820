//! An example Weft plugin with two tasks. Copy this crate to start your own.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, TaskDef, TaskError};

#[derive(Deserialize, JsonSchema)]
struct Text {
    /// The text to work on.
    text: String,
}

#[derive(Serialize, JsonSchema)]
struct Shouted {
    text: String,
}

#[derive(Serialize, JsonSchema)]
struct Counted {
    words: u64,
}

fn shout(input: Text, _ctx: &Context) -> Result<Shouted, TaskError> {
    Ok(Shouted {
        text: input.text.to_uppercase() + "!",
    })
}

fn count_words(input: Text, _ctx: &Context) -> Result<Counted, TaskError> {
    Ok(Counted {
        words: input.text.split_whitespace().count() as u64,
    })
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("example.shout", shout)
            .title("Shout")
            .description("Upper-cases the text and adds an exclamation mark."),
        TaskDef::new("example.count-words", count_words)
            .title("Count words")
            .description("Counts whitespace-separated words."),
    ]
}

weft_sdk::export_plugin!(tasks);
