//! `ai.image-to-text` (Workglow's `ImageToTextTask`): a vision model of
//! an HTTP provider describes an image (`models.generate-seeing`). The
//! image file is passed on as it is (PNG or JPEG, checked by its bytes),
//! not decoded here.

use pixels::codec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::models::{self, GenerateOptions, ImageFile, Prompt};
use weft_sdk::{Context, TaskError};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageToTextIn {
    /// The image (`data:image/png;base64,…` or JPEG).
    image: String,
    /// A vision model of an HTTP provider (OpenAI-compatible or Anthropic).
    model: String,
    /// The most tokens to generate (default 256).
    #[serde(default)]
    #[schemars(range(min = 1, max = 4096))]
    max_tokens: Option<u32>,
    /// What to ask about the image (default: a short description).
    #[serde(default)]
    prompt: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct ImageToTextOut {
    /// The generated text.
    text: String,
}

/// What is asked when no prompt is given.
const DESCRIBE: &str = "Describe this image in one or two sentences.";

pub fn image_to_text(input: ImageToTextIn, _: &Context) -> Result<ImageToTextOut, TaskError> {
    let (media_type, bytes) = codec::file(&input.image)?;
    let images = [ImageFile {
        media_type: media_type.to_string(),
        bytes,
    }];
    let prompt = Prompt::Text(input.prompt.unwrap_or_else(|| DESCRIBE.to_string()));
    let options = GenerateOptions {
        max_tokens: input.max_tokens,
        temperature: None,
        stop: Vec::new(),
    };
    let generation = models::generate_seeing(&input.model, &prompt, &images, &options)?;
    Ok(ImageToTextOut {
        text: generation.text.trim().to_string(),
    })
}
