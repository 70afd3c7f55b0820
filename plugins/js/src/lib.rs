//! JavaScript's conversions, for the standard plugins that port Workglow's
//! tasks result for result: `String(value)`, `Number#toString`,
//! `Number#toFixed`, `Math.round`, `JSON.stringify` and UTF-16 lengths.
//!
//! Owns only pure functions on strings, numbers and `serde_json` values; it
//! knows nothing of tasks, plugins or the host.
use serde_json::Value;

/// JavaScript's `String(value)` of a JSON value (arrays joined by `,`, a
/// `null` element as nothing, objects as `[object Object]`).
pub fn string(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                v => string(v),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// JavaScript's `Number.prototype.toString()`: the shortest round-trip
/// digits, exponent form from 1e21 and below 1e-6.
pub fn number(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = v.abs();
    if (1e-6..1e21).contains(&a) {
        return v.to_string();
    }
    let e = format!("{v:e}");
    match e.split_once('e') {
        Some((digits, exp)) if !exp.starts_with('-') => format!("{digits}e+{exp}"),
        _ => e,
    }
}

/// JavaScript's `Number.prototype.toFixed(digits)`: rounded half away
/// from zero on the number's exact decimal value (Rust's `{:.N}` rounds an
/// exact tie to even: `0.03125` is `0.0313` here, `0.0312` there).
pub fn to_fixed(v: f64, digits: usize) -> String {
    if !v.is_finite() || v.abs() >= 1e21 {
        return number(v);
    }
    // Every f64 has at most 1074 fractional digits: this is exact.
    let exact = format!("{:.1074}", v.abs());
    let (whole, fraction) = exact.split_once('.').unwrap_or((&exact, ""));
    let mut kept: Vec<u8> = whole.bytes().chain(fraction.bytes().take(digits)).collect();
    if fraction.as_bytes().get(digits).is_some_and(|d| *d >= b'5') {
        round_up(&mut kept);
    }
    let split = kept.len() - digits;
    let mut out = String::from_utf8_lossy(&kept[..split]).into_owned();
    if digits > 0 {
        out.push('.');
        out.push_str(&String::from_utf8_lossy(&kept[split..]));
    }
    let zero = out.bytes().all(|b| b == b'0' || b == b'.');
    match v < 0.0 && !zero {
        true => format!("-{out}"),
        false => out,
    }
}

/// Adds one to the last of `digits` (ASCII), carrying.
fn round_up(digits: &mut Vec<u8>) {
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return;
        }
    }
    digits.insert(0, b'1');
}

/// JavaScript's `Math.round`: halves round up (towards +∞), so
/// `Math.round(-2.5)` is -2.
pub fn round(v: f64) -> f64 {
    let floor = v.floor();
    match v - floor >= 0.5 {
        true => floor + 1.0,
        false => floor,
    }
}

/// JavaScript's `JSON.stringify(value)`: compact, keys in their order,
/// numbers as `Number#toString` writes them.
pub fn stringify(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Number(n) => out.push_str(&number(n.as_f64().unwrap_or(f64::NAN))),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// JavaScript's white space and line terminators (`\s`, `trim`), as a
/// UTF-16 code unit.
pub fn is_space(u: u16) -> bool {
    matches!(
        u,
        0x09..=0x0D | 0x20 | 0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F
            | 0x3000 | 0xFEFF
    )
}

/// JavaScript's `s.split(/\s+/)`: an empty piece first where `s` starts
/// with white space, and last where it ends with it.
pub fn split_whitespace(s: &str) -> Vec<&str> {
    let space = |c: char| c.len_utf16() == 1 && is_space(c as u16);
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find(space) {
        pieces.push(&rest[..start]);
        let after = &rest[start..];
        rest = &after[after.find(|c| !space(c)).unwrap_or(after.len())..];
        if rest.is_empty() {
            pieces.push("");
            return pieces;
        }
    }
    pieces.push(rest);
    pieces
}

/// The length of `s` in UTF-16 code units, as JavaScript's `length`.
pub fn length(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// JavaScript's `s.substring(0, units)`: the first `units` UTF-16 code
/// units of `s`. A cut inside a surrogate pair gives U+FFFD where
/// JavaScript keeps a lone surrogate (one unit either way).
pub fn prefix(s: &str, units: usize) -> String {
    let mut out = String::new();
    let mut taken = 0;
    for c in s.chars() {
        let n = c.len_utf16();
        if taken + n > units {
            if taken < units {
                out.push(char::REPLACEMENT_CHARACTER);
            }
            break;
        }
        out.push(c);
        taken += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_written_as_javascript_writes_them() {
        assert_eq!(number(1e21), "1e+21");
        assert_eq!(number(1.5e-7), "1.5e-7");
        assert_eq!(number(0.000001), "0.000001");
        assert_eq!(number(-0.0), "0");
        assert_eq!(number(123456789.0), "123456789");
        assert_eq!(
            string(&json!([1, null, "a", [2, 3], {"k": 1}])),
            "1,,a,2,3,[object Object]"
        );
    }

    #[test]
    fn to_fixed_rounds_exact_ties_away_from_zero() {
        assert_eq!(to_fixed(0.03125, 4), "0.0313");
        assert_eq!(to_fixed(-0.03125, 4), "-0.0313");
        assert_eq!(to_fixed(0.5, 4), "0.5000");
        assert_eq!(to_fixed(2.5, 0), "3");
        assert_eq!(to_fixed(9.99996, 4), "10.0000");
        assert_eq!(to_fixed(1.005, 2), "1.00"); // 1.00499999999999989…
        assert_eq!(to_fixed(-0.00001, 4), "0.0000");
        assert_eq!(to_fixed(0.0, 4), "0.0000");
    }

    #[test]
    fn math_round_takes_halves_up() {
        assert_eq!(round(-2.5), -2.0);
        assert_eq!(round(2.5), 3.0);
        assert_eq!(round(0.49999999999999994), 0.0);
        assert_eq!(round(-0.4), 0.0);
    }

    #[test]
    fn stringify_keeps_key_order_and_javascript_numbers() {
        let v = json!({"z": 1, "a": [1e21, "q\"\n"], "m": null});
        assert_eq!(stringify(&v), r#"{"z":1,"a":[1e+21,"q\"\n"],"m":null}"#);
    }

    #[test]
    fn split_whitespace_keeps_empty_ends_as_javascript() {
        assert_eq!(split_whitespace("  a \u{FEFF}b\t"), vec!["", "a", "b", ""]);
        assert_eq!(split_whitespace(""), vec![""]);
        assert_eq!(split_whitespace("a\u{85}b"), vec!["a\u{85}b"]);
    }

    #[test]
    fn lengths_and_prefixes_count_utf16_units() {
        assert_eq!(length("día 🧵"), 6);
        assert_eq!(prefix("día 🧵x", 5), "día \u{FFFD}");
        assert_eq!(prefix("día 🧵x", 6), "día 🧵");
        assert_eq!(prefix("ab", 10), "ab");
    }
}
