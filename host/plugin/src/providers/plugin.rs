//! Models served by a provider plugin: a component exporting
//! `weft:plugin/provider` (`[models.ID] provider = "plugin:NAME"`).
//!
//! Owns the plugin's long-lived instances (a pool of at most `[limits]
//! instances`, each taking one call at a time and keeping the models it
//! loaded), arming each call with its deadline and fuel, pulling generation
//! streams, and recycling an instance that trapped. The [`Models`] service in
//! front of it applies grants and limiters as for any provider; this module
//! must not know about them.
//!
//! [`Models`]: super::Models

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{InstancePre, ResourceAny};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::{GenerateOptions, Generation, ModelConfig, ModelError, ModelKind, Prompt, TokenSink};
use crate::instance::{self, InstanceState};
use crate::{Confinement, PluginError, WeftEngine};

/// The bindings of the `provider-plugin` world; the imports are the task
/// world's, so one linker serves both.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "provider-plugin",
        exports: { default: async },
        with: {
            "weft:plugin/log": crate::instance::weft::plugin::log,
            "weft:plugin/models": crate::instance::weft::plugin::models,
            "weft:plugin/config": crate::instance::weft::plugin::config,
        },
    });
}

use crate::instance::weft::plugin::models as wit_models;
use bindings::ProviderPlugin as Bindings;
use bindings::ProviderPluginPre;
use bindings::exports::weft::plugin::provider as wit;

/// A loaded provider plugin: its pre-instantiated component and its idle
/// instances.
pub struct ProviderPlugin {
    confinement: Confinement,
    engine: WeftEngine,
    pre: ProviderPluginPre<InstanceState>,
    /// Instances not serving a call now.
    idle: Mutex<Vec<Instance>>,
    /// One permit per instance that may exist.
    slots: Arc<tokio::sync::Semaphore>,
    instances: u32,
}

/// One live instance and the models it loaded.
struct Instance {
    store: Store<InstanceState>,
    stderr: MemoryOutputPipe,
    bindings: Bindings,
    models: HashMap<String, ResourceAny>,
    /// Its place in the engine's pool, held for as long as it lives.
    _permit: crate::fair::Permit,
}

impl ProviderPlugin {
    /// A provider of `instances` instances of `pre`'s component.
    pub(crate) fn new(
        confinement: Confinement,
        engine: WeftEngine,
        pre: &InstancePre<InstanceState>,
        instances: u32,
    ) -> Result<Self, PluginError> {
        let pre =
            ProviderPluginPre::new(pre.clone()).map_err(|e| PluginError::Link(format!("{e:#}")))?;
        let instances = instances.max(1);
        Ok(ProviderPlugin {
            confinement,
            engine,
            pre,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(tokio::sync::Semaphore::new(instances as usize)),
            instances,
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.confinement.name
    }

    /// Instances alive now (idle or serving).
    pub fn live_instances(&self) -> usize {
        let serving = self.instances as usize - self.slots.available_permits();
        serving + self.idle().len()
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Instance>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An instance for one call of at most `timeout`: an idle one, or a
    /// fresh one.
    async fn lease(&self, timeout: Duration) -> Result<Lease<'_>, ModelError> {
        let slot = tokio::time::timeout(timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| {
                self.unavailable(format!(
                    "all {} of its instances stayed busy for {} ms",
                    self.instances,
                    timeout.as_millis()
                ))
            })?
            .map_err(|e| self.unavailable(e.to_string()))?;
        let idle = self.idle().pop();
        let mut instance = match idle {
            Some(instance) => instance,
            None => self.instantiate(timeout).await?,
        };
        InstanceState::arm(&mut instance.store, timeout)
            .map_err(|e| self.unavailable(format!("cannot set its fuel: {e}")))?;
        Ok(Lease {
            plugin: self,
            instance: Some(instance),
            timeout,
            _slot: slot,
        })
    }

    async fn instantiate(&self, timeout: Duration) -> Result<Instance, ModelError> {
        let permit = self
            .engine
            .instance_permit(&format!("provider:{}", self.name()))
            .await;
        // No user behind a call (so no secrets), and no models: a provider
        // calling the models it serves would wait for itself.
        let sandbox = crate::instance::Sandbox {
            config: Some(self.confinement.config("")),
            models: None,
            ..self.confinement.sandbox()
        };
        let (mut store, stderr) = instance::new_store(
            self.engine.engine(),
            &sandbox,
            None,
            Arc::new(weft_core::grant::Grants::all()),
            timeout,
        )
        .map_err(|e| self.unavailable(e.to_string()))?;
        let bindings = match self.pre.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => {
                let why = instance::classify(e, &store, &stderr, timeout);
                return Err(self.unavailable(format!("cannot start an instance: {why}")));
            }
        };
        tracing::debug!(plugin = %self.name(), "provider instance started");
        Ok(Instance {
            store,
            stderr,
            bindings,
            models: HashMap::new(),
            _permit: permit,
        })
    }

    fn unavailable(&self, why: String) -> ModelError {
        ModelError::Unavailable(format!("provider plugin `{}`: {why}", self.name()))
    }
}

/// One call's use of an instance. Dropped, it returns the instance to the
/// idle ones, unless the call trapped (then the instance is gone).
struct Lease<'a> {
    plugin: &'a ProviderPlugin,
    instance: Option<Instance>,
    timeout: Duration,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            self.plugin.idle().push(instance);
        }
    }
}

impl Lease<'_> {
    fn parts(&mut self) -> (&mut Store<InstanceState>, &Bindings) {
        let instance = self.instance.as_mut().expect("a lease holds its instance");
        (&mut instance.store, &instance.bindings)
    }

    /// The answer of a call: its value, its error, or (when it trapped) an
    /// `unavailable` naming the trap, the instance dropped.
    fn settle<T>(
        &mut self,
        result: wasmtime::Result<Result<T, wit_models::ModelError>>,
    ) -> Result<T, ModelError> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(from_wit(e)),
            Err(e) => {
                let instance = self.instance.take().expect("a lease holds its instance");
                let why = instance::classify(e, &instance.store, &instance.stderr, self.timeout);
                tracing::warn!(plugin = %self.plugin.name(), error = %why, "provider instance trapped; recycled");
                Err(self
                    .plugin
                    .unavailable(format!("{why} (the instance was recycled)")))
            }
        }
    }

    /// Model `config.id` in this instance, loaded on first use.
    async fn model(&mut self, spec: &Spec) -> Result<ResourceAny, ModelError> {
        if let Some(handle) = self.instance.as_ref().and_then(|i| i.models.get(&spec.id)) {
            return Ok(*handle);
        }
        let config = spec.wit().ok_or_else(|| {
            ModelError::InvalidRequest(format!(
                "model `{}`: provider plugins serve `embedding` and `generation` models; `{}` models are local ONNX models",
                spec.id,
                spec.kind.name()
            ))
        })?;
        let (store, bindings) = self.parts();
        let result = bindings
            .weft_plugin_provider()
            .model()
            .call_load(store, &config)
            .await;
        let handle = self.settle(result)?;
        if let Some(instance) = self.instance.as_mut() {
            instance.models.insert(spec.id.clone(), handle);
        }
        Ok(handle)
    }
}

fn from_wit(e: wit_models::ModelError) -> ModelError {
    use weft_core::event::bounded_message as bounded;
    use wit_models::ModelError as W;
    match e {
        W::UnknownModel(m) => ModelError::UnknownModel(bounded(m)),
        W::NotGranted(m) | W::Unavailable(m) => ModelError::Unavailable(bounded(m)),
        W::RateLimited(ms) => ModelError::RateLimited { retry_after_ms: ms },
        W::InvalidRequest(m) => ModelError::InvalidRequest(bounded(m)),
    }
}

/// What a provider plugin is told about one configured model.
struct Spec {
    id: String,
    kind: ModelKind,
    name: String,
    settings: String,
}

impl Spec {
    /// The WIT config; `None` for a kind the `provider` interface has not
    /// (background removal is served by local ONNX models only, image
    /// generation by HTTP providers).
    fn wit(&self) -> Option<wit::ModelConfig> {
        let kind = match self.kind {
            ModelKind::Embedding => wit::ModelKind::Embedding,
            ModelKind::Generation => wit::ModelKind::Generation,
            ModelKind::BackgroundRemoval
            | ModelKind::ImageGeneration
            | ModelKind::FaceDetection => {
                return None;
            }
        };
        Some(wit::ModelConfig {
            id: self.id.clone(),
            kind,
            name: self.name.clone(),
            settings: self.settings.clone(),
        })
    }
}

/// One model served by a provider plugin: the [`super::Provider`] the
/// `models` import calls.
pub(crate) struct PluginModel {
    plugin: Arc<ProviderPlugin>,
    spec: Spec,
    timeout: Duration,
    dimensions: OnceLock<Option<u32>>,
}

impl PluginModel {
    /// Model `id` of `config`, served by `plugin`: loaded in one instance
    /// now, so that a bad setting is said at once and its size is known.
    pub(crate) async fn load(
        plugin: Arc<ProviderPlugin>,
        id: &str,
        config: &ModelConfig,
    ) -> Result<Self, ModelError> {
        let model = PluginModel {
            plugin,
            spec: Spec {
                id: id.to_string(),
                kind: config.kind(),
                name: config.model.clone(),
                settings: serde_json::Value::Object(config.settings.clone()).to_string(),
            },
            timeout: Duration::from_millis(config.timeout_ms.unwrap_or(60_000)),
            dimensions: OnceLock::new(),
        };
        let mut lease = model.plugin.lease(model.timeout).await?;
        let handle = lease.model(&model.spec).await?;
        let (store, bindings) = lease.parts();
        let result = bindings
            .weft_plugin_provider()
            .model()
            .call_dimensions(store, handle)
            .await
            .map(Ok);
        let dimensions = lease.settle(result)?;
        let _ = model.dimensions.set(dimensions);
        drop(lease);
        Ok(model)
    }
}

impl PluginModel {
    /// An instance for one call, with this model loaded in it.
    async fn start(&self) -> Result<(Lease<'_>, ResourceAny), ModelError> {
        let mut lease = self.plugin.lease(self.timeout).await?;
        let handle = lease.model(&self.spec).await?;
        Ok((lease, handle))
    }
}

#[async_trait::async_trait]
impl super::Provider for PluginModel {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        let (mut lease, handle) = self.start().await?;
        let (store, bindings) = lease.parts();
        let result = bindings
            .weft_plugin_provider()
            .model()
            .call_embed(store, handle, texts)
            .await;
        let vectors = lease.settle(result)?;
        if vectors.len() != texts.len() {
            return Err(self.plugin.unavailable(format!(
                "gave {} vectors for {} texts",
                vectors.len(),
                texts.len()
            )));
        }
        Ok(vectors)
    }

    async fn generate(
        &self,
        prompt: &Prompt,
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        let (mut lease, handle) = self.start().await?;
        let (store, bindings) = lease.parts();
        let result = bindings
            .weft_plugin_provider()
            .model()
            .call_generate(
                store,
                handle,
                &to_wit_prompt(prompt),
                &to_wit_options(options),
            )
            .await;
        let stream = lease.settle(result)?;
        let generation = loop {
            let (store, bindings) = lease.parts();
            let result = bindings
                .weft_plugin_provider()
                .generation_stream()
                .call_next(store, stream)
                .await;
            match lease.settle(result)? {
                wit::Chunk::Text(text) => sink(&text),
                wit::Chunk::Done(g) => break g,
            }
        };
        let (store, _) = lease.parts();
        if let Err(e) = stream.resource_drop_async(store).await {
            tracing::debug!(plugin = %self.plugin.name(), error = %e, "dropping a generation stream");
        }
        Ok(Generation {
            text: generation.text,
            token_ids: generation.token_ids,
            tokens: generation.tokens,
            finish_reason: generation.finish_reason,
        })
    }

    async fn count_tokens(&self, text: &str) -> Result<u32, ModelError> {
        let (mut lease, handle) = self.start().await?;
        let (store, bindings) = lease.parts();
        let result = bindings
            .weft_plugin_provider()
            .model()
            .call_count_tokens(store, handle, text)
            .await;
        lease.settle(result)
    }

    fn dimensions(&self) -> Option<u32> {
        self.dimensions.get().copied().flatten()
    }
}

fn to_wit_prompt(prompt: &Prompt) -> wit_models::Prompt {
    match prompt {
        Prompt::Text(t) => wit_models::Prompt::Text(t.clone()),
        Prompt::Chat(messages) => wit_models::Prompt::Chat(
            messages
                .iter()
                .map(|m| wit_models::Message {
                    role: m.role.clone(),
                    content: m.content.clone(),
                })
                .collect(),
        ),
    }
}

fn to_wit_options(options: &GenerateOptions) -> wit_models::GenerateOptions {
    wit_models::GenerateOptions {
        max_tokens: options.max_tokens,
        temperature: options.temperature,
        stop: options.stop.clone(),
    }
}
