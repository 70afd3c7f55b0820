//! `ai.background-removal` (Workglow's `BackgroundRemovalTask`): the image
//! with its background made transparent, by a background-removal model the
//! host serves (`models.foreground`). The image is decoded and encoded here
//! (`pixels`); the host sees raw RGBA and answers one alpha byte per pixel.

use pixels::codec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::models::{self, Image};
use weft_sdk::{Context, TaskError};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackgroundRemovalIn {
    /// Source image (`data:image/png;base64,…` or JPEG).
    image: String,
    /// A background-removal model's id (`isnet`, from `weft models pull isnet`).
    model: String,
}

#[derive(Serialize, JsonSchema)]
pub struct BackgroundRemovalOut {
    /// The image with a transparent background, as a PNG `data:` URI.
    image: String,
}

/// The image, each pixel's alpha multiplied by the model's foreground mask
/// (a pixel already transparent stays so).
pub fn remove(input: BackgroundRemovalIn, _: &Context) -> Result<BackgroundRemovalOut, TaskError> {
    let mut raster = codec::decode(&input.image)?;
    let image = Image {
        width: raster.width,
        height: raster.height,
        rgba: std::mem::take(&mut raster.data),
    };
    let mask = models::foreground(&input.model, &image)?;
    raster.data = image.rgba;
    if mask.len() != raster.data.len() / 4 {
        return Err(TaskError::failed(format!(
            "model `{}` answered a mask of {} bytes for {} pixels",
            input.model,
            mask.len(),
            raster.data.len() / 4
        )));
    }
    for (px, m) in raster.data.chunks_exact_mut(4).zip(mask) {
        px[3] = ((u16::from(px[3]) * u16::from(m) + 127) / 255) as u8;
    }
    Ok(BackgroundRemovalOut {
        image: codec::encode(raster)?,
    })
}
