//! Standard tasks: vectors, port for port and result for result as
//! Workglow's `Vector*Task` family (`@workglow/tasks` 0.2.37), whose class
//! names are aliases of these (`VectorSumTask` is `vector.sum`).
//!
//! Vectors are JSON arrays of numbers, all of one length where a task takes
//! several. Sums are Kahan-compensated as Workglow's `sumPrecise`. Two
//! differences, both refusals where Workglow gives something JSON cannot
//! carry: a division by a zero component is invalid input (Workglow gives
//! Infinity or NaN, written as `null`), and so is a result that is not a
//! finite number.
mod quantize;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Number;
use weft_sdk::{Context, TaskDef, TaskError};

#[derive(Deserialize, JsonSchema)]
struct Vectors {
    /// The vectors, each an array of numbers, all of one length.
    vectors: Vec<Vec<f64>>,
}

#[derive(Deserialize, JsonSchema)]
struct One {
    /// The vector.
    vector: Vec<f64>,
}

#[derive(Deserialize, JsonSchema)]
struct Scaled {
    /// The vector.
    vector: Vec<f64>,
    /// What to multiply each component by.
    scalar: f64,
}

#[derive(Serialize, JsonSchema)]
struct VectorOut {
    /// The resulting vector.
    result: Vec<Number>,
}

#[derive(Serialize, JsonSchema)]
struct NumberOut {
    /// The resulting number.
    result: Number,
}

/// `v` as JSON writes a JavaScript number: whole numbers as integers.
fn number(v: f64) -> Result<Number, TaskError> {
    const SAFE: f64 = 9_007_199_254_740_992.0; // 2^53
    if v.fract() == 0.0 && v.abs() <= SAFE {
        return Ok((v as i64).into());
    }
    Number::from_f64(v)
        .ok_or_else(|| TaskError::invalid_input(format!("the result {v} is not a finite number")))
}

fn vector(values: impl IntoIterator<Item = f64>) -> Result<VectorOut, TaskError> {
    let result = values.into_iter().map(number).collect::<Result<_, _>>()?;
    Ok(VectorOut { result })
}

/// Kahan-compensated sum, as Workglow's `sumPrecise` where
/// `Math.sumPrecise` is missing.
fn sum_precise(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut total, mut compensation) = (0.0_f64, 0.0_f64);
    for value in values {
        let y = value - compensation;
        let t = total + y;
        compensation = (t - total) - y;
        total = t;
    }
    total
}

/// `vectors`, at least `least` of them, all of one length: that length.
fn same_length(vectors: &[Vec<f64>], least: usize) -> Result<usize, TaskError> {
    if vectors.len() < least {
        let what = match least {
            1 => "at least one vector is required".to_string(),
            n => format!("at least {n} vectors are required"),
        };
        return Err(TaskError::invalid_input(format!(
            "{what}; `vectors` has {}",
            vectors.len()
        )));
    }
    let len = vectors[0].len();
    match vectors.iter().position(|v| v.len() != len) {
        Some(i) => Err(TaskError::invalid_input(format!(
            "all vectors must have the same length: vector 0 has {len} components, vector {i} has {}",
            vectors[i].len()
        ))),
        None => Ok(len),
    }
}

/// Component `i` of every vector, folded by `f` from the first.
fn componentwise(
    vectors: &[Vec<f64>],
    least: usize,
    f: impl Fn(usize, &mut dyn Iterator<Item = f64>) -> Result<f64, TaskError>,
) -> Result<VectorOut, TaskError> {
    let len = same_length(vectors, least)?;
    let values = (0..len)
        .map(|i| f(i, &mut vectors.iter().map(|v| v[i])))
        .collect::<Result<Vec<f64>, TaskError>>()?;
    vector(values)
}

fn sum(i: Vectors, _: &Context) -> Result<VectorOut, TaskError> {
    componentwise(&i.vectors, 1, |_, c| Ok(sum_precise(c)))
}

fn subtract(i: Vectors, _: &Context) -> Result<VectorOut, TaskError> {
    componentwise(&i.vectors, 2, |_, c| {
        let first = c.next().unwrap_or_default();
        Ok(c.fold(first, |acc, v| acc - v))
    })
}

fn multiply(i: Vectors, _: &Context) -> Result<VectorOut, TaskError> {
    componentwise(&i.vectors, 1, |_, c| Ok(c.fold(1.0, |acc, v| acc * v)))
}

fn divide(i: Vectors, _: &Context) -> Result<VectorOut, TaskError> {
    componentwise(&i.vectors, 2, |index, c| {
        let first = c.next().unwrap_or_default();
        c.enumerate().try_fold(first, |acc, (j, v)| match v {
            0.0 => Err(TaskError::invalid_input(format!(
                "division by zero: component {index} of vector {} is 0",
                j + 1
            ))),
            v => Ok(acc / v),
        })
    })
}

fn scale(i: Scaled, _: &Context) -> Result<VectorOut, TaskError> {
    vector(i.vector.iter().map(|v| v * i.scalar))
}

fn normalize(i: One, _: &Context) -> Result<VectorOut, TaskError> {
    let magnitude = i.vector.iter().map(|v| v * v).sum::<f64>().sqrt();
    if magnitude == 0.0 {
        return Err(TaskError::invalid_input(
            "cannot normalize a zero vector (its length is 0)",
        ));
    }
    vector(i.vector.iter().map(|v| v / magnitude))
}

/// The first two of `vectors`, of one length.
fn pair<'a>(vectors: &'a [Vec<f64>], what: &str) -> Result<(&'a [f64], &'a [f64]), TaskError> {
    if vectors.len() < 2 {
        return Err(TaskError::invalid_input(format!(
            "exactly two vectors are required for {what}; `vectors` has {}",
            vectors.len()
        )));
    }
    same_length(&vectors[..2], 2)?;
    Ok((&vectors[0], &vectors[1]))
}

fn distance(i: Vectors, _: &Context) -> Result<NumberOut, TaskError> {
    let (a, b) = pair(&i.vectors, "distance")?;
    let squares = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y));
    Ok(NumberOut {
        result: number(sum_precise(squares).sqrt())?,
    })
}

fn dot_product(i: Vectors, _: &Context) -> Result<NumberOut, TaskError> {
    let (a, b) = pair(&i.vectors, "dot product")?;
    Ok(NumberOut {
        result: number(sum_precise(a.iter().zip(b).map(|(x, y)| x * y)))?,
    })
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("vector.sum", sum)
            .title("Sum")
            .description("The component-wise sum of `vectors` → result."),
        TaskDef::new("vector.subtract", subtract)
            .title("Subtract")
            .description(
                "The first of `vectors` minus each of the others, component-wise → result.",
            ),
        TaskDef::new("vector.multiply", multiply)
            .title("Multiply")
            .description("The component-wise product of `vectors` → result."),
        TaskDef::new("vector.divide", divide)
            .title("Divide")
            .description(
                "The first of `vectors` divided by each of the others, component-wise; a zero \
                 divisor is invalid input → result.",
            ),
        TaskDef::new("vector.scale", scale)
            .title("Scale")
            .description("`vector` with each component multiplied by `scalar` → result."),
        TaskDef::new("vector.normalize", normalize)
            .title("Normalize")
            .description("`vector` scaled to length 1 (L2) → result."),
        TaskDef::new("vector.distance", distance)
            .title("Distance")
            .description("The Euclidean distance between the first two of `vectors` → result."),
        TaskDef::new("vector.dot-product", dot_product)
            .title("Dot product")
            .description("The dot product of the first two of `vectors` → result."),
        TaskDef::new("vector.quantize", quantize::quantize)
            .title("Quantize")
            .description(
                "`vector` (one vector or an array of them), normalized unless `normalize` is \
                 false, as numbers of `targetType`: int8/int16 (×127, ×32767), uint8/uint16 \
                 (range spread), float16/32/64 → vector, originalType, targetType.",
            ),
    ]
    .into_iter()
    .map(|t| t.category("Vector"))
    .collect()
}

weft_sdk::export_plugin!(tasks);
