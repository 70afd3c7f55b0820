//! A plugin's answer to `describe`, kept beside its compiled artifact.
//!
//! The WIT contract says `describe` depends on nothing but the component, so
//! its answer is asked once per component (by SHA-256) and read back at later
//! starts: a plugin no graph uses is then never instantiated, and a start
//! costs no instance per plugin. What is kept is the raw answer; the host
//! checks it (schemas, names) at every load as if the plugin had just said it.
//! A record that does not parse is ignored, and the plugin is asked again.

use serde::{Deserialize, Serialize};

use crate::instance::wit_types::TaskType;

/// Bumped when [`Described`] changes: older records are then not read.
pub const FORMAT: u32 = 1;

/// One task type as `describe` gave it.
#[derive(Serialize, Deserialize)]
struct Described {
    id: String,
    version: String,
    title: String,
    category: String,
    description: String,
    input_schema: String,
    output_schema: String,
    side_effects: bool,
    cacheable: bool,
    timeout_ms: Option<u64>,
}

/// The record of `types`.
pub fn to_text(types: &[TaskType]) -> String {
    let described: Vec<Described> = types
        .iter()
        .map(|t| Described {
            id: t.id.clone(),
            version: t.version.clone(),
            title: t.title.clone(),
            category: t.category.clone(),
            description: t.description.clone(),
            input_schema: t.input_schema.clone(),
            output_schema: t.output_schema.clone(),
            side_effects: t.side_effects,
            cacheable: t.cacheable,
            timeout_ms: t.timeout_ms,
        })
        .collect();
    serde_json::to_string(&described).unwrap_or_default()
}

/// The task types a record holds; `None` if it is not one.
pub fn parse(text: &str) -> Option<Vec<TaskType>> {
    let described: Vec<Described> = serde_json::from_str(text).ok()?;
    Some(
        described
            .into_iter()
            .map(|d| TaskType {
                id: d.id,
                version: d.version,
                title: d.title,
                category: d.category,
                description: d.description,
                input_schema: d.input_schema,
                output_schema: d.output_schema,
                side_effects: d.side_effects,
                cacheable: d.cacheable,
                timeout_ms: d.timeout_ms,
            })
            .collect(),
    )
}
