//! A plugin built against `weft:plugin@0.1.0` (its WIT in `wit/`, as that
//! release had it): exports `task@0.1.0` and imports `log@0.1.0`. Every
//! 0.1.x host must load and run it.
wit_bindgen::generate!({
    path: "wit",
    world: "plugin",
});

use exports::weft::plugin::task::{Context, Guest, TaskError, TaskType};
use weft::plugin::log::{Level, log};

struct Old;

impl Guest for Old {
    fn describe() -> Vec<TaskType> {
        vec![TaskType {
            id: "old.echo".into(),
            version: "1".into(),
            title: "Echo (contract 0.1.0)".into(),
            category: "test".into(),
            description: "Gives its input back".into(),
            input_schema: r#"{"type":"object"}"#.into(),
            output_schema: r#"{"type":"object"}"#.into(),
            side_effects: false,
            cacheable: false,
            timeout_ms: None,
        }]
    }

    fn run(_: String, input: String, _: Context) -> Result<String, TaskError> {
        log(Level::Info, "echo from a 0.1.0 plugin");
        Ok(input)
    }
}

export!(Old);
