//! The host's own model tasks, native (not wasm: they touch the models
//! folder and the host's loaded models): `ai.model-download`,
//! `ai.model-remove` and `ai.model-search`, Workglow's
//! `ModelDownloadTask`, `ModelDownloadRemoveTask` and `ModelSearchTask`.
//! What they must not know: how a model runs (that is the providers').

use std::sync::Arc;

use serde_json::{Value, json};
use weft_core::grant::Resource;
use weft_core::task::{NativeTask, TaskContext, TaskError};

use super::{ModelFile, Models, model_folder};

impl Models {
    /// `ai.model-download`: downloads a configured model's `files` into its
    /// folder, with progress events, checksums and resume.
    pub fn download_task(models: &Arc<Models>) -> NativeTask {
        let models = models.clone();
        let mut task = NativeTask::new("ai.model-download", move |input, ctx| {
            let models = models.clone();
            async move { models.download(&input, &ctx).await }
        });
        task.title = "Download a model".into();
        task.description = "Downloads a configured model's files into the models folder, \
            checking their SHA-256 and resuming interrupted downloads."
            .into();
        task.output_schema = json!({
            "type": "object",
            "properties": {
                "model": {"type": "string", "description": "The model's id."},
                "files": {"type": "array", "items": {"type": "object"}}
            },
            "required": ["model", "files"]
        });
        task.side_effects = true;
        model_task(task)
    }

    /// `ai.model-remove`: unloads a model and deletes the files
    /// `ai.model-download` put in its folder.
    pub fn remove_task(models: &Arc<Models>) -> NativeTask {
        let models = models.clone();
        let mut task = NativeTask::new("ai.model-remove", move |input, _| {
            let models = models.clone();
            async move { models.remove(&input).await }
        });
        task.title = "Remove a model".into();
        task.description = "Unloads a model (its ONNX sessions or connections are let go) and \
            deletes the files its `files` list downloaded into the models folder; a model \
            without `files` is only unloaded."
            .into();
        task.output_schema = json!({
            "type": "object",
            "properties": {
                "model": {"type": "string", "description": "The model's id."},
                "removed": {"type": "array", "items": {"type": "string"}, "description": "The files deleted."}
            },
            "required": ["model", "removed"]
        });
        task.side_effects = true;
        model_task(task)
    }

    /// `ai.model-search`: the configured models of one provider that the
    /// run's owner may use, whose id or provider name contains `query`.
    pub fn search_task(models: &Arc<Models>) -> NativeTask {
        let models = models.clone();
        let mut task = NativeTask::new("ai.model-search", move |input, ctx| {
            let models = models.clone();
            async move { models.search(&input, &ctx) }
        });
        task.version = "0.1.0".into();
        task.title = "Search models".into();
        task.category = "ai".into();
        task.description = "The models this host serves from `provider` (`onnx`, `openai`, \
            `anthropic`, `plugin:NAME`) that the run's owner may use, whose id or provider \
            name contains `query` (ignoring case). Lists the host's configuration, not a \
            provider's remote catalogue."
            .into();
        task.input_schema = json!({
            "type": "object",
            "properties": {
                "provider": {"type": "string", "description": "`onnx`, `openai`, `anthropic` or `plugin:NAME`."},
                "query": {"type": "string", "description": "Text the id or the provider's name for the model contains; all when empty."},
                "credential_key": {"type": "string", "description": "Taken and not used: a provider's key is the operator's configuration."}
            },
            "required": ["provider"],
            "additionalProperties": false
        });
        task.output_schema = json!({
            "type": "object",
            "properties": {"results": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "label": {"type": "string"},
                    "description": {"type": "string"},
                    "record": {"type": "string", "description": "What a task's `model` port takes: the id."}
                },
                "required": ["id", "label", "description", "record"]
            }}},
            "required": ["results"]
        });
        task
    }

    async fn download(&self, input: &Value, ctx: &TaskContext) -> Result<Value, TaskError> {
        let id = model_id(input);
        let entry = self
            .entry(id)
            .map_err(|e| TaskError::InvalidInput(e.to_string()))?;
        let dir = self.dir.clone().ok_or_else(|| {
            TaskError::Failed("this host has no models folder to download into".into())
        })?;
        if entry.config.files.is_empty() {
            return Err(TaskError::InvalidInput(format!(
                "model `{id}` lists no `files` to download"
            )));
        }
        let folder = model_folder(&dir, id).map_err(TaskError::InvalidInput)?;
        let mut out = Vec::new();
        for file in &entry.config.files {
            let events = ctx.events.clone();
            let name = file.name.clone();
            let show = move |done: u64, total: Option<u64>| {
                if let (Some(e), Some(t)) = (&events, total) {
                    e.progress(done as f32 / t.max(1) as f32, Some(name.clone()));
                }
            };
            let downloaded = pull_file(file, &folder, &show).await?;
            out.push(json!({
                "name": file.name,
                "path": folder.join(&file.name).display().to_string(),
                "downloaded": downloaded,
            }));
        }
        Ok(json!({ "model": id, "files": out }))
    }

    async fn remove(&self, input: &Value) -> Result<Value, TaskError> {
        let id = model_id(input);
        let entry = self
            .entry(id)
            .map_err(|e| TaskError::InvalidInput(e.to_string()))?;
        *entry.provider.lock().await = None;
        let mut removed = Vec::new();
        if let (Some(dir), false) = (&self.dir, entry.config.files.is_empty()) {
            let folder = model_folder(dir, id).map_err(TaskError::InvalidInput)?;
            for file in &entry.config.files {
                removed.extend(remove_file(file, &folder)?);
            }
            // The folder goes too once nothing else is in it.
            let _ = std::fs::remove_dir(&folder);
        }
        Ok(json!({ "model": id, "removed": removed }))
    }

    fn search(&self, input: &Value, ctx: &TaskContext) -> Result<Value, TaskError> {
        let provider = input["provider"].as_str().unwrap_or_default();
        let query = input["query"].as_str().unwrap_or_default().to_lowercase();
        let results: Vec<Value> = self
            .configs()
            .filter(|(_, c)| c.provider.to_string() == provider)
            .filter(|(id, _)| ctx.grants.check(Resource::Model, id).is_ok())
            .filter(|(id, c)| {
                id.to_lowercase().contains(&query) || c.model.to_lowercase().contains(&query)
            })
            .map(|(id, c)| {
                json!({
                    "id": id,
                    "label": id,
                    "description": format!("{} model `{}` from {}", c.kind().name(), c.model, c.provider),
                    "record": id,
                })
            })
            .collect();
        Ok(json!({ "results": results }))
    }
}

/// The `model` input of a model task (checked by its schema).
fn model_id(input: &Value) -> &str {
    input["model"].as_str().unwrap_or_default()
}

/// A task taking a configured model's id on `model`, which the run's owner
/// must be granted.
fn model_task(mut task: NativeTask) -> NativeTask {
    task.version = "0.1.0".into();
    task.category = "ai".into();
    task.input_schema = json!({
        "type": "object",
        "properties": {"model": {"type": "string", "description": "A configured model's id."}},
        "required": ["model"]
    });
    task.resources = vec![("model".into(), Resource::Model)];
    task
}

/// Download one of a model's files into `dir`; whether it was downloaded
/// (false: it was there already, checksum and all).
#[cfg(feature = "http")]
async fn pull_file(
    file: &ModelFile,
    dir: &std::path::Path,
    show: &(dyn Fn(u64, Option<u64>) + Send + Sync),
) -> Result<bool, weft_core::task::TaskError> {
    use super::download;
    use weft_core::task::TaskError;
    let pulled = download::pull(file, dir, show).await.map_err(|e| match e {
        e @ download::DownloadError::Http { .. }
        | e @ download::DownloadError::Interrupted { .. }
        | e @ download::DownloadError::Busy { .. } => TaskError::Retryable {
            message: e.to_string(),
            delay: None,
        },
        e => TaskError::Failed(e.to_string()),
    })?;
    Ok(pulled != download::Pulled::AlreadyThere)
}

#[cfg(not(feature = "http"))]
async fn pull_file(
    _file: &ModelFile,
    _dir: &std::path::Path,
    _show: &(dyn Fn(u64, Option<u64>) + Send + Sync),
) -> Result<bool, weft_core::task::TaskError> {
    Err(weft_core::task::TaskError::Failed(
        "this weft was built without downloads (cargo feature `http`)".into(),
    ))
}

/// Delete one of a model's files (and a partial download of it) from `dir`,
/// unless it is being downloaded.
#[cfg(feature = "http")]
fn remove_file(file: &ModelFile, dir: &std::path::Path) -> Result<Vec<String>, TaskError> {
    use super::download::{self, DownloadError};
    match download::remove(file, dir) {
        Ok(paths) => Ok(paths.iter().map(|p| p.display().to_string()).collect()),
        Err(e @ DownloadError::Busy { .. }) => Err(TaskError::Retryable {
            message: e.to_string(),
            delay: None,
        }),
        Err(e) => Err(TaskError::Failed(e.to_string())),
    }
}

/// Without downloads nothing was downloaded: nothing to delete.
#[cfg(not(feature = "http"))]
fn remove_file(_file: &ModelFile, _dir: &std::path::Path) -> Result<Vec<String>, TaskError> {
    Ok(Vec::new())
}
