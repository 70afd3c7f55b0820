//! Task types and the registry that knows them.
//!
//! Owns what a task type is (metadata, compiled schemas, how it runs), the
//! registry of all task types a host knows (the standard plugins, a plugins
//! folder, native Rust tasks), and the errors a task run can end with. Running one
//! task here means: check the input against its schema, run it under its
//! timeout, check the output. It must not know about graphs or scheduling.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::event::NodeEvents;
use crate::grant::{Grants, Resource};
use crate::schema::{ObjectSchema, SchemaError, Violation};

/// What a task knows about the run it is part of.
#[derive(Clone)]
pub struct TaskContext {
    /// The run's id.
    pub run_id: String,
    /// The node's id.
    pub node_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Stable across attempts of this node in this run.
    pub idempotency_key: String,
    /// Where the task's logs and progress go; `None` drops them.
    pub events: Option<NodeEvents>,
    /// What the run's owner may use (models a plugin asks for are checked
    /// against it as they are called).
    pub grants: Arc<Grants>,
}

impl TaskContext {
    /// A context for node `node_id` of run `run_id`, first attempt.
    pub fn new(run_id: &str, node_id: &str) -> Self {
        TaskContext {
            run_id: run_id.to_string(),
            node_id: node_id.to_string(),
            attempt: 1,
            idempotency_key: format!("{run_id}/{node_id}"),
            events: None,
            grants: Arc::new(Grants::all()),
        }
    }
}

/// How one run of a task ended without an output.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskError {
    /// The input does not fit the task type's input schema (checked by the host).
    #[error("input does not match the input schema of `{task}`: {}", join(.violations))]
    InputSchema {
        /// The task type.
        task: String,
        /// What is wrong.
        violations: Vec<Violation>,
    },
    /// The task said its input makes no sense.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The task said it failed.
    #[error("failed: {0}")]
    Failed(String),
    /// The task failed and may succeed if tried again.
    #[error("retryable failure: {message}")]
    Retryable {
        /// What went wrong.
        message: String,
        /// The least delay before retrying, as asked by the task.
        delay: Option<Duration>,
    },
    /// The task was cancelled.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// The task's code trapped (a panic, `unreachable`, an out-of-bounds access...).
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The trap and, where available, the guest's stderr and a backtrace.
        message: String,
    },
    /// The task ran past its wall-clock limit.
    #[error("timed out after {} ms", .limit.as_millis())]
    Timeout {
        /// The limit it ran into.
        limit: Duration,
    },
    /// The task tried to use more memory than its plugin may.
    #[error("plugin `{plugin}` exceeded its memory limit of {} MiB", .limit_bytes >> 20)]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// The limit, in bytes.
        limit_bytes: u64,
    },
    /// The task used up its plugin's fuel (`[limits] fuel`).
    #[error("plugin `{plugin}` ran out of fuel (limit {limit} per run)")]
    FuelExhausted {
        /// The plugin.
        plugin: String,
        /// The limit.
        limit: u64,
    },
    /// The output is larger than the host accepts.
    #[error("output is {size} bytes, over the limit of {limit} bytes")]
    OutputTooLarge {
        /// The output's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The output is not a JSON object.
    #[error("output is not a JSON object: {0}")]
    BadOutput(String),
    /// The output does not fit the task type's output schema.
    #[error("output does not match the output schema of `{task}`: {}", join(.violations))]
    OutputSchema {
        /// The task type.
        task: String,
        /// What is wrong.
        violations: Vec<Violation>,
    },
    /// The host could not run the task (instantiation failed, ...).
    #[error("host error: {0}")]
    Host(String),
    /// The run's owner is not granted a resource the task was to use
    /// ([`crate::grant`]).
    #[error("{0}")]
    NotGranted(String),
}

impl TaskError {
    /// Its kind, as in JSON (`failed`, `timeout`, `trap`, …): what an error
    /// port's value names.
    pub fn kind(&self) -> String {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m.keys().next().cloned().unwrap_or_default(),
            Ok(Value::String(s)) => s,
            _ => "error".into(),
        }
    }
}

fn join(v: &[Violation]) -> String {
    const SHOWN: usize = 5;
    let mut s: Vec<String> = v.iter().take(SHOWN).map(ToString::to_string).collect();
    if v.len() > SHOWN {
        s.push(format!("and {} more", v.len() - SHOWN));
    }
    s.join("; ")
}

/// A task implemented in Rust inside the host process (the seeds' LambdaTask).
pub type NativeFn = Arc<
    dyn Fn(Value, TaskContext) -> Pin<Box<dyn Future<Output = Result<Value, TaskError>> + Send>>
        + Send
        + Sync,
>;

/// The task types of one loaded wasm component, run by the plugin host
/// (`weft-plugin`), each run in a fresh sandboxed instance.
#[async_trait::async_trait]
pub trait Component: Send + Sync {
    /// The SHA-256 of the component's bytes (hex): what a run is pinned
    /// to, and part of each output-cache key.
    fn digest(&self) -> &str;

    /// Run task type `task` on `input` within `timeout`.
    async fn run(
        &self,
        task: &str,
        input: &Value,
        ctx: &TaskContext,
        timeout: Duration,
    ) -> Result<Value, TaskError>;
}

/// How a task type runs.
#[derive(Clone)]
#[non_exhaustive]
pub enum Implementation {
    /// In a fresh instance of a wasm component.
    Wasm(Arc<dyn Component>),
    /// As a Rust closure in the host.
    Native(NativeFn),
    /// As a whole graph: the runner runs its plan (see
    /// [`crate::graph::subgraph`]); [`TaskType::execute`] cannot.
    Graph(Arc<crate::graph::subgraph::Subgraph>),
}

/// A task type: what a graph node's `type` names.
pub struct TaskType {
    /// Unique id, e.g. `text.split`.
    pub id: String,
    /// Version of its behaviour.
    pub version: String,
    /// Human title.
    pub title: String,
    /// Category for listings.
    pub category: String,
    /// What it does.
    pub description: String,
    /// Schema of its input object.
    pub input: ObjectSchema,
    /// Schema of its output object.
    pub output: ObjectSchema,
    /// Whether it changes anything outside its output.
    pub side_effects: bool,
    /// Whether its output may be served from the cache.
    pub cacheable: bool,
    /// Whether it may call models or the network (a preview does not run
    /// it).
    pub reaches_out: bool,
    /// Input ports that name a resource a user must be granted (a folder, a
    /// database, a model): checked at submit and when the task starts.
    pub resources: Vec<(String, Resource)>,
    /// Default wall-clock limit per run.
    pub timeout: Duration,
    /// The plugin that provides it (`native` for Rust tasks).
    pub plugin: String,
    /// How it runs.
    pub implementation: Implementation,
}

impl std::fmt::Debug for TaskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskType")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

impl TaskType {
    /// The SHA-256 of the wasm component that runs it (none for native
    /// and built-in types).
    pub fn component(&self) -> Option<&str> {
        match &self.implementation {
            Implementation::Wasm(c) => Some(c.digest()),
            _ => None,
        }
    }

    /// The description of the task type as listed by `weft tasks --json`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "category": self.category,
            "description": self.description,
            "input_schema": self.input.raw(),
            "output_schema": self.output.raw(),
            "side_effects": self.side_effects,
            "cacheable": self.cacheable,
            "reaches_out": self.reaches_out,
            "timeout_ms": self.timeout.as_millis() as u64,
            "plugin": self.plugin,
            "aliases": crate::graph::workglow::aliases_of(&self.id),
            "ports": {"input": port_types(&self.input), "output": port_types(&self.output)},
        })
    }

    /// Run the task once on `input`: check the input against the input schema,
    /// run it within `timeout`, check the output against the output schema.
    pub async fn execute(
        &self,
        input: &Value,
        ctx: &TaskContext,
        timeout: Duration,
    ) -> Result<Value, TaskError> {
        self.input
            .check(input)
            .map_err(|violations| TaskError::InputSchema {
                task: self.id.clone(),
                violations,
            })?;
        let run = async {
            match &self.implementation {
                Implementation::Wasm(plugin) => plugin.run(&self.id, input, ctx, timeout).await,
                Implementation::Native(f) => f(input.clone(), ctx.clone()).await,
                Implementation::Graph(_) => Err(TaskError::Host(
                    "a subgraph is run by the runner, not executed as one task".into(),
                )),
            }
        };
        let output = match tokio::time::timeout(timeout, run).await {
            Ok(result) => result?,
            Err(_) => return Err(TaskError::Timeout { limit: timeout }),
        };
        if !output.is_object() {
            return Err(TaskError::BadOutput(format!("found {}", kind_of(&output))));
        }
        self.output
            .check(&output)
            .map_err(|violations| TaskError::OutputSchema {
                task: self.id.clone(),
                violations,
            })?;
        Ok(output)
    }
}

/// Each declared port and the JSON types it allows, by name.
fn port_types(schema: &ObjectSchema) -> Value {
    schema
        .port_list()
        .into_iter()
        .map(|(port, types)| (port, json!(types.names())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A Rust task to register in a [`Registry`].
pub struct NativeTask {
    /// Unique id.
    pub id: String,
    /// Version.
    pub version: String,
    /// Human title.
    pub title: String,
    /// Category.
    pub category: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of the input object.
    pub input_schema: Value,
    /// JSON Schema of the output object.
    pub output_schema: Value,
    /// Whether it changes anything outside its output.
    pub side_effects: bool,
    /// Whether its output may be cached.
    pub cacheable: bool,
    /// Whether it may call models or the network.
    pub reaches_out: bool,
    /// Input ports that name a resource a user must be granted.
    pub resources: Vec<(String, Resource)>,
    /// The function.
    pub run: NativeFn,
}

impl NativeTask {
    /// A native task `id` running `f`, with open input and output schemas (any
    /// object); set the fields to describe it better.
    pub fn new<F, Fut>(id: &str, f: F) -> Self
    where
        F: Fn(Value, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, TaskError>> + Send + 'static,
    {
        let open = json!({"type": "object", "additionalProperties": true});
        NativeTask {
            id: id.to_string(),
            version: "0.0.0".into(),
            title: id.to_string(),
            category: id.split('.').next().unwrap_or_default().to_string(),
            description: String::new(),
            input_schema: open.clone(),
            output_schema: open,
            side_effects: false,
            cacheable: false,
            reaches_out: false,
            resources: Vec::new(),
            run: Arc::new(move |v, c| Box::pin(f(v, c))),
        }
    }
}

/// What the registry knows about one plugin, loaded or not.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PluginReport {
    /// Its name: the file stem (`text` for `text.wasm`), `std-*` for standard
    /// plugins.
    pub name: String,
    /// Where it came from: a file path, or `builtin`.
    pub source: String,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// The task types it provides.
    pub tasks: Vec<String>,
    /// Whether it serves models (it exports `weft:plugin/provider`).
    pub provider: bool,
    /// Why it did not load, if it did not.
    pub error: Option<String>,
}

/// A task type that cannot be registered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Another plugin already provides this id.
    #[error("task type `{id}` is declared by both plugin `{first}` and plugin `{second}`")]
    Duplicate {
        /// The task type id.
        id: String,
        /// The plugin that registered it first (and keeps it).
        first: String,
        /// The plugin that tried to register it again.
        second: String,
    },
    /// A schema is unusable.
    #[error("task type `{id}`: {source}")]
    Schema {
        /// The task type id.
        id: String,
        /// What is wrong with the schema.
        source: SchemaError,
    },
    /// The id is empty or has characters outside `[a-z0-9._-]`.
    #[error("task type id `{0}` must be non-empty and use only a-z, 0-9, `.`, `_` and `-`")]
    BadId(String),
}

/// Every task type a host knows, by id, and a report of every plugin it tried.
#[derive(Default)]
pub struct Registry {
    types: BTreeMap<String, Arc<TaskType>>,
    plugins: Vec<PluginReport>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The task type `id`, or the one `id` is an alias of (Workglow's class
    /// name of the same task: [`crate::graph::workglow::ALIASES`]).
    pub fn get(&self, id: &str) -> Option<&Arc<TaskType>> {
        self.types
            .get(id)
            .or_else(|| self.types.get(crate::graph::workglow::alias_of(id)?))
    }

    /// All task types, by id.
    pub fn task_types(&self) -> impl Iterator<Item = &Arc<TaskType>> {
        self.types.values()
    }

    /// Every plugin tried, in load order, with its error if it failed.
    pub fn plugins(&self) -> &[PluginReport] {
        &self.plugins
    }

    /// The ids closest to `id`, for "did you mean" hints.
    pub fn suggest(&self, id: &str) -> Option<&str> {
        self.types
            .keys()
            .map(|k| (edit_distance(k, id), k))
            .filter(|(d, k)| *d <= 3.max(k.len() / 3))
            .min()
            .map(|(_, k)| k.as_str())
    }

    /// Register a Rust task.
    pub fn register_native(&mut self, task: NativeTask) -> Result<(), RegistryError> {
        let schema = |which, v| {
            ObjectSchema::compile(which, v).map_err(|source| RegistryError::Schema {
                id: task.id.clone(),
                source,
            })
        };
        let task_type = TaskType {
            input: schema("input", task.input_schema.clone())?,
            output: schema("output", task.output_schema.clone())?,
            id: task.id.clone(),
            version: task.version,
            title: task.title,
            category: task.category,
            description: task.description,
            side_effects: task.side_effects,
            cacheable: task.cacheable && !task.side_effects,
            reaches_out: task.reaches_out,
            resources: task.resources,
            timeout: Duration::from_secs(300),
            plugin: "native".into(),
            implementation: Implementation::Native(task.run),
        };
        self.insert_all(vec![task_type])
    }

    /// Add the task types of one plugin, all or none.
    pub fn insert_all(&mut self, types: Vec<TaskType>) -> Result<(), RegistryError> {
        for t in &types {
            if !valid_id(&t.id) {
                return Err(RegistryError::BadId(t.id.clone()));
            }
            if let Some(existing) = self.types.get(&t.id) {
                return Err(RegistryError::Duplicate {
                    id: t.id.clone(),
                    first: existing.plugin.clone(),
                    second: t.plugin.clone(),
                });
            }
        }
        let mut seen = std::collections::HashSet::new();
        for t in &types {
            if !seen.insert(&t.id) {
                return Err(RegistryError::Duplicate {
                    id: t.id.clone(),
                    first: t.plugin.clone(),
                    second: t.plugin.clone(),
                });
            }
        }
        for t in types {
            self.types.insert(t.id.clone(), Arc::new(t));
        }
        Ok(())
    }

    /// Record a plugin's load report (its task types, or why it failed).
    pub fn report(&mut self, report: PluginReport) {
        self.plugins.push(report);
    }

    /// Take plugin `report`'s task types (already loaded) from `from`.
    pub fn carry_over(&mut self, from: &Registry, report: &PluginReport) {
        self.carry_over_as(from, report, report.clone());
    }

    /// Take the task types `report` lists from `from`, recording `as_report`.
    /// A type another plugin already registered here is left out, and the
    /// conflict recorded.
    pub fn carry_over_as(
        &mut self,
        from: &Registry,
        report: &PluginReport,
        mut as_report: PluginReport,
    ) {
        let types: Vec<Arc<TaskType>> = report
            .tasks
            .iter()
            .filter_map(|id| from.types.get(id).cloned())
            .collect();
        for t in &types {
            if let Some(existing) = self.types.get(&t.id) {
                as_report.error = Some(
                    RegistryError::Duplicate {
                        id: t.id.clone(),
                        first: existing.plugin.clone(),
                        second: t.plugin.clone(),
                    }
                    .to_string(),
                );
                as_report.tasks.clear();
                self.plugins.push(as_report);
                return;
            }
        }
        for t in types {
            self.types.insert(t.id.clone(), t);
        }
        self.plugins.push(as_report);
    }

    /// Take every native task type from `from`.
    pub fn carry_native(&mut self, from: &Registry) {
        for t in from.types.values() {
            if matches!(t.implementation, Implementation::Native(_)) {
                self.types.insert(t.id.clone(), t.clone());
            }
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double() -> NativeTask {
        let mut t = NativeTask::new("test.double", |v: Value, _| async move {
            let n = v["n"]
                .as_i64()
                .ok_or_else(|| TaskError::InvalidInput("n".into()))?;
            Ok(json!({ "n": n * 2 }))
        });
        t.input_schema =
            json!({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]});
        t
    }

    #[tokio::test]
    async fn native_task_runs_with_schema_checks() {
        let mut reg = Registry::new();
        reg.register_native(double()).unwrap();
        let t = reg.get("test.double").unwrap();
        let ctx = TaskContext::new("r", "a");
        let out = t
            .execute(&json!({"n": 21}), &ctx, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(out, json!({"n": 42}));
        let err = t
            .execute(&json!({"n": "x"}), &ctx, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, TaskError::InputSchema { .. }), "{err}");
        assert!(err.to_string().contains("at /n"), "{err}");
    }

    #[test]
    fn duplicate_ids_name_both_plugins() {
        let mut reg = Registry::new();
        reg.register_native(double()).unwrap();
        let err = reg.register_native(double()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "task type `test.double` is declared by both plugin `native` and plugin `native`"
        );
    }

    #[test]
    fn suggests_close_ids() {
        let mut reg = Registry::new();
        reg.register_native(double()).unwrap();
        assert_eq!(reg.suggest("test.dubble"), Some("test.double"));
        assert_eq!(reg.suggest("zzzzzzzzzzzzzzzzzzzzzzzzzzzzz"), None);
    }
}
