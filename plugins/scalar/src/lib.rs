//! Standard tasks: numbers, port for port and result for result as
//! Workglow's `Scalar*Task` family (`@workglow/tasks` 0.2.37), whose class
//! names are aliases of these (`ScalarAddTask` is `scalar.add`).
//!
//! Numbers are JSON numbers; a result that is a whole number within ±2^53
//! is written as an integer, as JavaScript's `JSON.stringify` writes it.
//! Where JavaScript would give a non-finite number (`Math.max()` of
//! nothing), the task fails with invalid input instead.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Number;
use weft_sdk::{Context, TaskDef, TaskError};

#[derive(Deserialize, JsonSchema)]
struct One {
    /// Input number.
    value: f64,
}

#[derive(Deserialize, JsonSchema)]
struct Two {
    /// First number.
    a: f64,
    /// Second number.
    b: f64,
}

#[derive(Deserialize, JsonSchema)]
struct Many {
    /// The numbers.
    values: Vec<f64>,
}

#[derive(Serialize, JsonSchema)]
struct Result {
    /// The result.
    result: Number,
}

/// `v` as JSON writes a JavaScript number: whole numbers as integers.
fn number(v: f64) -> std::result::Result<Result, TaskError> {
    const SAFE: f64 = 9_007_199_254_740_992.0; // 2^53
    if v.fract() == 0.0 && v.abs() <= SAFE {
        return Ok(Result {
            result: (v as i64).into(),
        });
    }
    Number::from_f64(v)
        .map(|result| Result { result })
        .ok_or_else(|| TaskError::failed(format!("the result {v} is not a finite number")))
}

type Out = std::result::Result<Result, TaskError>;

fn add(i: Two, _: &Context) -> Out {
    number(i.a + i.b)
}

fn subtract(i: Two, _: &Context) -> Out {
    number(i.a - i.b)
}

fn multiply(i: Two, _: &Context) -> Out {
    number(i.a * i.b)
}

fn divide(i: Two, _: &Context) -> Out {
    if i.b == 0.0 {
        return Err(TaskError::invalid_input(
            "division by zero: the denominator (b) cannot be zero",
        ));
    }
    number(i.a / i.b)
}

/// The sum with Kahan's compensation, step for step as Workglow's
/// `sumPrecise` computes it where `Math.sumPrecise` is missing (Node 20):
/// `[0.1, 0.2, 0.3]` sums to 0.6, not 0.6000000000000001. (Where
/// JavaScript has `Math.sumPrecise`, an exact sum, the last bits of a sum
/// with cancellation can differ: `[1e16, 1, -1e16]` is 0 here, 1 there.)
fn sum(i: Many, _: &Context) -> Out {
    let (mut total, mut compensation) = (0.0_f64, 0.0_f64);
    for value in i.values {
        let y = value - compensation;
        let t = total + y;
        compensation = (t - total) - y;
        total = t;
    }
    number(total)
}

fn extreme(values: &[f64], pick: fn(f64, f64) -> f64, what: &str) -> Out {
    let first = values.first().ok_or_else(|| {
        TaskError::invalid_input(format!("the {what} of no values: `values` is empty"))
    })?;
    number(values[1..].iter().fold(*first, |a, b| pick(a, *b)))
}

fn max(i: Many, _: &Context) -> Out {
    extreme(&i.values, f64::max, "maximum")
}

fn min(i: Many, _: &Context) -> Out {
    extreme(&i.values, f64::min, "minimum")
}

fn abs(i: One, _: &Context) -> Out {
    number(i.value.abs())
}

fn ceil(i: One, _: &Context) -> Out {
    number(i.value.ceil())
}

fn floor(i: One, _: &Context) -> Out {
    number(i.value.floor())
}

/// JavaScript's `Math.round`: halves go up (towards +∞), so -2.5 → -2.
fn round(i: One, _: &Context) -> Out {
    let down = i.value.floor();
    number(if i.value - down >= 0.5 {
        down + 1.0
    } else {
        down
    })
}

fn trunc(i: One, _: &Context) -> Out {
    number(i.value.trunc())
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("scalar.add", add)
            .title("Add")
            .description("a + b → result."),
        TaskDef::new("scalar.subtract", subtract)
            .title("Subtract")
            .description("a - b → result."),
        TaskDef::new("scalar.multiply", multiply)
            .title("Multiply")
            .description("a × b → result."),
        TaskDef::new("scalar.divide", divide)
            .title("Divide")
            .description("a ÷ b → result; a zero denominator is invalid input."),
        TaskDef::new("scalar.sum", sum)
            .title("Sum")
            .description("The sum of `values` (Kahan-compensated, as Workglow's) → result."),
        TaskDef::new("scalar.max", max)
            .title("Max")
            .description("The largest of `values` → result."),
        TaskDef::new("scalar.min", min)
            .title("Min")
            .description("The smallest of `values` → result."),
        TaskDef::new("scalar.abs", abs)
            .title("Abs")
            .description("The absolute value of `value` → result."),
        TaskDef::new("scalar.ceil", ceil)
            .title("Ceil")
            .description("`value` rounded up → result."),
        TaskDef::new("scalar.floor", floor)
            .title("Floor")
            .description("`value` rounded down → result."),
        TaskDef::new("scalar.round", round)
            .title("Round")
            .description(
                "`value` rounded to the nearest integer, halves up (as JavaScript) → result.",
            ),
        TaskDef::new("scalar.trunc", trunc)
            .title("Trunc")
            .description("`value` without its fractional part → result."),
    ]
    .into_iter()
    .map(|t| t.category("Math"))
    .collect()
}

weft_sdk::export_plugin!(tasks);
