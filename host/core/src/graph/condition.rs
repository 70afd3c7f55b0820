//! Conditions: when a branch of a `conditional` node is taken.
//!
//! Two forms, nothing else:
//! - a [CEL](https://cel.dev) expression over the node's input (`"when":
//!   "input.score > 0.8 && input.label == 'spam'"`), compiled when the graph
//!   is validated;
//! - Workglow's serialisable operator form (`{"field": "label", "operator":
//!   "equals", "value": "spam"}`), evaluated exactly as Workglow does, so its
//!   graphs carry over.
//!
//! A condition that fails at run time (a missing key, a type error) is false,
//! as in Workglow. Expressions are bounded: at most [`MAX_EXPRESSION_BYTES`],
//! parsed with a depth limit, and list macros (`all`, `exists`, `map`,
//! `filter`) may not nest, so evaluation costs at most linear time in the input.

use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest expression accepted.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// The deepest nesting of brackets and unary operators accepted.
pub const MAX_NESTING: usize = 32;

/// The deepest expression tree accepted (evaluation recurses on it): a chain
/// of 100 `&&` is fine, one of 2,000 `+` is not.
pub const MAX_DEPTH: usize = 128;

/// Workglow's comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Operator {
    Equals,
    NotEquals,
    GreaterThan,
    GreaterOrEqual,
    LessThan,
    LessOrEqual,
    Contains,
    StartsWith,
    EndsWith,
    IsEmpty,
    IsNotEmpty,
    IsTrue,
    IsFalse,
}

/// Why a condition cannot be compiled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionError {
    /// Longer than [`MAX_EXPRESSION_BYTES`].
    #[error("the expression is {0} bytes long; at most {MAX_EXPRESSION_BYTES} are allowed")]
    TooLong(usize),
    /// Not CEL.
    #[error("not a valid CEL expression: {0}")]
    Syntax(String),
    /// Brackets or unary operators nested too deep.
    #[error(
        "the expression nests too deep (at most {MAX_NESTING} brackets, {MAX_DEPTH} operators in a chain)"
    )]
    TooDeep,
    /// A list macro inside another.
    #[error(
        "list macros (all, exists, exists_one, map, filter) may not nest: their cost multiplies"
    )]
    NestedMacros,
}

/// A compiled condition.
#[derive(Clone)]
pub enum Condition {
    /// A CEL program; `input` is the node's input object.
    Cel {
        /// As written.
        source: String,
        /// Compiled.
        program: Arc<cel::Program>,
    },
    /// Workglow's operator form.
    Operator {
        /// A dotted path into the input.
        field: String,
        /// How to compare.
        operator: Operator,
        /// What to compare with (Workglow's UI gives a string).
        value: String,
    },
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::Cel { source, .. } => write!(f, "Cel({source:?})"),
            Condition::Operator {
                field,
                operator,
                value,
            } => write!(f, "Operator({field} {operator:?} {value:?})"),
        }
    }
}

impl Condition {
    /// Compile a CEL expression.
    pub fn cel(source: &str) -> Result<Condition, ConditionError> {
        if source.len() > MAX_EXPRESSION_BYTES {
            return Err(ConditionError::TooLong(source.len()));
        }
        if nesting(source) > MAX_NESTING {
            return Err(ConditionError::TooDeep);
        }
        let program = parse(source)?;
        Ok(Condition::Cel {
            source: source.to_string(),
            program: Arc::new(program),
        })
    }

    /// Whether the condition holds for `input`; an error evaluating it is
    /// returned so the caller can log it (and treat the condition as false).
    pub fn holds(&self, input: &Value) -> Result<bool, String> {
        self.holds_on(&[("input", input)])
    }

    /// Whether the condition holds with these variables; the operator form
    /// reads the first.
    pub fn holds_on(&self, vars: &[(&str, &Value)]) -> Result<bool, String> {
        match self {
            Condition::Cel { program, .. } => {
                let mut context = cel::Context::default();
                for (name, value) in vars {
                    let value = cel::to_value(value).map_err(|e| e.to_string())?;
                    context.add_variable_from_value(*name, value);
                }
                match program.execute(&context) {
                    Ok(cel::Value::Bool(b)) => Ok(b),
                    Ok(other) => Err(format!("the expression gave {other:?}, not a boolean")),
                    Err(e) => Err(e.to_string()),
                }
            }
            Condition::Operator {
                field,
                operator,
                value,
            } => {
                let first = vars.first().map_or(&Value::Null, |(_, v)| *v);
                Ok(compare(nested(first, field), *operator, value))
            }
        }
    }
}

/// Parse `source` on a thread of its own with a large stack (the parser
/// recurses once per operator), and refuse a tree deeper than
/// [`MAX_DEPTH`], so evaluating it later on any thread is safe.
fn parse(source: &str) -> Result<cel::Program, ConditionError> {
    const PARSER_STACK: usize = 256 << 20;
    let source = source.to_string();
    let parsing = std::thread::Builder::new()
        .name("cel-parse".into())
        .stack_size(PARSER_STACK)
        .spawn(move || {
            let program = cel::Program::compile(&source)
                .map_err(|e| ConditionError::Syntax(e.to_string()))?;
            let (depth, macros) = shape(program.expression());
            if depth > MAX_DEPTH {
                return Err(ConditionError::TooDeep);
            }
            if macros > 1 {
                return Err(ConditionError::NestedMacros);
            }
            Ok(program)
        })
        .map_err(|e| ConditionError::Syntax(format!("cannot start the parser: {e}")))?;
    parsing
        .join()
        .unwrap_or_else(|_| Err(ConditionError::Syntax("the parser failed".into())))
}

/// How deep brackets and runs of unary operators (`!`, `-`) nest in
/// `source`, counting those inside string literals too (over-counting only
/// refuses strange expressions, never lets a deep one through).
fn nesting(source: &str) -> usize {
    let (mut depth, mut deepest, mut unary) = (0usize, 0usize, 0usize);
    for c in source.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        unary = match c {
            '!' | '-' => unary + 1,
            c if c.is_whitespace() => unary,
            _ => 0,
        };
        deepest = deepest.max(depth + unary);
    }
    deepest
}

/// The depth of the tree `e`, and the deepest nesting of list macros
/// (comprehensions) in it.
fn shape(e: &IdedExpr) -> (usize, usize) {
    let children: Vec<&IdedExpr> = match &e.expr {
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Expr::Comprehension(c) => {
            let inner = [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ];
            let (depth, macros) = deepest(inner.into_iter());
            return (depth + 1, macros + 1);
        }
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => entries(&map.entries),
        Expr::Struct(s) => entries(&s.entries),
        Expr::Select(select) => vec![&select.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    };
    let (depth, macros) = deepest(children.into_iter());
    (depth + 1, macros)
}

fn deepest<'e>(children: impl Iterator<Item = &'e IdedExpr>) -> (usize, usize) {
    children
        .map(shape)
        .fold((0, 0), |(d, m), (cd, cm)| (d.max(cd), m.max(cm)))
}

fn entries(entries: &[cel::common::ast::IdedEntryExpr]) -> Vec<&IdedExpr> {
    entries
        .iter()
        .flat_map(|entry| match &entry.expr {
            EntryExpr::StructField(f) => vec![&f.value],
            EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
        })
        .collect()
}

/// The value at a dotted path (`user.name`), if every step is an object key.
fn nested<'v>(input: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(input, |v, key| v.as_object()?.get(key))
}

/// Workglow's `evaluateCondition`: `value` is compared as a number when both
/// sides read as one, else as text.
fn compare(field: Option<&Value>, operator: Operator, value: &str) -> bool {
    use Operator::*;
    let Some(field) = field.filter(|v| !v.is_null()) else {
        return matches!(operator, IsEmpty | IsFalse);
    };
    let text = super::transform::js_string(field);
    let number = js_number(field);
    let other = js_number(&Value::String(value.to_string()));
    let (lower, wanted) = (text.to_lowercase(), value.to_lowercase());
    let empty_array = field.as_array().is_some_and(Vec::is_empty);
    match operator {
        Equals => match (number, other) {
            (Some(a), Some(b)) => a == b,
            _ => text == value,
        },
        NotEquals => match (number, other) {
            (Some(a), Some(b)) => a != b,
            _ => text != value,
        },
        GreaterThan => ordered(number, other, |a, b| a > b),
        GreaterOrEqual => ordered(number, other, |a, b| a >= b),
        LessThan => ordered(number, other, |a, b| a < b),
        LessOrEqual => ordered(number, other, |a, b| a <= b),
        Contains => lower.contains(&wanted),
        StartsWith => lower.starts_with(&wanted),
        EndsWith => lower.ends_with(&wanted),
        IsEmpty => text.is_empty() || empty_array,
        IsNotEmpty => !text.is_empty() && !empty_array,
        IsTrue => truthy(field),
        IsFalse => !truthy(field),
    }
}

fn ordered(a: Option<f64>, b: Option<f64>, op: fn(f64, f64) -> bool) -> bool {
    matches!((a, b), (Some(a), Some(b)) if op(a, b))
}

/// JavaScript's `Number(v)` for JSON values, `None` for NaN.
fn js_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::String(s) if s.trim().is_empty() => Some(0.0),
        Value::String(s) => s.trim().parse().ok(),
        Value::Array(items) if items.is_empty() => Some(0.0),
        Value::Array(items) if items.len() == 1 => js_number(&items[0]),
        _ => None,
    }
}

/// JavaScript's `Boolean(v)`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cel_reads_the_input() {
        let c = Condition::cel("input.score > 0.5 && input.label == 'spam'").unwrap();
        assert_eq!(c.holds(&json!({"score": 0.9, "label": "spam"})), Ok(true));
        assert_eq!(c.holds(&json!({"score": 0.1, "label": "spam"})), Ok(false));
        assert!(
            c.holds(&json!({"label": "spam"})).is_err(),
            "a missing key is an error"
        );
        let not_bool = Condition::cel("input.score").unwrap();
        assert!(not_bool.holds(&json!({"score": 1})).is_err());
    }

    #[test]
    fn bad_expressions_are_refused_at_compile_time() {
        assert!(matches!(
            Condition::cel("input.x >"),
            Err(ConditionError::Syntax(_))
        ));
        let long = format!("input.x == '{}'", "a".repeat(MAX_EXPRESSION_BYTES));
        assert!(matches!(
            Condition::cel(&long),
            Err(ConditionError::TooLong(_))
        ));
        let deep = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
        assert_eq!(Condition::cel(&deep).err(), Some(ConditionError::TooDeep));
        // The longest expressions of the shapes a parser recurses on still
        // compile (or fail cleanly) on a small stack.
        let half = MAX_EXPRESSION_BYTES / 2 - 8;
        let shapes = [
            format!("{}1", "1+".repeat(half)),
            format!("{}1 > 0", "1*".repeat(half)),
            format!("input{}", ".a".repeat(half)),
            format!("input{} == 1", "[0]".repeat(half / 2)),
            format!("{}1 == 1", "(".repeat(MAX_NESTING - 1)),
            format!("{}true", "!".repeat(MAX_NESTING)),
            "true && ".repeat(half / 4) + "true",
            format!("{}1{} == 1", "(".repeat(16), ")".repeat(16)),
            format!("{}true", "true && ".repeat(MAX_DEPTH - 4)),
        ];
        let on_small_stack = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                for s in shapes {
                    if let Ok(c) = Condition::cel(&s) {
                        let _ = c.holds(&serde_json::json!({"a": 1}));
                    }
                }
            })
            .unwrap();
        assert!(on_small_stack.join().is_ok());
        assert!(Condition::cel("input.xs.all(x, x > 0)").is_ok());
        assert_eq!(
            Condition::cel("input.xs.all(x, input.xs.exists(y, y == x))").err(),
            Some(ConditionError::NestedMacros)
        );
    }

    #[test]
    fn operators_behave_as_in_workglow() {
        let op = |field: &str, operator, value: &str, input: Value| {
            Condition::Operator {
                field: field.into(),
                operator,
                value: value.into(),
            }
            .holds(&input)
            .unwrap()
        };
        use Operator::*;
        assert!(op("n", Equals, "10", json!({"n": 10.0})));
        assert!(op("n", Equals, "abc", json!({"n": "abc"})));
        assert!(op("a.b", GreaterThan, "3", json!({"a": {"b": 4}})));
        assert!(!op("a.b", GreaterThan, "x", json!({"a": {"b": 4}})));
        assert!(op("s", Contains, "PAM", json!({"s": "spam!"})));
        assert!(op("s", StartsWith, "sp", json!({"s": "Spam"})));
        assert!(op("xs", IsEmpty, "", json!({"xs": []})));
        assert!(op("missing", IsEmpty, "", json!({})));
        assert!(!op("missing", Equals, "", json!({})));
        assert!(op("flag", IsTrue, "", json!({"flag": "yes"})));
        assert!(op("flag", IsFalse, "", json!({"flag": 0})));
        assert!(op("n", LessOrEqual, "2", json!({"n": "2"})));
    }
}
