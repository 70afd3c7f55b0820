//! JSON Schema helpers: a task type's compiled schemas, its ports, and whether two
//! connected ports can ever agree.
//!
//! Owns the reading of the JSON Schemas that plugins declare. It must not know
//! about graphs or wasm: callers pass schemas in and get answers out.

use std::fmt;

use serde_json::Value;

/// A schema that failed to compile, or a value that failed a schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The declared schema is not valid JSON.
    #[error("{which} schema is not JSON: {message}")]
    NotJson {
        /// `input` or `output`.
        which: &'static str,
        /// The parser's message.
        message: String,
    },
    /// The declared schema is not a valid JSON Schema.
    #[error("{which} schema is not a valid JSON Schema: {message}")]
    Invalid {
        /// `input` or `output`.
        which: &'static str,
        /// What is wrong, with its location in the schema.
        message: String,
    },
    /// The schema does not describe an object, so it has no ports.
    #[error("{which} schema must describe an object (\"type\": \"object\"), found {found}")]
    NotAnObject {
        /// `input` or `output`.
        which: &'static str,
        /// The types it allows.
        found: TypeSet,
    },
}

/// One violation of a schema by a value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    /// JSON Pointer into the value (`/items/0`), empty for the root.
    pub instance_path: String,
    /// JSON Pointer into the schema to the keyword that failed.
    pub schema_path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.instance_path.is_empty() {
            "/"
        } else {
            &self.instance_path
        };
        write!(f, "at {at}: {} (schema {})", self.message, self.schema_path)
    }
}

/// A compiled JSON Schema of an object whose properties are ports.
pub struct ObjectSchema {
    raw: Value,
    validator: jsonschema::Validator,
}

impl fmt::Debug for ObjectSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ObjectSchema").field(&self.raw).finish()
    }
}

impl ObjectSchema {
    /// Parse and compile a schema declared as JSON text.
    pub fn parse(which: &'static str, text: &str) -> Result<Self, SchemaError> {
        let raw: Value = serde_json::from_str(text).map_err(|e| SchemaError::NotJson {
            which,
            message: e.to_string(),
        })?;
        Self::compile(which, raw)
    }

    /// Compile a schema.
    pub fn compile(which: &'static str, raw: Value) -> Result<Self, SchemaError> {
        if let Err(e) = jsonschema::meta::validate(&raw) {
            return Err(SchemaError::Invalid {
                which,
                message: format!("{e} (at {})", e.instance_path()),
            });
        }
        let validator = jsonschema::validator_for(&raw).map_err(|e| SchemaError::Invalid {
            which,
            message: e.to_string(),
        })?;
        let found = types_of(&raw, &raw);
        if !found.contains(JsonType::Object) {
            return Err(SchemaError::NotAnObject { which, found });
        }
        Ok(ObjectSchema { raw, validator })
    }

    /// The schema as declared.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Check `value`; every violation, in document order.
    pub fn check(&self, value: &Value) -> Result<(), Vec<Violation>> {
        if self.validator.is_valid(value) {
            return Ok(());
        }
        Err(self
            .validator
            .iter_errors(value)
            .map(|e| Violation {
                instance_path: e.instance_path().to_string(),
                schema_path: e.schema_path().to_string(),
                message: e.to_string(),
            })
            .collect())
    }

    /// The declared ports (top-level `properties`), in declaration order.
    pub fn ports(&self) -> Vec<&str> {
        self.raw
            .get("properties")
            .and_then(Value::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// True when ports other than the declared ones are allowed: the schema
    /// declares no `properties`, or says `additionalProperties` is true or a schema.
    pub fn is_open(&self) -> bool {
        let declared = self.raw.get("properties").and_then(Value::as_object);
        match self.raw.get("additionalProperties") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Object(_)) => true,
            _ => declared.is_none_or(|m| m.is_empty()),
        }
    }

    /// The schema of one port, if the port exists (declared, or allowed by an open
    /// schema). `*` (the whole object) is the schema itself.
    pub fn port(&self, name: &str) -> Option<&Value> {
        if name == "*" {
            return Some(&self.raw);
        }
        if let Some(s) = self.raw.get("properties").and_then(|p| p.get(name)) {
            return Some(s);
        }
        if !self.is_open() {
            return None;
        }
        match self.raw.get("additionalProperties") {
            Some(s @ Value::Object(_)) => Some(s),
            _ => Some(&Value::Bool(true)),
        }
    }

    /// The JSON types a port's value may have.
    pub fn port_types(&self, name: &str) -> Option<TypeSet> {
        self.port(name).map(|s| types_of(s, &self.raw))
    }

    /// The declared ports with the JSON types each allows, in declaration
    /// order: what the builders match ports by.
    pub fn port_list(&self) -> Vec<(String, TypeSet)> {
        self.ports()
            .into_iter()
            .map(|p| (p.to_string(), self.port_types(p).unwrap_or(TypeSet::ANY)))
            .collect()
    }

    /// The ports listed in `required`.
    pub fn required(&self) -> Vec<&str> {
        self.raw
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
}

/// A JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum JsonType {
    /// `null`
    Null = 1,
    /// `true`/`false`
    Boolean = 2,
    /// A whole number.
    Integer = 4,
    /// Any number.
    Number = 8,
    /// A string.
    String = 16,
    /// An array.
    Array = 32,
    /// An object.
    Object = 64,
}

const ALL_TYPES: [(JsonType, &str); 7] = [
    (JsonType::Null, "null"),
    (JsonType::Boolean, "boolean"),
    (JsonType::Integer, "integer"),
    (JsonType::Number, "number"),
    (JsonType::String, "string"),
    (JsonType::Array, "array"),
    (JsonType::Object, "object"),
];

/// A set of JSON types: what a schema allows at one place.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TypeSet(u8);

impl TypeSet {
    /// Every type (the schema `true`, or no `type` keyword).
    pub const ANY: TypeSet = TypeSet(127);
    /// No type (the schema `false`).
    pub const NONE: TypeSet = TypeSet(0);

    fn of_name(name: &str) -> TypeSet {
        ALL_TYPES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(t, _)| TypeSet::one(*t))
            .unwrap_or(TypeSet::NONE)
    }

    fn one(t: JsonType) -> TypeSet {
        // Every integer is a number, and a number may be integral.
        match t {
            JsonType::Number => TypeSet(JsonType::Number as u8 | JsonType::Integer as u8),
            other => TypeSet(other as u8),
        }
    }

    fn of_value(v: &Value) -> TypeSet {
        TypeSet::one(match v {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => JsonType::Integer,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        })
    }

    /// Whether `t` is allowed.
    pub fn contains(self, t: JsonType) -> bool {
        self.0 & t as u8 != 0
    }

    /// Types in both sets.
    pub fn intersect(self, other: TypeSet) -> TypeSet {
        TypeSet(self.0 & other.0)
    }

    /// Types in either set.
    pub fn union(self, other: TypeSet) -> TypeSet {
        TypeSet(self.0 | other.0)
    }

    /// No type at all.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the types in the set (`integer` and `number` both,
    /// where numbers are allowed), as `weft tasks --json` lists them.
    pub fn names(self) -> Vec<&'static str> {
        ALL_TYPES
            .iter()
            .filter(|(t, _)| self.contains(*t))
            .map(|(_, n)| *n)
            .collect()
    }

    /// The set of the types named (unknown names add nothing).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> TypeSet {
        names
            .into_iter()
            .fold(TypeSet::NONE, |acc, n| acc.union(TypeSet::of_name(n)))
    }
}

impl fmt::Display for TypeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == TypeSet::ANY {
            return f.write_str("any");
        }
        if self.is_empty() {
            return f.write_str("nothing");
        }
        let mut names: Vec<&str> = ALL_TYPES
            .iter()
            .filter(|(t, _)| self.contains(*t))
            .map(|(_, n)| *n)
            .collect();
        if names.contains(&"number") {
            names.retain(|n| *n != "integer");
        }
        f.write_str(&names.join(" or "))
    }
}

impl fmt::Debug for TypeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TypeSet({self})")
    }
}

/// The JSON types `schema` allows, resolving local `$ref`s against `root`.
/// Conservative: where it cannot tell, it answers "any".
pub fn types_of(schema: &Value, root: &Value) -> TypeSet {
    types_of_depth(schema, root, 0)
}

fn types_of_depth(schema: &Value, root: &Value, depth: u32) -> TypeSet {
    if depth > 32 {
        return TypeSet::ANY;
    }
    let obj = match schema {
        Value::Bool(true) => return TypeSet::ANY,
        Value::Bool(false) => return TypeSet::NONE,
        Value::Object(o) => o,
        _ => return TypeSet::ANY,
    };
    let mut set = TypeSet::ANY;
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let target = r.strip_prefix('#').and_then(|p| root.pointer(p));
        if let Some(target) = target {
            set = set.intersect(types_of_depth(target, root, depth + 1));
        }
    }
    match obj.get("type") {
        Some(Value::String(t)) => set = set.intersect(TypeSet::of_name(t)),
        Some(Value::Array(ts)) => {
            let listed = ts
                .iter()
                .filter_map(Value::as_str)
                .fold(TypeSet::NONE, |acc, t| acc.union(TypeSet::of_name(t)));
            set = set.intersect(listed);
        }
        _ => {}
    }
    if let Some(c) = obj.get("const") {
        set = set.intersect(TypeSet::of_value(c));
    }
    if let Some(Value::Array(values)) = obj.get("enum") {
        let listed = values
            .iter()
            .fold(TypeSet::NONE, |acc, v| acc.union(TypeSet::of_value(v)));
        set = set.intersect(listed);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = obj.get(key) {
            let union = options.iter().fold(TypeSet::NONE, |acc, s| {
                acc.union(types_of_depth(s, root, depth + 1))
            });
            set = set.intersect(union);
        }
    }
    if let Some(Value::Array(all)) = obj.get("allOf") {
        for s in all {
            set = set.intersect(types_of_depth(s, root, depth + 1));
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> ObjectSchema {
        ObjectSchema::compile("input", v).unwrap()
    }

    #[test]
    fn closed_schema_knows_its_ports() {
        let s =
            schema(json!({"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}));
        assert_eq!(s.ports(), vec!["a"]);
        assert!(!s.is_open());
        assert!(s.port("b").is_none());
        assert_eq!(s.port_types("a").unwrap().to_string(), "string");
        assert_eq!(s.required(), vec!["a"]);
    }

    #[test]
    fn open_schema_accepts_any_port() {
        let s = schema(json!({"type":"object","additionalProperties":true}));
        assert!(s.is_open());
        assert_eq!(s.port_types("anything").unwrap(), TypeSet::ANY);
    }

    #[test]
    fn types_follow_refs_unions_and_nullables() {
        let root = json!({
            "type":"object",
            "properties":{
                "inner":{"$ref":"#/$defs/Inner"},
                "maybe":{"anyOf":[{"$ref":"#/$defs/Inner"},{"type":"null"}]},
                "n":{"type":["integer","null"]},
                "e":{"enum":["a","b"]}
            },
            "$defs":{"Inner":{"type":"object"}}
        });
        let s = schema(root);
        assert_eq!(s.port_types("inner").unwrap().to_string(), "object");
        assert_eq!(s.port_types("maybe").unwrap().to_string(), "null or object");
        assert_eq!(s.port_types("n").unwrap().to_string(), "null or integer");
        assert_eq!(s.port_types("e").unwrap().to_string(), "string");
    }

    #[test]
    fn integers_are_numbers() {
        let int = TypeSet::of_name("integer");
        let num = TypeSet::of_name("number");
        assert!(!int.intersect(num).is_empty());
        assert!(int.intersect(TypeSet::of_name("string")).is_empty());
    }

    #[test]
    fn rejects_non_object_and_invalid_schemas() {
        assert!(matches!(
            ObjectSchema::compile("input", json!({"type":"string"})),
            Err(SchemaError::NotAnObject { .. })
        ));
        assert!(matches!(
            ObjectSchema::compile("output", json!({"type": 12})),
            Err(SchemaError::Invalid { .. })
        ));
        assert!(matches!(
            ObjectSchema::parse("input", "{nope"),
            Err(SchemaError::NotJson { .. })
        ));
    }

    #[test]
    fn violations_name_the_path() {
        let s = schema(json!({"type":"object","properties":{"a":{"type":"integer"}}}));
        let v = s.check(&json!({"a":"x"})).unwrap_err();
        assert_eq!(v[0].instance_path, "/a");
        assert!(v[0].to_string().contains("at /a"), "{}", v[0]);
    }
}
