//! `vector.quantize`, Workglow's `VectorQuantizeTask`: vectors normalized
//! (optionally), then stored as a smaller number type.
//!
//! Workglow reads the original type off a typed array (`Float32Array`…);
//! a JSON vector is an array of numbers, so here it is always `float64`.
//! Workglow's `float16` needs `Float16Array`, which Node 20 lacks (it
//! gives zeros there); here it rounds to the nearest half-precision number.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Number;
use weft_sdk::{Context, TaskError};

use crate::number;

/// One vector or several.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Vectors<T> {
    One(Vec<T>),
    Many(Vec<Vec<T>>),
}

/// The number types a vector may be quantized to.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum TensorType {
    Float16,
    Float32,
    Float64,
    /// -127…127: each component (clamped to -1…1) × 127.
    Int8,
    /// 0…255: the components' range spread over it.
    Uint8,
    /// -32767…32767: each component (clamped to -1…1) × 32767.
    Int16,
    /// 0…65535: the components' range spread over it.
    Uint16,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuantizeIn {
    /// A vector, or an array of vectors, to quantize.
    vector: Vectors<f64>,
    /// The number type to quantize to.
    target_type: TensorType,
    /// Scale each vector to length 1 first (default true; a zero vector is
    /// left as it is).
    #[serde(default = "yes")]
    normalize: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuantizeOut {
    /// The quantized vector, or vectors, in the shape given.
    vector: Vectors<Number>,
    /// The type the vectors came as: always `float64` (JSON numbers).
    original_type: &'static str,
    /// The type quantized to.
    target_type: TensorType,
}

pub fn quantize(i: QuantizeIn, _: &Context) -> Result<QuantizeOut, TaskError> {
    let one = |v: Vec<f64>| quantize_one(v, i.target_type, i.normalize);
    let vector = match i.vector {
        Vectors::One(v) => Vectors::One(one(v)?),
        Vectors::Many(vs) => Vectors::Many(vs.into_iter().map(one).collect::<Result<_, _>>()?),
    };
    Ok(QuantizeOut {
        vector,
        original_type: "float64",
        target_type: i.target_type,
    })
}

fn quantize_one(
    mut values: Vec<f64>,
    target: TensorType,
    normalize: bool,
) -> Result<Vec<Number>, TaskError> {
    if normalize {
        let norm = values.iter().fold(0.0, |acc, v| acc + v * v).sqrt();
        if norm != 0.0 {
            values.iter_mut().for_each(|v| *v /= norm);
        }
    }
    let symmetric = |scale: f64| -> Vec<f64> {
        let clamp = |v: f64| v.clamp(-1.0, 1.0) * scale;
        values.iter().map(|v| js::round(clamp(*v))).collect()
    };
    let spread = |top: f64| -> Vec<f64> {
        let (min, max) = min_max(&values);
        let range = match max - min {
            0.0 => 1.0,
            r => r,
        };
        values
            .iter()
            .map(|v| js::round((v - min) / range * top))
            .collect()
    };
    let quantized: Vec<f64> = match target {
        TensorType::Float16 => values
            .iter()
            .map(|v| half::f16::from_f64(*v).to_f64())
            .collect(),
        TensorType::Float32 => values.iter().map(|v| *v as f32 as f64).collect(),
        TensorType::Float64 => values.clone(),
        TensorType::Int8 => symmetric(127.0),
        TensorType::Int16 => symmetric(32767.0),
        TensorType::Uint8 => spread(255.0),
        TensorType::Uint16 => spread(65535.0),
    };
    quantized.into_iter().map(number).collect()
}

/// The smallest and largest of `values` (0 and 1 for none, as Workglow).
fn min_max(values: &[f64]) -> (f64, f64) {
    let Some(first) = values.first() else {
        return (0.0, 1.0);
    };
    values[1..]
        .iter()
        .fold((*first, *first), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}
