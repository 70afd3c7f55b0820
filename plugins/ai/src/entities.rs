//! `ai.text-named-entity-recognition` (Workglow's
//! `TextNamedEntityRecognitionTask`): the named entities of a text from a
//! generation model (an HTTP provider's, say), as `ask::entities` asks for
//! and checks them; `blockList` drops types.
use ask::entities::{self, Entity};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, TaskError};

use crate::structured::Sampling;

#[derive(Deserialize, JsonSchema)]
pub(crate) struct EntitiesIn {
    /// The generation model's id.
    model: String,
    /// The text to find entities in.
    text: String,
    /// Entity types to leave out (`PER`, `ORG`, `LOC`, `MISC`).
    #[serde(default, rename = "blockList")]
    block_list: Vec<String>,
    /// `maxTokens`, `temperature`.
    #[serde(flatten)]
    sampling: Sampling,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct EntitiesOut {
    /// The entities, in the model's order.
    entities: Vec<Entity>,
}

pub(crate) fn recognise(input: EntitiesIn, _: &Context) -> Result<EntitiesOut, TaskError> {
    let found = entities::recognise(&input.model, &input.text, input.sampling.options())?;
    let entities = found
        .into_iter()
        .filter(|e| !input.block_list.contains(&e.entity))
        .collect();
    Ok(EntitiesOut { entities })
}
