//! Images and models of HTTP providers: `ai.image-to-text` (Workglow's
//! `ImageToTextTask`: a vision model describes an image,
//! `models.generate-seeing`), `ai.image-generate` and `ai.image-edit`
//! (`ImageGenerateTask`, `ImageEditTask`: an image-generation model makes
//! or edits one, `models.generate-image`). Image files are passed on as
//! they are (PNG or JPEG, checked by their bytes), not decoded here.

use pixels::codec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_sdk::models::{self, GenerateOptions, ImageFile, ImageRequest, Prompt};
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

/// Options of a made image (Workglow's).
#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImageOptions {
    /// `1:1` (default), `16:9`, `9:16`, `4:3` or `3:4`.
    #[serde(default)]
    aspect_ratio: Option<String>,
    /// `low`, `medium` or `high` (models that have them).
    #[serde(default)]
    quality: Option<String>,
    /// Accepted for Workglow's graphs; OpenAI's images API takes no seed.
    #[serde(default)]
    #[allow(dead_code)]
    seed: Option<f64>,
    /// Accepted for Workglow's graphs; OpenAI's images API takes none.
    #[serde(default)]
    #[allow(dead_code)]
    negative_prompt: Option<String>,
    /// Accepted for Workglow's graphs; not passed on.
    #[serde(default)]
    #[allow(dead_code)]
    provider_options: Option<Value>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageGenerateIn {
    /// An image-generation model of an HTTP provider.
    model: String,
    /// What to make.
    prompt: String,
    #[serde(flatten)]
    options: ImageOptions,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageEditIn {
    /// An image-generation model of an HTTP provider.
    model: String,
    /// The edit to apply.
    prompt: String,
    /// The image to edit (`data:` URI, PNG or JPEG).
    image: String,
    /// Where to edit: transparent pixels (the image's size).
    #[serde(default)]
    mask: Option<String>,
    /// Reference images (at most 7).
    #[serde(default)]
    additional_images: Vec<String>,
    #[serde(flatten)]
    options: ImageOptions,
}

#[derive(Serialize, JsonSchema)]
pub struct ImageOut {
    /// The image made, as a `data:` URI (PNG, JPEG or WebP).
    image: String,
}

fn image_file(uri: &str) -> Result<ImageFile, TaskError> {
    let (media_type, bytes) = codec::file(uri)?;
    Ok(ImageFile {
        media_type: media_type.to_string(),
        bytes,
    })
}

fn made(model: &str, request: ImageRequest) -> Result<ImageOut, TaskError> {
    let file = models::generate_image(model, &request)?;
    Ok(ImageOut {
        image: codec::data_uri(&file.media_type, &file.bytes),
    })
}

pub fn image_generate(input: ImageGenerateIn, _: &Context) -> Result<ImageOut, TaskError> {
    let request = ImageRequest {
        prompt: input.prompt,
        images: Vec::new(),
        mask: None,
        aspect_ratio: input.options.aspect_ratio,
        quality: input.options.quality,
    };
    made(&input.model, request)
}

pub fn image_edit(input: ImageEditIn, _: &Context) -> Result<ImageOut, TaskError> {
    let mut images = vec![image_file(&input.image)?];
    for uri in &input.additional_images {
        images.push(image_file(uri)?);
    }
    let request = ImageRequest {
        prompt: input.prompt,
        images,
        mask: input.mask.as_deref().map(image_file).transpose()?,
        aspect_ratio: input.options.aspect_ratio,
        quality: input.options.quality,
    };
    made(&input.model, request)
}
