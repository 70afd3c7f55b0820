//! JSON values kept for a long time (node outputs, inputs, stored states),
//! made as small as their contents.
//!
//! A `serde_json` object (an `IndexMap`, order kept) made by inserting, by
//! parsing, or by cloning reserves room for at least three entries: a
//! one-port output such as `{"value": 1}` takes ~330 bytes, ~180 compacted.
//! A 100,000-node run keeps a few such values per node. Owns only that;
//! it must not know what the values mean.

use serde_json::{Map, Value};

/// Nesting past which values are left as they are (parsed JSON is at most
/// 128 deep; this bounds the recursion whatever made the value).
const MAX_DEPTH: usize = 256;

/// Shrink every object and array of `value` to its contents.
pub fn compact(value: &mut Value) {
    compact_at(value, 0);
}

fn compact_at(value: &mut Value, depth: usize) {
    if depth >= MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            let mut exact = Map::with_capacity(map.len());
            for (key, mut item) in std::mem::take(map) {
                compact_at(&mut item, depth + 1);
                exact.insert(key, item);
            }
            *map = exact;
        }
        Value::Array(items) => {
            items.shrink_to_fit();
            for item in items {
                compact_at(item, depth + 1);
            }
        }
        _ => {}
    }
}

/// A copy of `value` as small as [`compact`] makes it (`Value::clone` gives
/// every object room for three entries again).
pub fn compact_clone(value: &Value) -> Value {
    compact_clone_at(value, 0)
}

fn compact_clone_at(value: &Value, depth: usize) -> Value {
    if depth >= MAX_DEPTH {
        return value.clone();
    }
    match value {
        Value::Object(map) => {
            // Inserted one by one: collecting reserves by the index's room.
            let mut copy = Map::with_capacity(map.len());
            for (key, item) in map {
                copy.insert(key.clone(), compact_clone_at(item, depth + 1));
            }
            Value::Object(copy)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| compact_clone_at(item, depth + 1))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compacting_keeps_a_value_and_its_key_order() {
        let original = json!({"z": 1, "a": [{"y": null, "b": "s"}, [], {}], "m": {"k": 2.5}});
        let mut compacted = original.clone();
        compact(&mut compacted);
        assert_eq!(compacted, original);
        assert_eq!(compacted.to_string(), original.to_string(), "same order");
        let copy = compact_clone(&original);
        assert_eq!(copy.to_string(), original.to_string());
    }

    #[test]
    fn values_nested_past_the_limit_are_kept_whole() {
        let mut deep = json!(0);
        for _ in 0..MAX_DEPTH + 10 {
            deep = json!({ "d": [deep] });
        }
        let mut compacted = deep.clone();
        compact(&mut compacted);
        assert_eq!(compacted, deep);
        assert_eq!(compact_clone(&deep), deep);
    }
}
