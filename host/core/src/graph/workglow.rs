//! Workglow's JSON, as Weft reads it.
//!
//! Owns turning what Workglow (npm `@workglow/task-graph`) writes into
//! Weft's graph shape, key by key, before the graph is parsed: the graph
//! form of `TaskGraph.toJSON()` and `Workflow.toJSON()` (with its boundary
//! `InputTask`/`OutputTask` nodes), and the dependency form of
//! `toDependencyJSON()`. docs/graph-format.md has the table. A key Weft does
//! not support is an error naming the key and its node ("not supported:
//! …"), never silently dropped. It must not know task types: Workglow's
//! class names of the standard tasks are aliases the registry resolves.

use serde_json::{Map, Value, json};

use super::kind::{CONDITIONAL, FALLBACK, MAP, PASS, REDUCE, WHILE};

mod chat;

/// Workglow's control-flow classes, and the node kinds they are.
const CLASSES: [(&str, &str); 11] = [
    ("GraphAsTask", super::COMPOUND),
    ("Graph", super::COMPOUND),
    ("Workflow", super::COMPOUND),
    ("ConditionalTask", CONDITIONAL),
    ("MapTask", MAP),
    ("ForEachTask", MAP),
    ("FallbackTask", FALLBACK),
    ("ReduceTask", REDUCE),
    ("WhileTask", WHILE),
    ("InputTask", PASS),
    ("OutputTask", PASS),
];

/// Workglow's human-in-the-loop classes: wait nodes ([`super::wait`]).
const HUMAN: [&str; 2] = ["HumanApprovalTask", "HumanInputTask"];

/// Workglow's task classes that are Weft's standard task types under
/// another name: same ports, same behaviour. (Others do the same job with
/// other port names, e.g. `math.add` gives `value` where `ScalarAddTask`
/// gives `result`: `scalar.add` is its alias.)
pub const ALIASES: [(&str, &str); 88] = [
    ("TextSummaryTask", "ai.text-summary"),
    ("ScalarAddTask", "scalar.add"),
    ("ScalarSubtractTask", "scalar.subtract"),
    ("ScalarMultiplyTask", "scalar.multiply"),
    ("ScalarDivideTask", "scalar.divide"),
    ("ScalarSumTask", "scalar.sum"),
    ("ScalarMaxTask", "scalar.max"),
    ("ScalarMinTask", "scalar.min"),
    ("ScalarAbsTask", "scalar.abs"),
    ("ScalarCeilTask", "scalar.ceil"),
    ("ScalarFloorTask", "scalar.floor"),
    ("ScalarRoundTask", "scalar.round"),
    ("ScalarTruncTask", "scalar.trunc"),
    ("StringConcatTask", "string.concat"),
    ("StringIncludesTask", "string.includes"),
    ("StringJoinTask", "string.join"),
    ("StringLengthTask", "string.length"),
    ("StringLowerCaseTask", "string.lower-case"),
    ("StringUpperCaseTask", "string.upper-case"),
    ("StringReplaceTask", "string.replace"),
    ("StringSliceTask", "string.slice"),
    ("StringTemplateTask", "string.template"),
    ("StringTrimTask", "string.trim"),
    ("VectorSumTask", "vector.sum"),
    ("VectorSubtractTask", "vector.subtract"),
    ("VectorMultiplyTask", "vector.multiply"),
    ("VectorDivideTask", "vector.divide"),
    ("VectorScaleTask", "vector.scale"),
    ("VectorNormalizeTask", "vector.normalize"),
    ("VectorDistanceTask", "vector.distance"),
    ("VectorDotProductTask", "vector.dot-product"),
    ("RegexTask", "string.regex"),
    ("TemplateTask", "string.render"),
    ("JsonPathTask", "json.select"),
    ("DateFormatTask", "util.date-format"),
    ("ImageBlurTask", "image.blur"),
    ("ImageBorderTask", "image.border"),
    ("ImageBrightnessTask", "image.brightness"),
    ("ImageContrastTask", "image.contrast"),
    ("ImageCropTask", "image.crop"),
    ("ImageFlipTask", "image.flip"),
    ("ImageGrayscaleTask", "image.grayscale"),
    ("ImageInvertTask", "image.invert"),
    ("ImagePixelateTask", "image.pixelate"),
    ("ImagePosterizeTask", "image.posterize"),
    ("ImageResizeTask", "image.resize"),
    ("ImageRotateTask", "image.rotate"),
    ("ImageSepiaTask", "image.sepia"),
    ("ImageTextTask", "image.text"),
    ("ImageThresholdTask", "image.threshold"),
    ("ImageTintTask", "image.tint"),
    ("ImageTransparencyTask", "image.transparency"),
    ("TextChunkerTask", "rag.text-chunker"),
    ("FetchUrlTask", "net.fetch-url"),
    ("ContextBuilderTask", "rag.context-builder"),
    ("QueryExpanderTask", "rag.query-expander"),
    ("VectorQuantizeTask", "vector.quantize"),
    ("ChunkVectorUpsertTask", "rag.chunk-vector-upsert"),
    ("ChunkRetrievalTask", "rag.chunk-retrieval"),
    ("RerankerTask", "rag.reranker"),
    ("TopicSegmenterTask", "rag.topic-segmenter"),
    ("StructuralParserTask", "rag.structural-parser"),
    ("HierarchicalChunkerTask", "rag.hierarchical-chunker"),
    ("DocumentUpsertTask", "rag.document-upsert"),
    ("KbToDocumentsTask", "rag.kb-to-documents"),
    ("HierarchyJoinTask", "rag.hierarchy-join"),
    ("KbSearchTask", "rag.kb-search"),
    ("KbDeleteTask", "rag.kb-delete"),
    ("KbAddDocumentTask", "rag.kb-add-document"),
    ("KbReindexTask", "rag.kb-reindex"),
    ("DocumentEnricherTask", "rag.document-enricher"),
    ("FileLoaderTask", "net.file-loader"),
    (
        "TextNamedEntityRecognitionTask",
        "ai.text-named-entity-recognition",
    ),
    ("TextFillMaskTask", "ai.text-fill-mask"),
    ("TextClassificationTask", "ai.text-classification"),
    ("TextRerankerTask", "ai.text-reranker"),
    ("TextLanguageDetectionTask", "ai.text-language-detection"),
    ("StructuredGenerationTask", "ai.structured-generation"),
    ("SplitTask", "util.split"),
    ("ToolCallingTask", "ai.tool-calling"),
    ("BackgroundRemovalTask", "ai.background-removal"),
    ("FaceDetectorTask", "ai.face-detector"),
    ("ImageToTextTask", "ai.image-to-text"),
    ("ImageGenerateTask", "ai.image-generate"),
    ("ImageEditTask", "ai.image-edit"),
    ("ModelDownloadTask", "ai.model-download"),
    ("ModelDownloadRemoveTask", "ai.model-remove"),
    ("ModelSearchTask", "ai.model-search"),
];

/// The node kind Workglow's class `class` reads as (a control-flow class,
/// a boundary task, a human-in-the-loop task, a chat with a person), if it
/// is one of those.
pub fn node_kind_of(class: &str) -> Option<&'static str> {
    match class {
        _ if HUMAN.contains(&class) => Some(super::WAIT),
        _ if chat::turn_of(class).is_some() => Some(WHILE),
        _ => CLASSES.iter().find(|(c, _)| *c == class).map(|(_, k)| *k),
    }
}

/// The task type `name` is an alias of, if it is one.
pub fn alias_of(name: &str) -> Option<&'static str> {
    ALIASES.iter().find(|(a, _)| *a == name).map(|(_, id)| *id)
}

/// The aliases of task type `id`.
pub fn aliases_of(id: &str) -> Vec<&'static str> {
    ALIASES
        .iter()
        .filter(|(_, t)| *t == id)
        .map(|(a, _)| *a)
        .collect()
}

/// Workglow's node `config` keys and Weft's names for them (`None`: the
/// same name, already one of Weft's settings or aliases).
const CONFIG_KEYS: [(&str, Option<&str>); 13] = [
    ("title", None),
    ("description", None),
    ("timeout", Some("timeout_ms")),
    ("cacheable", Some("cache")),
    ("inputSchema", Some("input_schema")),
    ("outputSchema", Some("output_schema")),
    ("extras", None),
    ("defaultBranch", None),
    ("exclusive", None),
    ("concurrencyLimit", None),
    ("batchSize", None),
    ("maxIterations", None),
    ("compoundMerge", Some("merge")),
];

/// Whether `value` is in a shape only Workglow writes: the dependency
/// form, or a graph with a node that has a Workglow-only key or class.
pub fn is_workglow(value: &Value) -> bool {
    match value {
        Value::Array(_) => true,
        Value::Object(graph) => graph
            .get("tasks")
            .and_then(Value::as_array)
            .is_some_and(|tasks| tasks.iter().any(node_is_workglow)),
        _ => false,
    }
}

fn node_is_workglow(node: &Value) -> bool {
    let Some(node) = node.as_object() else {
        return false;
    };
    let class = node.get("type").and_then(Value::as_str).unwrap_or_default();
    let config_keys = node
        .get("config")
        .and_then(Value::as_object)
        .is_some_and(|c| {
            c.keys()
                .any(|k| CONFIG_KEYS.iter().any(|(w, weft)| w == k && weft.is_some()))
                || c.contains_key("conditionConfig")
                || c.contains_key("conditionOperator")
                || c.get("extras").and_then(|e| e.get("weft")).is_some()
        });
    [
        "subgraph",
        "merge",
        "entitlements",
        "dependencies",
        "subtasks",
    ]
    .iter()
    .any(|k| node.contains_key(*k))
        || CLASSES.iter().any(|(c, _)| *c == class)
        || HUMAN.contains(&class)
        || chat::turn_of(class).is_some()
        || config_keys
        || node
            .get("subgraph")
            .or_else(|| node.get("graph"))
            .is_some_and(is_workglow)
}

/// `value`, written by Workglow, in Weft's graph shape; or what in it Weft
/// does not support, located (`tasks[2] ("grp"): …`).
pub fn to_weft(value: Value) -> Result<Value, String> {
    match value {
        Value::Array(tasks) => graph_to_weft(from_dependencies(tasks, "")?, ""),
        Value::Object(graph) => graph_to_weft(graph, ""),
        _ => Err("a graph is a JSON object (or, in Workglow's dependency form, an array)".into()),
    }
}

/// A graph object: its nodes converted, its dataflows kept (their ids as
/// strings).
fn graph_to_weft(mut graph: Map<String, Value>, at: &str) -> Result<Value, String> {
    let tasks = match graph.remove("tasks") {
        Some(Value::Array(tasks)) => tasks,
        None => Vec::new(),
        Some(_) => return Err(format!("{at}`tasks` is not an array")),
    };
    let mut out = Vec::with_capacity(tasks.len());
    for (i, node) in tasks.into_iter().enumerate() {
        out.push(node_to_weft(node, &format!("{at}tasks[{i}]"))?);
    }
    let mut flows = match graph.remove("dataflows") {
        Some(Value::Array(flows)) => flows,
        None => Vec::new(),
        Some(_) => return Err(format!("{at}`dataflows` is not an array")),
    };
    for flow in flows.iter_mut().filter_map(Value::as_object_mut) {
        for key in ["sourceTaskId", "targetTaskId"] {
            if let Some(id) = flow.get_mut(key) {
                *id = id_string(id.take());
            }
        }
    }
    if let Some(key) = graph.keys().next() {
        return Err(format!("{at}not supported: graph key `{key}`"));
    }
    Ok(json!({"tasks": out, "dataflows": flows}))
}

/// A node id as Weft keeps it: a string (Workglow allows any value).
fn id_string(id: Value) -> Value {
    match id {
        Value::String(s) => Value::String(s),
        other => Value::String(other.to_string()),
    }
}

/// One node: its class, config keys, subgraph and merge in Weft's terms.
fn node_to_weft(node: Value, at: &str) -> Result<Value, String> {
    let Value::Object(mut node) = node else {
        return Err(format!("{at} is not an object"));
    };
    let id = node.get("id").cloned().map(id_string);
    let at = format!("{at} (node {})", id.unwrap_or_default());
    if let Some(id) = node.get_mut("id") {
        *id = id_string(id.take());
    }
    let class = node
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some((_, kind)) = CLASSES.iter().find(|(c, _)| *c == class) {
        node.insert("type".into(), Value::from(*kind));
    }
    node.remove("entitlements"); // what it would use, written for people
    if class == "FallbackTask" {
        fallback_to_weft(&mut node, &at)?;
    }
    if let Some(turn) = chat::turn_of(&class) {
        chat::to_weft(&mut node, turn, &at)?;
    }
    if HUMAN.contains(&class.as_str()) {
        let config = super::wait::human_to_weft(&class, node.remove("config"), &at)?;
        node.insert("type".into(), Value::from(super::WAIT));
        node.insert("config".into(), config_to_weft(Value::Object(config), &at)?);
    }
    if let Some(config) = node.remove("config") {
        node.insert("config".into(), config_to_weft(config, &at)?);
    }
    let one_leaf = match node.get("subgraph") {
        Some(Value::Object(inner)) => leaves(inner) <= 1,
        _ => true,
    };
    // With one leaf, Workglow's default merge is what Weft does anyway.
    let merge = node
        .remove("merge")
        .filter(|m| !(one_leaf && m == "PROPERTY_ARRAY"));
    if let Some(merge) = merge {
        let config = node.entry("config").or_insert_with(|| json!({}));
        if let Some(config) = config.as_object_mut() {
            config.insert("merge".into(), merge);
        }
    }
    if let Some(inner) = node.remove("subgraph") {
        let Value::Object(inner) = inner else {
            return Err(format!("{at}: `subgraph` is not an object"));
        };
        node.insert(
            "graph".into(),
            graph_to_weft(inner, &format!("{at}, in its subgraph: "))?,
        );
    }
    for key in ["dependencies", "subtasks"] {
        if node.contains_key(key) {
            return Err(format!(
                "{at}: `{key}` belongs to the dependency form (an array of tasks), not a graph's `tasks`"
            ));
        }
    }
    Ok(Value::Object(node))
}

/// A FallbackTask's alternatives as a fallback node's: in `data` mode each
/// alternative is inputs given over the node's to its subgraph (as Weft's
/// `alternatives[].defaults` are); in `task` mode (the default) each task
/// of its subgraph is an alternative, run on the node's input, which then
/// wins over the task's own defaults where Weft's alternative defaults win:
/// taken only when those tasks have none.
fn fallback_to_weft(node: &mut Map<String, Value>, at: &str) -> Result<(), String> {
    let config = node.entry("config").or_insert_with(|| json!({}));
    let Value::Object(config) = config else {
        return Err(format!("{at}: `config` is not an object"));
    };
    let mode = config.remove("fallbackMode");
    let given = config.remove("alternatives");
    let alternatives: Vec<Value> = match mode.as_ref().and_then(Value::as_str).unwrap_or("task") {
        "data" => given
            .and_then(|a| a.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|defaults| json!({ "defaults": defaults }))
            .collect(),
        "task" => {
            let inner = node.remove("subgraph");
            let tasks = inner
                .as_ref()
                .and_then(|g| g.get("tasks"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut alternatives = Vec::new();
            for t in tasks {
                let defaults = t.get("defaults").cloned().unwrap_or_else(|| json!({}));
                let plain = defaults.as_object().is_some_and(Map::is_empty)
                    && t.get("config").is_none()
                    && t.get("subgraph").is_none();
                if !plain {
                    return Err(format!(
                        "{at}: not supported: a task-mode FallbackTask whose tasks have defaults, \
                         config or subgraphs (there the node's input wins over a task's defaults; \
                         in Weft an alternative's defaults win)"
                    ));
                }
                alternatives.push(json!({ "task": t.get("type").cloned().unwrap_or_default() }));
            }
            alternatives
        }
        other => return Err(format!("{at}: not supported: fallbackMode `{other}`")),
    };
    let config = node.entry("config").or_insert_with(|| json!({}));
    if let Value::Object(config) = config {
        config.insert("alternatives".into(), Value::Array(alternatives));
    }
    Ok(())
}

/// A node's `config`: Workglow's keys renamed; any other key of Workglow's
/// is not supported.
fn config_to_weft(config: Value, at: &str) -> Result<Value, String> {
    let Value::Object(config) = config else {
        return Err(format!("{at}: `config` is not an object"));
    };
    let mut out = Map::new();
    for (key, value) in config {
        // Weft's own settings, as `from_weft` keeps them.
        if let ("extras", Value::Object(mut extras)) = (key.as_str(), value.clone()) {
            if let Some(Value::Object(weft)) = extras.remove("weft") {
                out.extend(weft);
            }
            if !extras.is_empty() {
                out.insert("extras".into(), Value::Object(extras));
            }
            continue;
        }
        // A WhileTask's serialisable condition, on each iteration's output.
        if let Some(part) = ["conditionField", "conditionOperator", "conditionValue"]
            .iter()
            .position(|k| *k == key)
        {
            let condition = out
                .entry("condition")
                .or_insert_with(|| json!({"field": ""}));
            if let Value::Object(c) = condition {
                c.insert(["field", "operator", "value"][part].into(), value);
            }
            continue;
        }
        // Workglow chains iterations by default, as Weft always does.
        if key == "chainIterations" && value == Value::Bool(true) {
            continue;
        }
        // A ConditionalTask's serialisable branches.
        if key == "conditionConfig" {
            out.extend(condition_config(value, at)?);
            continue;
        }
        let weft = match CONFIG_KEYS.iter().find(|(w, _)| *w == key) {
            Some((_, Some(weft))) => weft.to_string(),
            Some((_, None)) => key,
            // Weft's own keys pass (their typos are the parser's errors).
            None if !key.contains(char::is_uppercase) && key != "flatten" => key,
            None => return Err(format!("{at}: not supported: config key `{key}`")),
        };
        let value = match (weft.as_str(), value) {
            ("timeout_ms", Value::Number(ms)) => match ms.as_f64() {
                Some(ms) if ms.is_finite() && ms >= 0.0 => Value::from(ms.ceil() as u64),
                _ => return Err(format!("{at}: `timeout` must be a number of milliseconds")),
            },
            ("maxIterations", Value::String(s)) if s == "unbounded" => continue,
            (_, value) => value,
        };
        out.insert(weft, value);
    }
    Ok(Value::Object(out))
}

/// A ConditionalTask's `conditionConfig` (`{branches: [{id, field,
/// operator, value}], exclusive, defaultBranch}`) as a conditional's
/// settings, its output ports in Workglow's form (`split_ports`).
fn condition_config(value: Value, at: &str) -> Result<Map<String, Value>, String> {
    let Value::Object(mut config) = value else {
        return Err(format!("{at}: `conditionConfig` is not an object"));
    };
    let mut out = Map::new();
    out.insert("split_ports".into(), Value::Bool(true));
    for (from, to) in [
        ("branches", "branches"),
        ("exclusive", "exclusive"),
        ("defaultBranch", "default_branch"),
    ] {
        if let Some(v) = config.remove(from) {
            out.insert(to.into(), v);
        }
    }
    if let Some(key) = config.keys().next() {
        return Err(format!("{at}: not supported: `conditionConfig.{key}`"));
    }
    Ok(out)
}

/// The graph form of the dependency form: tasks with `dependencies`
/// (`{port: {id, output}}`, or an array of them for fan-in) and compound
/// tasks with `subtasks`.
fn from_dependencies(tasks: Vec<Value>, at: &str) -> Result<Map<String, Value>, String> {
    let mut nodes = Vec::with_capacity(tasks.len());
    let mut flows = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let place = format!("{at}[{i}]");
        let Value::Object(mut task) = task else {
            return Err(format!("{place} is not an object"));
        };
        let id = task.get("id").cloned().map(id_string).unwrap_or_default();
        let here = format!("{place} (node {id})");
        if let Some(deps) = task.remove("dependencies") {
            flows.extend(dependency_flows(deps, &id, &here)?);
        }
        if let Some(sub) = task.remove("subtasks") {
            let Value::Array(sub) = sub else {
                return Err(format!("{here}: `subtasks` is not an array"));
            };
            let inner = from_dependencies(sub, &format!("{here}, in its subtasks: "))?;
            task.insert("subgraph".into(), Value::Object(inner));
        }
        nodes.push(Value::Object(task));
    }
    let mut graph = Map::new();
    graph.insert("tasks".into(), Value::Array(nodes));
    graph.insert("dataflows".into(), Value::Array(flows));
    Ok(graph)
}

/// The dataflows a task's `dependencies` describe, in port order then
/// array order.
fn dependency_flows(deps: Value, target: &Value, at: &str) -> Result<Vec<Value>, String> {
    let Value::Object(deps) = deps else {
        return Err(format!("{at}: `dependencies` is not an object"));
    };
    let mut flows = Vec::new();
    for (port, sources) in deps {
        let sources = match sources {
            Value::Array(many) => many,
            one => vec![one],
        };
        for source in sources {
            let (Some(id), Some(output)) = (source.get("id"), source.get("output")) else {
                return Err(format!(
                    "{at}: dependency of port `{port}` needs `id` and `output`"
                ));
            };
            flows.push(json!({
                "sourceTaskId": id_string(id.clone()),
                "sourceTaskPortId": output,
                "targetTaskId": target,
                "targetTaskPortId": port,
            }));
        }
    }
    Ok(flows)
}

/// `graph` as Workglow's `toJSON()` writes it, for its
/// `createGraphFromGraphJSON`: compound nodes as `GraphAsTask` with their
/// `subgraph`, `config` keys under Workglow's names, `defaults` on every
/// node, Weft's own settings kept under `extras.weft` (Workglow keeps
/// `extras` as they are; [`to_weft`] reads them back). Or which node has no
/// Workglow form (the built-in kinds other than `graph` and `pass`: their
/// settings do not mean the same there).
pub fn from_weft(graph: &super::Graph) -> Result<Value, String> {
    let value = serde_json::to_value(graph).map_err(|e| e.to_string())?;
    let Value::Object(graph) = value else {
        return Err("a graph serializes as an object".into());
    };
    graph_from_weft(graph, "")
}

fn graph_from_weft(mut graph: Map<String, Value>, at: &str) -> Result<Value, String> {
    let tasks = match graph.remove("tasks") {
        Some(Value::Array(tasks)) => tasks,
        _ => Vec::new(),
    };
    // A pass node is a boundary: Workglow's InputTask where nothing feeds it.
    let fed: std::collections::HashSet<String> = graph
        .get("dataflows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.get("targetTaskId")?.as_str().map(str::to_string))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for (i, node) in tasks.into_iter().enumerate() {
        out.push(node_from_weft(node, &format!("{at}tasks[{i}]"), &fed)?);
    }
    let flows = graph.remove("dataflows").unwrap_or_else(|| json!([]));
    Ok(json!({"tasks": out, "dataflows": flows}))
}

fn node_from_weft(
    node: Value,
    at: &str,
    fed: &std::collections::HashSet<String>,
) -> Result<Value, String> {
    let Value::Object(mut node) = node else {
        return Err(format!("{at} is not an object"));
    };
    let id = node
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let at = format!("{at} (node \"{id}\")");
    let kind = node
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let class = match kind.as_str() {
        super::COMPOUND => Some("GraphAsTask"),
        PASS if fed.contains(&id) => Some("OutputTask"),
        PASS => Some("InputTask"),
        k if super::kind::is_kind(k) => {
            return Err(format!(
                "{at}: a `{k}` node has no Workglow form Weft writes (its settings mean other things there)"
            ));
        }
        _ => None,
    };
    if let Some(class) = class {
        node.insert("type".into(), Value::from(class));
    }
    node.remove("name");
    node.entry("defaults").or_insert_with(|| json!({}));
    let mut merge = None;
    if let Some(Value::Object(config)) = node.remove("config") {
        let (config, m) = config_from_weft(config);
        merge = m;
        if !config.is_empty() {
            node.insert("config".into(), Value::Object(config));
        }
    }
    if let Some(Value::Object(inner)) = node.remove("graph") {
        if merge.is_none() && leaves(&inner) > 1 {
            return Err(format!(
                "{at}: its subgraph has several leaves; Workglow would collect their ports \
                 into arrays where Weft takes each port from the leaf that has it \
                 (set `merge` to say which)"
            ));
        }
        let inner = graph_from_weft(inner, &format!("{at}, in its subgraph: "))?;
        node.insert(
            "merge".into(),
            merge.unwrap_or_else(|| json!("PROPERTY_ARRAY")),
        );
        node.insert("subgraph".into(), inner);
    }
    Ok(Value::Object(node))
}

/// How many nodes of graph JSON `graph` feed no other.
fn leaves(graph: &Map<String, Value>) -> usize {
    let feeding: std::collections::HashSet<&str> = graph
        .get("dataflows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.get("sourceTaskId")?.as_str())
        .collect();
    graph
        .get("tasks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("id")?.as_str())
        .filter(|id| !feeding.contains(id))
        .count()
}

/// A node's config under Workglow's names, Weft's own settings under
/// `extras.weft`; and its `merge`, which Workglow writes beside `config`.
fn config_from_weft(config: Map<String, Value>) -> (Map<String, Value>, Option<Value>) {
    let mut out = Map::new();
    let mut weft = Map::new();
    let mut merge = None;
    for (key, value) in config {
        let workglow = CONFIG_KEYS
            .iter()
            .find(|(w, weft)| weft.unwrap_or(w) == key && *w != "compoundMerge");
        match workglow {
            _ if key == "merge" => merge = Some(value),
            Some((w, _)) => {
                out.insert(w.to_string(), value);
            }
            None => {
                weft.insert(key, value);
            }
        }
    }
    if !weft.is_empty() {
        let extras = out.entry("extras").or_insert_with(|| json!({}));
        if let Value::Object(extras) = extras {
            extras.insert("weft".into(), Value::Object(weft));
        }
    }
    (out, merge)
}
