//! One task run in one fresh instance: the store's data, the host side of the
//! `log` and `progress` imports, and the mapping of traps to task errors.

use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::providers::{self, ModelError, Models};
use weft_core::event::{LogLevel, NodeEvents};
use weft_core::grant::{Grants, Resource};
use weft_core::task::TaskError;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
    imports: {
        "weft:plugin/models": async,
        "weft:plugin/storage": async,
        "weft:plugin/vectors": async,
        "weft:plugin/config": async,
    },
    exports: { default: async },
});

pub(crate) use self::weft::plugin::types as wit_types;

/// Guest stderr kept per run (for trap messages and log events).
const STDERR_CAPACITY: usize = 1 << 20;
/// Longest log line or stderr excerpt passed on.
const MAX_LINE: usize = 64 << 10;

/// Counts a store's linear memory and refuses growth past the plugin's limit,
/// remembering that it did, so the resulting trap reads as "memory limit".
pub(crate) struct MemoryLimiter {
    limit: usize,
    used: usize,
    pub(crate) hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.used - current.min(self.used) + desired;
        if after > self.limit {
            self.hit = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded",
                self.limit
            ));
        }
        self.used = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The data of one instance's store.
pub(crate) struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    events: Option<NodeEvents>,
    plugin: String,
    models: Option<Arc<Models>>,
    granted_models: Vec<String>,
    /// What the run's owner may use (their models).
    user: Arc<Grants>,
    /// The host names the plugin may resolve, and what they resolved to.
    names: crate::lookup::Names,
    /// The run's fuel limit, if any (to name it when it runs out).
    fuel: Option<u64>,
    /// What the `storage` import may use (none while the plugin loads).
    storage: Option<crate::storage::StorageAccess>,
    /// What the `config` import serves (none while the plugin loads).
    config: Option<crate::config::ConfigAccess>,
    http_ctx: wasmtime_wasi_http::WasiHttpCtx,
    /// What its outgoing HTTP may do.
    http: crate::http::HttpHooks,
    /// When the current call is over time (checked on every epoch tick).
    deadline: Instant,
}

impl wasmtime_wasi_http::WasiHttpView for InstanceState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

impl InstanceState {
    /// Give the next call `timeout` from now and `fuel` (`None`: unlimited);
    /// for instances that serve more than one call (providers).
    pub(crate) fn arm(store: &mut Store<InstanceState>, timeout: Duration) -> wasmtime::Result<()> {
        store.data_mut().deadline = Instant::now() + timeout;
        let fuel = store.data().fuel;
        store.set_fuel(fuel.unwrap_or(u64::MAX))
    }

    /// The name-lookup interface's view ([`crate::lookup`]).
    pub(crate) fn lookup(&mut self) -> crate::lookup::Lookup<'_> {
        let sockets = wasmtime_wasi::sockets::WasiSocketsCtxView {
            ctx: self.wasi.sockets(),
            table: &mut self.table,
        };
        crate::lookup::Lookup::new(sockets, &mut self.names)
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl self::weft::plugin::types::Host for InstanceState {}

impl self::weft::plugin::log::Host for InstanceState {
    fn log(&mut self, level: self::weft::plugin::log::Level, message: String) {
        use self::weft::plugin::log::Level as L;
        let message = truncate(message);
        let level = match level {
            L::Trace => LogLevel::Trace,
            L::Debug => LogLevel::Debug,
            L::Info => LogLevel::Info,
            L::Warn => LogLevel::Warn,
            L::Error => LogLevel::Error,
        };
        match &self.events {
            Some(events) => events.log(level, message),
            None => tracing::info!(plugin = %self.plugin, "{message}"),
        }
    }
}

impl self::weft::plugin::progress::Host for InstanceState {
    fn report(&mut self, fraction: f32, message: Option<String>) {
        if let Some(events) = &self.events {
            events.progress(fraction, message.map(truncate));
        }
    }
}

use self::weft::plugin::models as wit_models;

impl InstanceState {
    /// The models, for a call to `model` the run's owner must be granted
    /// (the plugin's own grant is checked by [`Models`]).
    fn models(&self, model: &str) -> Result<&Arc<Models>, wit_models::ModelError> {
        self.user
            .check(Resource::Model, model)
            .map_err(|e| wit_models::ModelError::NotGranted(e.to_string()))?;
        self.models
            .as_ref()
            .ok_or_else(|| wit_models::ModelError::Unavailable("this host serves no models".into()))
    }

    /// `models.generate`, `generate-seeing` and `generate-json`: the text
    /// streamed to the run's events as progress of this node.
    async fn generate_with(
        &mut self,
        model: String,
        prompt: wit_models::Prompt,
        asked: Asked,
        options: wit_models::GenerateOptions,
    ) -> Result<wit_models::Generation, wit_models::ModelError> {
        let prompt = match prompt {
            wit_models::Prompt::Text(t) => providers::Prompt::Text(t),
            wit_models::Prompt::Chat(messages) => providers::Prompt::Chat(
                messages
                    .into_iter()
                    .map(|m| providers::Message {
                        role: m.role,
                        content: m.content,
                    })
                    .collect(),
            ),
        };
        let options = providers::GenerateOptions {
            max_tokens: options.max_tokens,
            temperature: options.temperature,
            stop: options.stop,
        };
        let events = self.events.clone();
        let max = options.max_tokens.unwrap_or(256).max(1) as f32;
        let produced = AtomicU32::new(0);
        let sink = move |text: &str| {
            let n = produced.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(events) = &events {
                events.progress((n as f32 / max).min(1.0), Some(text.to_string()));
            }
        };
        let models = self.models(&model)?;
        let (plugin, granted) = (&self.plugin, &self.granted_models);
        let g = match asked {
            Asked::Seeing(images) if !images.is_empty() => {
                models
                    .generate_seeing(plugin, granted, &model, &prompt, &images, &options, &sink)
                    .await
            }
            Asked::Json(schema) => {
                models
                    .generate_json(plugin, granted, &model, &prompt, &schema, &options, &sink)
                    .await
            }
            Asked::Text | Asked::Seeing(_) => {
                models
                    .generate(plugin, granted, &model, &prompt, &options, &sink)
                    .await
            }
        }
        .map_err(to_wit)?;
        Ok(wit_models::Generation {
            text: g.text,
            token_ids: g.token_ids,
            tokens: g.tokens,
            finish_reason: g.finish_reason,
        })
    }
}

/// What a generation is asked with, beside its prompt.
enum Asked {
    Text,
    /// Images (none: as `Text`).
    Seeing(Vec<providers::ImageFile>),
    /// A JSON Schema, as text.
    Json(String),
}

fn to_wit(e: ModelError) -> wit_models::ModelError {
    use wit_models::ModelError as W;
    match e {
        ModelError::UnknownModel(m) => W::UnknownModel(m),
        e @ ModelError::NotGranted { .. } => W::NotGranted(e.to_string()),
        ModelError::Unavailable(m) => W::Unavailable(m),
        ModelError::RateLimited { retry_after_ms } => W::RateLimited(retry_after_ms),
        ModelError::InvalidRequest(m) => W::InvalidRequest(m),
    }
}

impl wit_models::Host for InstanceState {
    async fn embed(
        &mut self,
        model: String,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, wit_models::ModelError> {
        self.models(&model)?
            .embed(&self.plugin, &self.granted_models, &model, &texts)
            .await
            .map_err(to_wit)
    }

    async fn generate(
        &mut self,
        model: String,
        prompt: wit_models::Prompt,
        options: wit_models::GenerateOptions,
    ) -> Result<wit_models::Generation, wit_models::ModelError> {
        self.generate_with(model, prompt, Asked::Text, options)
            .await
    }

    async fn generate_json(
        &mut self,
        model: String,
        prompt: wit_models::Prompt,
        schema: String,
        options: wit_models::GenerateOptions,
    ) -> Result<wit_models::Generation, wit_models::ModelError> {
        self.generate_with(model, prompt, Asked::Json(schema), options)
            .await
    }

    async fn generate_seeing(
        &mut self,
        model: String,
        prompt: wit_models::Prompt,
        images: Vec<wit_models::ImageFile>,
        options: wit_models::GenerateOptions,
    ) -> Result<wit_models::Generation, wit_models::ModelError> {
        let images = images
            .into_iter()
            .map(|i| providers::ImageFile {
                media_type: i.media_type,
                bytes: i.bytes,
            })
            .collect();
        self.generate_with(model, prompt, Asked::Seeing(images), options)
            .await
    }

    async fn generate_image(
        &mut self,
        model: String,
        request: wit_models::ImageRequest,
    ) -> Result<wit_models::ImageFile, wit_models::ModelError> {
        let file = |f: wit_models::ImageFile| providers::ImageFile {
            media_type: f.media_type,
            bytes: f.bytes,
        };
        let request = providers::ImageRequest {
            prompt: request.prompt,
            images: request.images.into_iter().map(file).collect(),
            mask: request.mask.map(file),
            aspect_ratio: request.aspect_ratio,
            quality: request.quality,
        };
        let made = self
            .models(&model)?
            .generate_image(&self.plugin, &self.granted_models, &model, &request)
            .await
            .map_err(to_wit)?;
        Ok(wit_models::ImageFile {
            media_type: made.media_type,
            bytes: made.bytes,
        })
    }

    async fn count_tokens(
        &mut self,
        model: String,
        text: String,
    ) -> Result<u32, wit_models::ModelError> {
        self.models(&model)?
            .count_tokens(&self.plugin, &self.granted_models, &model, &text)
            .await
            .map_err(to_wit)
    }

    async fn foreground(
        &mut self,
        model: String,
        image: wit_models::Image,
    ) -> Result<Vec<u8>, wit_models::ModelError> {
        let image = providers::Image {
            width: image.width,
            height: image.height,
            rgba: image.rgba,
        };
        self.models(&model)?
            .foreground(&self.plugin, &self.granted_models, &model, image)
            .await
            .map_err(to_wit)
    }

    async fn detect(
        &mut self,
        model: String,
        image: wit_models::Image,
        options: wit_models::DetectOptions,
    ) -> Result<Vec<wit_models::Detection>, wit_models::ModelError> {
        let image = providers::Image {
            width: image.width,
            height: image.height,
            rgba: image.rgba,
        };
        let options = providers::DetectOptions {
            min_score: options.min_score,
            max_overlap: options.max_overlap,
        };
        let found = self
            .models(&model)?
            .detect(&self.plugin, &self.granted_models, &model, image, options)
            .await
            .map_err(to_wit)?;
        Ok(found.into_iter().map(detection_to_wit).collect())
    }

    async fn info(
        &mut self,
        model: String,
    ) -> Result<wit_models::ModelInfo, wit_models::ModelError> {
        let info = self
            .models(&model)?
            .info_for(&self.plugin, &self.granted_models, &model)
            .await
            .map_err(to_wit)?;
        let name = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
        Ok(wit_models::ModelInfo {
            id: info.id,
            provider: name(serde_json::json!(info.provider)),
            kind: info.kind.name().to_string(),
            dimensions: info.dimensions,
        })
    }
}

use self::weft::plugin::config as wit_config;
use self::weft::plugin::storage as wit_storage;

impl InstanceState {
    fn storage(&self) -> Result<&crate::storage::StorageAccess, wit_storage::StorageError> {
        self.storage.as_ref().ok_or_else(|| {
            wit_storage::StorageError::Unavailable(
                "storage is for tasks, not for `describe` while the plugin loads".into(),
            )
        })
    }
}

impl wit_storage::Host for InstanceState {
    async fn get(
        &mut self,
        namespace: Option<String>,
        key: String,
    ) -> Result<Option<wit_storage::Entry>, wit_storage::StorageError> {
        let mut found = self.storage()?.get_many(namespace, vec![key]).await?;
        Ok(found.pop().flatten())
    }

    async fn get_many(
        &mut self,
        namespace: Option<String>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<wit_storage::Entry>>, wit_storage::StorageError> {
        self.storage()?.get_many(namespace, keys).await
    }

    async fn set(
        &mut self,
        namespace: Option<String>,
        write: wit_storage::Write,
    ) -> Result<u64, wit_storage::StorageError> {
        let versions = self.storage()?.set_many(namespace, vec![write]).await?;
        Ok(versions.first().copied().unwrap_or_default())
    }

    async fn set_many(
        &mut self,
        namespace: Option<String>,
        writes: Vec<wit_storage::Write>,
    ) -> Result<Vec<u64>, wit_storage::StorageError> {
        self.storage()?.set_many(namespace, writes).await
    }

    async fn delete(
        &mut self,
        namespace: Option<String>,
        key: String,
        if_version: Option<u64>,
    ) -> Result<bool, wit_storage::StorageError> {
        let deletion = wit_storage::Deletion { key, if_version };
        let found = self
            .storage()?
            .delete_many(namespace, vec![deletion])
            .await?;
        Ok(found.first().copied().unwrap_or_default())
    }

    async fn delete_many(
        &mut self,
        namespace: Option<String>,
        deletions: Vec<wit_storage::Deletion>,
    ) -> Result<Vec<bool>, wit_storage::StorageError> {
        self.storage()?.delete_many(namespace, deletions).await
    }

    async fn list_keys(
        &mut self,
        namespace: Option<String>,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<wit_storage::Page, wit_storage::StorageError> {
        self.storage()?.list(namespace, prefix, after, limit).await
    }
}

impl self::weft::plugin::vectors::Host for InstanceState {
    async fn set_many(
        &mut self,
        namespace: Option<String>,
        writes: Vec<wit_storage::Write>,
        vectors: Vec<Vec<f32>>,
    ) -> Result<Vec<u64>, wit_storage::StorageError> {
        self.storage()?
            .set_many_with_vectors(namespace, writes, vectors)
            .await
    }

    async fn nearest(
        &mut self,
        namespace: Option<String>,
        prefix: String,
        query: Vec<f32>,
        skip: u32,
        limit: u32,
    ) -> Result<Vec<self::weft::plugin::vectors::Near>, wit_storage::StorageError> {
        self.storage()?
            .nearest(namespace, prefix, query, skip, limit)
            .await
    }
}

impl wit_config::Host for InstanceState {
    async fn get(&mut self, key: String) -> Result<Option<String>, wit_config::ConfigError> {
        match &self.config {
            Some(config) => config.get(&key).await,
            None => Ok(None),
        }
    }

    async fn keys(&mut self) -> Vec<String> {
        self.config
            .as_ref()
            .map(|c| c.settings.keys())
            .unwrap_or_default()
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Add WASI 0.2 and Weft's own imports to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    crate::lookup::add_to_linker(linker)?;
    Plugin::add_to_linker::<InstanceState, HasSelf<InstanceState>>(linker, |s| s)?;
    Ok(())
}

/// What a store is built from.
pub(crate) struct Sandbox<'a> {
    pub plugin: &'a str,
    pub memory_limit: u64,
    /// Fuel per run; `None`: unlimited.
    pub fuel: Option<u64>,
    pub env: &'a [(String, String)],
    pub folders: &'a [crate::manifest::FolderGrant],
    pub models: Option<Arc<Models>>,
    pub granted_models: &'a [String],
    /// Addresses it may connect or send to; empty: no network at all.
    pub network: Arc<[crate::manifest::NetGrant]>,
    /// What its `storage` import may use, for a task run.
    pub storage: Option<crate::storage::StorageAccess>,
    /// What its `config` import serves, for a task run.
    pub config: Option<crate::config::ConfigAccess>,
    /// Origins its outgoing HTTP may reach, and how.
    pub http: crate::http::HttpHooks,
}

/// A store for one instance, and the pipe collecting its stderr.
pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    sandbox: &Sandbox<'_>,
    events: Option<NodeEvents>,
    user: Arc<Grants>,
    timeout: Duration,
) -> Result<(Store<InstanceState>, MemoryOutputPipe), TaskError> {
    let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(std::io::empty()).stderr(stderr.clone());
    wasi.envs(sandbox.env);
    for grant in sandbox.folders {
        let perms = if grant.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        wasi.preopened_dir(&grant.host, &grant.guest, perms)
            .map_err(|e| {
                TaskError::Host(format!(
                    "plugin `{}`: cannot open granted folder {}: {e}",
                    sandbox.plugin,
                    grant.host.display()
                ))
            })?;
    }
    let names = crate::lookup::Names::new(&sandbox.network);
    if !sandbox.network.is_empty() {
        let grants = sandbox.network.clone();
        let resolved = names.connect_check();
        wasi.allow_tcp(true)
            .allow_udp(true)
            // Only granted names resolve ([`crate::lookup`]).
            .allow_ip_name_lookup(names.any())
            .socket_addr_check(move |addr, used| {
                let allowed = match used {
                    SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => {
                        grants.iter().any(|g| g.allows(addr)) || resolved(addr)
                    }
                    // The implicit bind of a connect or a first send: an
                    // unspecified address and port.
                    SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                        addr.ip().is_unspecified() && addr.port() == 0
                    }
                    // No servers in a task.
                    _ => false,
                };
                Box::pin(async move { allowed })
            });
    }
    let mut table = ResourceTable::new();
    table.set_max_capacity(10_000);
    let state = InstanceState {
        wasi: wasi.build(),
        table,
        limiter: MemoryLimiter {
            limit: sandbox.memory_limit as usize,
            used: 0,
            hit: false,
        },
        events,
        plugin: sandbox.plugin.to_string(),
        models: sandbox.models.clone(),
        granted_models: sandbox.granted_models.to_vec(),
        user,
        names,
        fuel: sandbox.fuel,
        storage: sandbox.storage.clone(),
        config: sandbox.config.clone(),
        http_ctx: wasmtime_wasi_http::WasiHttpCtx::new(),
        http: crate::http::HttpHooks {
            plugin: sandbox.plugin.to_string(),
            grants: sandbox.http.grants.clone(),
            limits: sandbox.http.limits,
            permits: sandbox.http.permits.clone(),
            stats: sandbox.http.stats.clone(),
        },
        deadline: Instant::now() + timeout,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store
        .set_fuel(sandbox.fuel.unwrap_or(u64::MAX))
        .map_err(|e| TaskError::Host(format!("cannot set fuel: {e}")))?;
    store.epoch_deadline_callback(|store| {
        if Instant::now() >= store.data().deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store.set_epoch_deadline(1);
    Ok((store, stderr))
}

/// Turn a trap (or other wasmtime error) of a run into a task error.
pub(crate) fn classify(
    error: wasmtime::Error,
    store: &Store<InstanceState>,
    stderr: &MemoryOutputPipe,
    timeout: Duration,
) -> TaskError {
    let state = store.data();
    if state.limiter.hit {
        return TaskError::MemoryLimit {
            plugin: state.plugin.clone(),
            limit_bytes: state.limiter.limit as u64,
        };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return TaskError::Timeout { limit: timeout };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) {
        return TaskError::FuelExhausted {
            plugin: state.plugin.clone(),
            limit: state.fuel.unwrap_or(u64::MAX),
        };
    }
    let mut message = trap_message(&error);
    let err_text = stderr_text(stderr);
    if !err_text.is_empty() {
        message.push_str("\nguest stderr:\n");
        message.push_str(&err_text);
    }
    TaskError::Trap {
        plugin: state.plugin.clone(),
        message,
    }
}

/// How many wasm frames a trap message shows.
const TRAP_FRAMES: usize = 5;

/// What a trap says to a person: what happened (`stack overflow`, `wasm
/// trap: unreachable`), then the innermost few wasm frames, named where the
/// component has names. Never the host's own backtrace or source paths
/// (`{error:?}` would print both).
fn trap_message(error: &wasmtime::Error) -> String {
    let mut message = match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "stack overflow".to_string(),
        // Rust and C guests keep their own stack in linear memory: when it
        // overflows, this is what the host sees.
        Some(Trap::MemoryOutOfBounds) => {
            format!(
                "{} (or a stack overflow in the guest's own stack)",
                Trap::MemoryOutOfBounds
            )
        }
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    if let Some(trace) = error.downcast_ref::<wasmtime::WasmBacktrace>() {
        let frames = trace.frames();
        for frame in frames.iter().take(TRAP_FRAMES) {
            let name = frame.func_name().map_or_else(
                || format!("function #{}", frame.func_index()),
                |n| n.to_string(),
            );
            message.push_str(&format!("\n  at {name}"));
        }
        if frames.len() > TRAP_FRAMES {
            message.push_str(&format!("\n  … {} more frames", frames.len() - TRAP_FRAMES));
        }
    }
    weft_core::event::bounded_message(message)
}

/// The guest's stderr so far, as text, the last [`MAX_LINE`] bytes at most.
pub(crate) fn stderr_text(stderr: &MemoryOutputPipe) -> String {
    let bytes = stderr.contents();
    let start = bytes.len().saturating_sub(MAX_LINE);
    String::from_utf8_lossy(&bytes[start..])
        .trim_end()
        .to_string()
}

/// A detection as the `models` import answers it.
fn detection_to_wit(d: providers::Detection) -> wit_models::Detection {
    wit_models::Detection {
        label: d.label,
        score: d.score,
        x: d.x,
        y: d.y,
        width: d.width,
        height: d.height,
        keypoints: d
            .keypoints
            .into_iter()
            .map(|k| wit_models::Keypoint {
                x: k.x,
                y: k.y,
                label: k.label,
            })
            .collect(),
    }
}
