//! `ai.face-detector` (Workglow's `FaceDetectorTask`): the faces in an
//! image, each a box in the image's pixels, six keypoints (eyes, nose tip,
//! mouth, ears) as fractions of the image's width and height, and a score,
//! by a face-detection model the host serves (`models.detect`; `blazeface`
//! from `weft models pull blazeface`). The image is decoded here (`pixels`);
//! the host sees raw RGBA.

use pixels::codec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::models::{self, DetectOptions, Image};
use weft_sdk::{Context, TaskError};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaceDetectorIn {
    /// Source image (`data:image/png;base64,…` or JPEG).
    image: String,
    /// A face-detection model's id (`blazeface`, from `weft models pull blazeface`).
    model: String,
    /// Faces scoring below this are left out.
    #[serde(default = "min_detection")]
    #[schemars(range(min = 0.0, max = 1.0))]
    min_detection_confidence: f32,
    /// Faces overlapping a better one by more than this (intersection over
    /// union) are merged into it.
    #[serde(default = "min_suppression")]
    #[schemars(range(min = 0.0, max = 1.0))]
    min_suppression_threshold: f32,
}

fn min_detection() -> f32 {
    0.5
}

fn min_suppression() -> f32 {
    0.3
}

#[derive(Serialize, JsonSchema)]
pub struct FaceDetectorOut {
    /// The faces found, best first (at most 100).
    faces: Vec<Face>,
}

#[derive(Serialize, JsonSchema)]
pub struct Face {
    /// Where it is, in the image's pixels.
    #[serde(rename = "box")]
    bounds: Bounds,
    /// Right and left eye, nose tip, mouth centre, right and left ear
    /// tragion; x and y from 0 to 1 of the image's width and height.
    keypoints: Vec<Point>,
    /// How sure the model is, 0 to 1.
    score: f32,
}

#[derive(Serialize, JsonSchema)]
pub struct Bounds {
    /// The top left corner.
    x: f32,
    y: f32,
    width: f32,
    height: f32,
}

#[derive(Serialize, JsonSchema)]
pub struct Point {
    x: f32,
    y: f32,
    /// `rightEye`, `leftEye`, `noseTip`, `mouthCenter`, `rightEarTragion`
    /// or `leftEarTragion`.
    label: String,
}

/// The faces the model finds in the image.
pub fn detect(input: FaceDetectorIn, _: &Context) -> Result<FaceDetectorOut, TaskError> {
    let raster = codec::decode(&input.image)?;
    let (width, height) = (raster.width as f32, raster.height as f32);
    let image = Image {
        width: raster.width,
        height: raster.height,
        rgba: raster.data,
    };
    let options = DetectOptions {
        min_score: input.min_detection_confidence,
        max_overlap: input.min_suppression_threshold,
    };
    let found = models::detect(&input.model, &image, options)?;
    let faces = found
        .into_iter()
        .map(|d| Face {
            bounds: Bounds {
                x: d.x,
                y: d.y,
                width: d.width,
                height: d.height,
            },
            keypoints: d
                .keypoints
                .into_iter()
                .map(|k| Point {
                    x: k.x / width,
                    y: k.y / height,
                    label: k.label,
                })
                .collect(),
            score: d.score,
        })
        .collect();
    Ok(FaceDetectorOut { faces })
}
