//! Standard tasks: arithmetic on JSON numbers (`math.*`).
//!
//! Integers stay integers while they fit in an `i64`; anything else is a float.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Number;
use weft_sdk::{Context, TaskDef, TaskError};

#[derive(Deserialize, JsonSchema)]
struct Value {
    /// The number.
    value: Number,
}

#[derive(Serialize, JsonSchema)]
struct Out {
    /// The result.
    value: Number,
}

#[derive(Deserialize, JsonSchema)]
struct Pair {
    /// Left operand.
    a: Number,
    /// Right operand.
    b: Number,
}

#[derive(Deserialize, JsonSchema)]
struct Values {
    /// The numbers to sum.
    values: Vec<Number>,
}

enum Op {
    Add,
    Sub,
    Mul,
}

fn arith(a: &Number, b: &Number, op: Op) -> Result<Number, TaskError> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        let exact = match op {
            Op::Add => x.checked_add(y),
            Op::Sub => x.checked_sub(y),
            Op::Mul => x.checked_mul(y),
        };
        if let Some(v) = exact {
            return Ok(v.into());
        }
    }
    let (x, y) = (as_f64(a)?, as_f64(b)?);
    let v = match op {
        Op::Add => x + y,
        Op::Sub => x - y,
        Op::Mul => x * y,
    };
    Number::from_f64(v)
        .ok_or_else(|| TaskError::failed(format!("result {v} is not a finite number")))
}

fn as_f64(n: &Number) -> Result<f64, TaskError> {
    n.as_f64()
        .ok_or_else(|| TaskError::invalid_input(format!("{n} is not representable as a number")))
}

fn add_one(input: Value, _: &Context) -> Result<Out, TaskError> {
    Ok(Out {
        value: arith(&input.value, &1.into(), Op::Add)?,
    })
}

fn add(input: Pair, _: &Context) -> Result<Out, TaskError> {
    Ok(Out {
        value: arith(&input.a, &input.b, Op::Add)?,
    })
}

fn subtract(input: Pair, _: &Context) -> Result<Out, TaskError> {
    Ok(Out {
        value: arith(&input.a, &input.b, Op::Sub)?,
    })
}

fn multiply(input: Pair, _: &Context) -> Result<Out, TaskError> {
    Ok(Out {
        value: arith(&input.a, &input.b, Op::Mul)?,
    })
}

fn divide(input: Pair, _: &Context) -> Result<Out, TaskError> {
    let b = as_f64(&input.b)?;
    if b == 0.0 {
        return Err(TaskError::invalid_input("division by zero (b is 0)"));
    }
    let v = as_f64(&input.a)? / b;
    Number::from_f64(v)
        .map(|value| Out { value })
        .ok_or_else(|| TaskError::failed(format!("result {v} is not a finite number")))
}

fn sum(input: Values, _: &Context) -> Result<Out, TaskError> {
    let mut total: Number = 0.into();
    for v in &input.values {
        total = arith(&total, v, Op::Add)?;
    }
    Ok(Out { value: total })
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("math.add-one", add_one)
            .title("Add one")
            .description("Adds 1 to `value`: {value: n} → {value: n + 1}."),
        TaskDef::new("math.add", add)
            .title("Add")
            .description("a + b."),
        TaskDef::new("math.subtract", subtract)
            .title("Subtract")
            .description("a - b."),
        TaskDef::new("math.multiply", multiply)
            .title("Multiply")
            .description("a × b."),
        TaskDef::new("math.divide", divide)
            .title("Divide")
            .description("a ÷ b as a float; dividing by zero is invalid input."),
        TaskDef::new("math.sum", sum)
            .title("Sum")
            .description("The sum of a list of numbers."),
    ]
}

weft_sdk::export_plugin!(tasks);
