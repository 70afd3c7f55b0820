//! Local background-removal models on ONNX Runtime: an image in, the alpha
//! mask of its foreground out (the `models.foreground` import).
//!
//! The model takes one RGB image of a fixed square size (`[1, 3, S, S]`,
//! each channel as `(value - 128) / 256`; S is read from the model, 1024
//! when it does not say) and answers a mask `[1, 1, S, S]` of values from 0
//! (background) to 1 (foreground) as its first output: the shape of ISNet
//! (the model `weft models pull isnet` installs) and of its kin (U²-Net,
//! BiRefNet exports). The image is resized to S×S and the mask back to the
//! image's size, bilinearly, as the model's own pipeline does.

use std::sync::Arc;

use image::imageops::{FilterType, resize};
use image::{GrayImage, RgbaImage};
use ort::session::Session;
use ort::value::Tensor;

use super::onnx::{Pool, unavailable};
use super::{GenerateOptions, Generation, Image, ModelConfig, ModelError, Prompt, Provider};
use super::{ModelKind, TokenSink};

/// The side of the model's square input when the model leaves it open.
const DEFAULT_SIDE: u32 = 1024;

/// A background-removal model.
pub struct OnnxForeground {
    id: String,
    pool: Arc<Pool>,
}

impl OnnxForeground {
    /// Load model `id` as configured ([`Pool::of_image_model`]).
    pub fn load(id: &str, config: &ModelConfig) -> Result<Self, ModelError> {
        Ok(OnnxForeground {
            id: id.to_string(),
            pool: Pool::of_image_model(id, config)?,
        })
    }

    fn wrong_kind(&self, wanted: ModelKind) -> ModelError {
        ModelError::wrong_kind(&self.id, ModelKind::BackgroundRemoval, wanted)
    }
}

#[async_trait::async_trait]
impl Provider for OnnxForeground {
    async fn embed(&self, _: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        Err(self.wrong_kind(ModelKind::Embedding))
    }

    async fn generate(
        &self,
        _: &Prompt,
        _: &GenerateOptions,
        _: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        Err(self.wrong_kind(ModelKind::Generation))
    }

    async fn count_tokens(&self, _: &str) -> Result<u32, ModelError> {
        Err(self.wrong_kind(ModelKind::Generation))
    }

    async fn foreground(&self, image: Image) -> Result<Vec<u8>, ModelError> {
        let id = self.id.clone();
        self.pool
            .with(move |session, names| mask(&id, session, names, image))
            .await
    }
}

/// The side of `session`'s square image input.
fn input_side(session: &Session) -> u32 {
    let shape = session
        .inputs()
        .first()
        .and_then(|i| i.dtype().tensor_shape().map(|s| s.to_vec()));
    match shape.as_deref() {
        Some([_, 3, h, w]) if h == w && *h > 0 => *h as u32,
        _ => DEFAULT_SIDE,
    }
}

/// Run the model on `image`: its foreground mask at the image's size.
fn mask(
    id: &str,
    session: &mut Session,
    names: &[String],
    image: Image,
) -> Result<Vec<u8>, ModelError> {
    let Image {
        width,
        height,
        rgba,
    } = image;
    let side = input_side(session);
    let source = RgbaImage::from_raw(width, height, rgba)
        .ok_or_else(|| ModelError::InvalidRequest("image size does not match its data".into()))?;
    let input = planes(&resize(&source, side, side, FilterType::Triangle));
    drop(source);
    let name = names
        .first()
        .ok_or_else(|| unavailable(id, "the model takes no input"))?;
    let s = side as usize;
    let tensor = Tensor::from_array(([1usize, 3, s, s], input))
        .map_err(|e| unavailable(id, format!("cannot build the input: {e}")))?;
    let outputs = session
        .run(vec![(name.clone(), tensor.into_dyn())])
        .map_err(|e| unavailable(id, format!("inference failed: {e}")))?;
    let (shape, values) = outputs[0]
        .try_extract_tensor::<f32>()
        .map_err(|e| unavailable(id, format!("unexpected output: {e}")))?;
    if values.len() != s * s {
        return Err(unavailable(
            id,
            format!("expected a mask of {side}×{side}, got an output of shape {shape:?}"),
        ));
    }
    let bytes = values
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let small = GrayImage::from_raw(side, side, bytes)
        .ok_or_else(|| unavailable(id, "mask size does not match its data"))?;
    Ok(resize(&small, width, height, FilterType::Triangle).into_raw())
}

/// The RGB planes of `image` as the model reads them: `(value - 128) / 256`,
/// all reds, then greens, then blues.
fn planes(image: &RgbaImage) -> Vec<f32> {
    let pixels = image.as_raw().len() / 4;
    let mut out = vec![0f32; pixels * 3];
    for (i, px) in image.as_raw().chunks_exact(4).enumerate() {
        for c in 0..3 {
            out[c * pixels + i] = (f32::from(px[c]) - 128.0) / 256.0;
        }
    }
    out
}
