//! # weft-sdk: write Weft tasks in Rust
//!
//! A Weft plugin is a WASI 0.2 component exporting the `weft:plugin/task`
//! interface (see `wit/weft.wit`). This crate lets you write each task as a
//! plain function over serde types; it derives the input and output JSON Schemas
//! with `schemars`, implements `describe` and `run`, and maps errors.
//!
//! ```ignore
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//! use weft_sdk::{Context, TaskDef, TaskError};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Input { text: String }
//! #[derive(Serialize, JsonSchema)]
//! struct Output { shout: String }
//!
//! fn shout(input: Input, _ctx: &Context) -> Result<Output, TaskError> {
//!     Ok(Output { shout: input.text.to_uppercase() })
//! }
//!
//! fn tasks() -> Vec<TaskDef> {
//!     vec![TaskDef::new("demo.shout", shout).title("Shout").category("demo")]
//! }
//! weft_sdk::export_plugin!(tasks);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (the crate type must
//! be `cdylib`) and copy the `.wasm` into the host's plugins folder.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "weft_sdk::bindings",
    });
}

use bindings::exports::weft::plugin::task as wit_task;
use bindings::weft::plugin::types as wit_types;

pub use schemars;
pub use serde_json::{Value, json};

/// Why a task produced no output. Mirrors the WIT `task-error` variant.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskError {
    /// The input makes no sense for this task. Never retried.
    InvalidInput(String),
    /// The task failed; retrying will not help.
    Failed(String),
    /// The task failed for a passing reason; the host may retry it, after
    /// `delay_ms` if given.
    Retryable {
        /// What went wrong.
        message: String,
        /// The least time to wait before the next attempt.
        delay_ms: Option<u64>,
    },
    /// The task stopped because it was asked to.
    Cancelled(String),
}

impl TaskError {
    /// Shorthand for [`TaskError::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        TaskError::InvalidInput(message.into())
    }
    /// Shorthand for [`TaskError::Failed`].
    pub fn failed(message: impl Into<String>) -> Self {
        TaskError::Failed(message.into())
    }
    /// Shorthand for [`TaskError::Retryable`].
    pub fn retryable(message: impl Into<String>, delay_ms: Option<u64>) -> Self {
        TaskError::Retryable {
            message: message.into(),
            delay_ms,
        }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            TaskError::Failed(m) => write!(f, "failed: {m}"),
            TaskError::Retryable { message, .. } => write!(f, "retryable: {message}"),
            TaskError::Cancelled(m) => write!(f, "cancelled: {m}"),
        }
    }
}

impl From<TaskError> for wit_types::TaskError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::InvalidInput(m) => wit_types::TaskError::InvalidInput(m),
            TaskError::Failed(m) => wit_types::TaskError::Failed(m),
            TaskError::Retryable { message, delay_ms } => {
                wit_types::TaskError::Retryable(wit_types::RetryHint { message, delay_ms })
            }
            TaskError::Cancelled(m) => wit_types::TaskError::Cancelled(m),
        }
    }
}

/// Severity of a log line.
pub use bindings::weft::plugin::log::Level;

/// What the host tells a task about the run it belongs to.
#[derive(Debug, Clone)]
pub struct Context {
    /// The run's id.
    pub run_id: String,
    /// The node's id in the graph.
    pub node_id: String,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: u32,
    /// The same for every attempt of this node in this run: pass it on to
    /// deduplicate side effects.
    pub idempotency_key: String,
}

impl Context {
    /// Emit a log line, attributed by the host to this run and node.
    pub fn log(&self, level: Level, message: &str) {
        log(level, message)
    }
    /// Report progress (`fraction` in [0, 1]).
    pub fn progress(&self, fraction: f32, message: Option<&str>) {
        progress(fraction, message)
    }
}

/// Emit a log line through the host's `log` import (outside wasm, as in a
/// plugin's own unit tests, to stderr).
pub fn log(level: Level, message: &str) {
    #[cfg(target_family = "wasm")]
    bindings::weft::plugin::log::log(level, message);
    #[cfg(not(target_family = "wasm"))]
    eprintln!("[{level:?}] {message}");
}

/// Report progress through the host's `progress` import (outside wasm: ignored).
pub fn progress(fraction: f32, message: Option<&str>) {
    #[cfg(target_family = "wasm")]
    bindings::weft::plugin::progress::report(fraction, message);
    #[cfg(not(target_family = "wasm"))]
    let _ = (fraction, message);
}

/// Models served by the host (the `models` import): embeddings and text
/// generation. A plugin may use only the models its manifest grants.
///
/// ```ignore
/// let vectors = weft_sdk::models::embed("minilm", &["a text".to_string()])?;
/// ```
///
/// A [`ModelError`](models::ModelError) converts into a [`TaskError`] with `?`:
/// rate limits and unavailable models become retryable failures.
pub mod models {
    use crate::bindings::weft::plugin::models as wit;
    pub use wit::{
        DetectOptions, Detection, GenerateOptions, Generation, Image, ImageFile, ImageRequest,
        Keypoint, Message, ModelError, ModelInfo, Prompt,
    };

    /// Embed each text with `model`: one vector per text, in order.
    pub fn embed(model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        wit::embed(model, texts)
    }

    /// Generate text with `model`.
    pub fn generate(
        model: &str,
        prompt: &Prompt,
        options: &GenerateOptions,
    ) -> Result<Generation, ModelError> {
        wit::generate(model, prompt, options)
    }

    /// Generate text about `images` (PNG or JPEG files, at most 8 of
    /// 3,932,160 bytes, 20 MiB in all) with vision model `model`: they go with the prompt's last
    /// user message. HTTP providers' vision models take images; others
    /// answer `InvalidRequest`.
    pub fn generate_seeing(
        model: &str,
        prompt: &Prompt,
        images: &[ImageFile],
        options: &GenerateOptions,
    ) -> Result<Generation, ModelError> {
        wit::generate_seeing(model, prompt, images, options)
    }

    /// Generate a JSON value for `schema` (a JSON Schema, as JSON text, at
    /// most 64 KiB) with `model`: held to it where the provider has a
    /// native mode (OpenAI-compatible `json_schema`); validate the answer
    /// all the same.
    pub fn generate_json(
        model: &str,
        prompt: &Prompt,
        schema: &str,
        options: &GenerateOptions,
    ) -> Result<Generation, ModelError> {
        wit::generate_json(model, prompt, schema, options)
    }

    /// An image made by image-generation model `model` (an HTTP provider's):
    /// new, or `request.images` edited. PNG, JPEG or WebP.
    pub fn generate_image(model: &str, request: &ImageRequest) -> Result<ImageFile, ModelError> {
        wit::generate_image(model, request)
    }

    /// How many tokens `text` is for `model`.
    pub fn count_tokens(model: &str, text: &str) -> Result<u32, ModelError> {
        wit::count_tokens(model, text)
    }

    /// What `model` is.
    pub fn info(model: &str) -> Result<ModelInfo, ModelError> {
        wit::info(model)
    }

    /// The foreground of `image` (RGBA, row by row) by background-removal
    /// model `model`: one alpha byte per pixel, 255 for the foreground, 0
    /// for the background.
    pub fn foreground(model: &str, image: &Image) -> Result<Vec<u8>, ModelError> {
        wit::foreground(model, image)
    }

    /// What detection model `model` (`face-detection`) finds in `image`
    /// (RGBA, row by row), best first, at most 100: boxes and keypoints in
    /// the image's pixels.
    pub fn detect(
        model: &str,
        image: &Image,
        options: DetectOptions,
    ) -> Result<Vec<Detection>, ModelError> {
        wit::detect(model, image, options)
    }

    /// A model error as one line of text.
    pub fn describe(e: &ModelError) -> String {
        match e {
            ModelError::UnknownModel(m) => format!("unknown model `{m}`"),
            ModelError::NotGranted(m) => m.clone(),
            ModelError::Unavailable(m) => format!("model unavailable: {m}"),
            ModelError::RateLimited(ms) => format!("rate limited: retry after {ms} ms"),
            ModelError::InvalidRequest(m) => format!("invalid model request: {m}"),
        }
    }

    impl From<ModelError> for crate::TaskError {
        fn from(e: ModelError) -> Self {
            let message = describe(&e);
            match e {
                ModelError::RateLimited(ms) => crate::TaskError::retryable(message, Some(ms)),
                ModelError::Unavailable(_) => crate::TaskError::retryable(message, None),
                ModelError::InvalidRequest(_) => crate::TaskError::invalid_input(message),
                ModelError::UnknownModel(_) | ModelError::NotGranted(_) => {
                    crate::TaskError::failed(message)
                }
            }
        }
    }
}

/// Key-value storage kept by the host (the `storage` import): the plugin's
/// own namespace (`None`) and those its manifest grants, each per user of
/// the run. Only task types that declare side effects may write.
///
/// ```ignore
/// use weft_sdk::storage;
/// // Count, safely under concurrent runs: compare-and-swap on the version.
/// loop {
///     let (n, version) = match storage::get(None, "n")? {
///         Some(e) => (storage::decode::<u64>(&e)?, e.version),
///         None => (0, 0),
///     };
///     match storage::set_if(None, "n", &storage::encode(&(n + 1)), version) {
///         Err(storage::StorageError::Conflict(_)) => continue,
///         other => break other?,
///     };
/// }
/// ```
///
/// A [`StorageError`](storage::StorageError) converts into a [`TaskError`]
/// with `?`: an unavailable store is retryable, the rest fail.
pub mod storage {
    use crate::bindings::weft::plugin::storage as wit;
    pub use wit::{Deletion, Entry, Page, StorageError, Write};

    /// The value of `key` in `namespace` (`None`: the plugin's own).
    pub fn get(namespace: Option<&str>, key: &str) -> Result<Option<Entry>, StorageError> {
        wit::get(namespace, key)
    }

    /// The values of `keys`, in order.
    pub fn get_many(
        namespace: Option<&str>,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>, StorageError> {
        wit::get_many(namespace, keys)
    }

    /// Write `value` to `key`; its new version.
    pub fn set(namespace: Option<&str>, key: &str, value: &[u8]) -> Result<u64, StorageError> {
        write(namespace, &plain(key, value))
    }

    /// Write `value` to `key` only if it is at `version` now (0: absent).
    pub fn set_if(
        namespace: Option<&str>,
        key: &str,
        value: &[u8],
        version: u64,
    ) -> Result<u64, StorageError> {
        let w = Write {
            if_version: Some(version),
            ..plain(key, value)
        };
        write(namespace, &w)
    }

    /// One write with every option (`if_version`, `ttl_ms`).
    pub fn write(namespace: Option<&str>, write: &Write) -> Result<u64, StorageError> {
        wit::set(namespace, write)
    }

    /// Several writes, all or none; their new versions.
    pub fn write_many(namespace: Option<&str>, writes: &[Write]) -> Result<Vec<u64>, StorageError> {
        wit::set_many(namespace, writes)
    }

    /// A write of `value` to `key` with no condition and no expiry.
    pub fn plain(key: &str, value: &[u8]) -> Write {
        Write {
            key: key.to_string(),
            value: value.to_vec(),
            if_version: None,
            ttl_ms: None,
        }
    }

    /// Delete `key`: whether it was there.
    pub fn delete(namespace: Option<&str>, key: &str) -> Result<bool, StorageError> {
        wit::delete(namespace, key, None)
    }

    /// Delete several keys (at most 1,000), all or none (a [`Deletion`]'s
    /// `if_version` that does not hold deletes nothing): whether each was
    /// there, in order.
    pub fn delete_many(
        namespace: Option<&str>,
        deletions: &[Deletion],
    ) -> Result<Vec<bool>, StorageError> {
        wit::delete_many(namespace, deletions)
    }

    /// Delete every key in `keys`, 1,000 to a call (each call all or none):
    /// how many were there.
    pub fn delete_all(namespace: Option<&str>, keys: &[String]) -> Result<usize, StorageError> {
        let mut found = 0;
        for batch in keys.chunks(1_000) {
            let deletions: Vec<Deletion> = batch
                .iter()
                .map(|key| Deletion {
                    key: key.clone(),
                    if_version: None,
                })
                .collect();
            found += delete_many(namespace, &deletions)?
                .into_iter()
                .filter(|&f| f)
                .count();
        }
        Ok(found)
    }

    /// Every key that starts with `prefix`, in byte order (a page of 1,000
    /// at a time from the host).
    pub fn keys(namespace: Option<&str>, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = wit::list_keys(namespace, prefix, after.as_deref(), 1_000)?;
            all.extend(page.keys);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One page of the keys starting with `prefix`, after `after`, at most
    /// `limit` (1 to 1,000).
    pub fn list_keys(
        namespace: Option<&str>,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page, StorageError> {
        wit::list_keys(namespace, prefix, after, limit)
    }

    /// `value` as JSON bytes.
    pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
        serde_json::to_vec(value).unwrap_or_default()
    }

    /// An entry's value read as JSON.
    pub fn decode<T: serde::de::DeserializeOwned>(entry: &Entry) -> Result<T, crate::TaskError> {
        serde_json::from_slice(&entry.value).map_err(|e| {
            crate::TaskError::failed(format!("a stored value is not what was expected: {e}"))
        })
    }

    /// A storage error as one line of text.
    pub fn describe(e: &StorageError) -> String {
        match e {
            StorageError::NotGranted(m) => format!("not granted: {m}"),
            StorageError::Conflict(v) => match v {
                Some(v) => format!("conflict: the key is at version {v}"),
                None => "conflict: the key is absent".into(),
            },
            StorageError::Quota(m) => format!("quota: {m}"),
            StorageError::Invalid(m) => format!("invalid: {m}"),
            StorageError::Unavailable(m) => format!("storage unavailable: {m}"),
        }
    }

    impl From<StorageError> for crate::TaskError {
        fn from(e: StorageError) -> Self {
            let message = describe(&e);
            match e {
                StorageError::Unavailable(_) => crate::TaskError::retryable(message, None),
                _ => crate::TaskError::failed(message),
            }
        }
    }
}

/// Vectors kept with storage's keys, and the keys whose vectors are
/// nearest a query (the `vectors` import, 0.1.4): a knowledge base's
/// search, done by the host's store (on PostgreSQL by pgvector when it is
/// installed). Namespaces, grants, quotas and errors are [`storage`]'s.
pub mod vectors {
    use crate::bindings::weft::plugin::vectors as wit;
    pub use crate::storage::{StorageError, Write};
    pub use wit::Near;

    /// Several writes (at most 1,000), each keeping `vectors[i]` (1 to
    /// 16,000 finite numbers), all or none; their new versions. A later
    /// plain [`storage`](crate::storage) write of a key drops its vector.
    pub fn write_many(
        namespace: Option<&str>,
        writes: &[Write],
        vectors: &[Vec<f32>],
    ) -> Result<Vec<u64>, StorageError> {
        wit::set_many(namespace, writes, vectors)
    }

    /// The keys starting with `prefix` whose vectors (of `query`'s length)
    /// are nearest `query` by cosine similarity, best first (ties by key),
    /// past the first `skip`, at most `limit` (1 to 1,000). Exact.
    pub fn nearest(
        namespace: Option<&str>,
        prefix: &str,
        query: &[f32],
        skip: u32,
        limit: u32,
    ) -> Result<Vec<Near>, StorageError> {
        wit::nearest(namespace, prefix, query, skip, limit)
    }
}

/// The plugin's configuration (the `config` import): its manifest's
/// `[config]` table, values given as JSON.
pub mod config {
    use crate::bindings::weft::plugin::config as wit;
    pub use wit::ConfigError;

    /// Key `key`, if the manifest sets it.
    pub fn get(key: &str) -> Result<Option<serde_json::Value>, crate::TaskError> {
        match wit::get(key) {
            Ok(Some(text)) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| crate::TaskError::failed(format!("config `{key}`: {e}"))),
            Ok(None) => Ok(None),
            Err(ConfigError::NotGranted(m)) => Err(crate::TaskError::failed(m)),
            Err(ConfigError::Unavailable(m)) => Err(crate::TaskError::retryable(m, None)),
        }
    }

    /// Key `key` as a string, if the manifest sets it to one.
    pub fn string(key: &str) -> Result<Option<String>, crate::TaskError> {
        Ok(get(key)?.and_then(|v| v.as_str().map(str::to_string)))
    }

    /// The keys the manifest sets.
    pub fn keys() -> Vec<String> {
        wit::keys()
    }
}

type RunFn = Box<dyn Fn(&str, &Context) -> Result<String, TaskError>>;

/// One task type: its metadata, its schemas and the function that runs it.
pub struct TaskDef {
    id: String,
    version: Option<String>,
    title: Option<String>,
    category: Option<String>,
    description: String,
    side_effects: bool,
    cacheable: bool,
    timeout_ms: Option<u64>,
    schemas: fn() -> (Value, Value),
    input_schema: Option<Value>,
    output_schema: Option<Value>,
    run: RunFn,
}

impl TaskDef {
    /// The defaults every constructor starts from.
    fn base(id: &str, schemas: fn() -> (Value, Value), run: RunFn) -> Self {
        TaskDef {
            id: id.to_string(),
            version: None,
            title: None,
            category: None,
            description: String::new(),
            side_effects: false,
            cacheable: true,
            timeout_ms: None,
            schemas,
            input_schema: None,
            output_schema: None,
            run,
        }
    }

    /// A task type `id` run by `f`. The input and output JSON Schemas are derived
    /// from `I` and `O`. Defaults: version = the plugin crate's version, title = the
    /// id, category = the id's first dot-separated part, no side effects,
    /// cacheable.
    pub fn new<I, O, F>(id: &str, f: F) -> Self
    where
        I: DeserializeOwned + JsonSchema,
        O: Serialize + JsonSchema,
        F: Fn(I, &Context) -> Result<O, TaskError> + 'static,
    {
        let schemas = || {
            (
                schemars::schema_for!(I).to_value(),
                schemars::schema_for!(O).to_value(),
            )
        };
        let run = move |input: &str, ctx: &Context| {
            let input: I = serde_json::from_str(input)
                .map_err(|e| TaskError::InvalidInput(format!("input does not fit: {e}")))?;
            let output = f(input, ctx)?;
            serde_json::to_string(&output)
                .map_err(|e| TaskError::Failed(format!("output is not JSON: {e}")))
        };
        Self::base(id, schemas, Box::new(run))
    }

    /// A task type `id` that works on raw JSON text: `f` gets the input as the
    /// host sent it and returns the output text as is. Declare both schemas; the
    /// host validates against them. For tasks that pass data through without
    /// needing its shape.
    pub fn raw<F>(id: &str, input_schema: Value, output_schema: Value, f: F) -> Self
    where
        F: Fn(&str, &Context) -> Result<String, TaskError> + 'static,
    {
        Self::base(id, || (Value::Null, Value::Null), Box::new(f))
            .input_schema(input_schema)
            .output_schema(output_schema)
    }

    /// Set the task type's version (default: the plugin crate's version).
    pub fn version(mut self, v: &str) -> Self {
        self.version = Some(v.to_string());
        self
    }
    /// Set the human title.
    pub fn title(mut self, t: &str) -> Self {
        self.title = Some(t.to_string());
        self
    }
    /// Set the category.
    pub fn category(mut self, c: &str) -> Self {
        self.category = Some(c.to_string());
        self
    }
    /// Set the description.
    pub fn description(mut self, d: &str) -> Self {
        self.description = d.to_string();
        self
    }
    /// Mark the task as changing the world outside its output (never cached).
    pub fn side_effects(mut self) -> Self {
        self.side_effects = true;
        self.cacheable = false;
        self
    }
    /// Mark the task's output as not a pure function of its input.
    pub fn not_cacheable(mut self) -> Self {
        self.cacheable = false;
        self
    }
    /// Default wall-clock limit for one run, in milliseconds.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }
    /// Replace the derived input schema (for inputs whose shape serde types
    /// cannot say, e.g. "any object").
    pub fn input_schema(mut self, schema: Value) -> Self {
        self.input_schema = Some(schema);
        self
    }
    /// Replace the derived output schema.
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema);
        self
    }

    fn describe(&self, crate_version: &str) -> wit_types::TaskType {
        let (derived_in, derived_out) = (self.schemas)();
        let input = self.input_schema.clone().unwrap_or(derived_in);
        let output = self.output_schema.clone().unwrap_or(derived_out);
        wit_types::TaskType {
            id: self.id.clone(),
            version: self
                .version
                .clone()
                .unwrap_or_else(|| crate_version.to_string()),
            title: self.title.clone().unwrap_or_else(|| self.id.clone()),
            category: self
                .category
                .clone()
                .unwrap_or_else(|| self.id.split('.').next().unwrap_or_default().to_string()),
            description: self.description.clone(),
            input_schema: input.to_string(),
            output_schema: output.to_string(),
            side_effects: self.side_effects,
            cacheable: self.cacheable && !self.side_effects,
            timeout_ms: self.timeout_ms,
        }
    }
}

#[doc(hidden)]
pub fn __describe(tasks: &[TaskDef], crate_version: &str) -> Vec<wit_types::TaskType> {
    tasks.iter().map(|t| t.describe(crate_version)).collect()
}

#[doc(hidden)]
pub fn __run(
    tasks: &[TaskDef],
    id: &str,
    input: &str,
    ctx: wit_types::Context,
) -> Result<String, wit_types::TaskError> {
    let ctx = Context {
        run_id: ctx.run_id,
        node_id: ctx.node_id,
        attempt: ctx.attempt,
        idempotency_key: ctx.idempotency_key,
    };
    match tasks.iter().find(|t| t.id == id) {
        Some(t) => (t.run)(input, &ctx).map_err(Into::into),
        None => Err(wit_types::TaskError::InvalidInput(format!(
            "this plugin has no task type `{id}`"
        ))),
    }
}

#[doc(hidden)]
pub use wit_task::Guest as __Guest;
#[doc(hidden)]
pub use wit_types::{
    Context as __WitContext, TaskError as __WitTaskError, TaskType as __WitTaskType,
};

/// Export the plugin: pass a function returning the plugin's [`TaskDef`]s.
/// Call it once, at the root of the plugin crate.
#[macro_export]
macro_rules! export_plugin {
    ($tasks:path) => {
        struct __WeftPlugin;
        impl $crate::__Guest for __WeftPlugin {
            fn describe() -> ::std::vec::Vec<$crate::__WitTaskType> {
                $crate::__describe(&$tasks(), env!("CARGO_PKG_VERSION"))
            }
            fn run(
                task_id: ::std::string::String,
                input: ::std::string::String,
                ctx: $crate::__WitContext,
            ) -> ::std::result::Result<::std::string::String, $crate::__WitTaskError> {
                $crate::__run(&$tasks(), &task_id, &input, ctx)
            }
        }
        $crate::bindings::__export_plugin!(__WeftPlugin with_types_in $crate::bindings);
    };
}
