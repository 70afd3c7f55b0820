//! Models as a host service: the `models` import's implementation.
//!
//! Owns model configuration (`[models.ID]`), the [`Provider`] trait (the seam
//! between the import and a backend: local ONNX, OpenAI-compatible HTTP,
//! Anthropic HTTP, a provider plugin), and [`Models`], which looks models up by id, checks a
//! plugin's grant, and admits each call through the model's limiter
//! (concurrency, sliding-window rate, pauses asked for by a provider's
//! Retry-After). It must not know about wasm, graphs or runs.

#[cfg(feature = "http")]
mod anthropic;
#[cfg(feature = "http")]
pub mod download;
#[cfg(feature = "onnx")]
mod faces;
#[cfg(feature = "onnx")]
mod foreground;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "onnx")]
mod onnx;
#[cfg(feature = "http")]
mod openai;
pub mod plugin;
mod tasks;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use weft_queue::{Queue, QueueConfig, QueueState, RateConfig, Wait};

#[cfg(feature = "onnx")]
pub use faces::OnnxFaces;
#[cfg(feature = "onnx")]
pub use foreground::OnnxForeground;
#[cfg(feature = "onnx")]
pub use onnx::{OnnxEmbedder, OnnxGenerator, onnx_runtime, set_default_onnx_runtime};

/// Without the `onnx` feature there is no ONNX Runtime to point at.
#[cfg(not(feature = "onnx"))]
pub fn set_default_onnx_runtime(_path: std::path::PathBuf) {}

/// Where a model is served from: `onnx`, `openai`, `anthropic` or
/// `plugin:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ProviderKind {
    /// A local ONNX model run by ONNX Runtime.
    Onnx,
    /// An OpenAI-compatible HTTP API (OpenAI, llama.cpp, vLLM, Ollama...).
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// The provider plugin of this name (a component exporting
    /// `weft:plugin/provider`, loaded from the plugins folder).
    Plugin(String),
}

impl TryFrom<String> for ProviderKind {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "onnx" => Ok(ProviderKind::Onnx),
            "openai" => Ok(ProviderKind::Openai),
            "anthropic" => Ok(ProviderKind::Anthropic),
            _ => match text.strip_prefix("plugin:") {
                Some(name) if plain_name(name) => Ok(ProviderKind::Plugin(name.to_string())),
                _ => Err(format!(
                    "unknown provider `{text}`: expected `onnx`, `openai`, `anthropic` or `plugin:NAME` (NAME a plugin's file stem)"
                )),
            },
        }
    }
}

impl From<ProviderKind> for String {
    fn from(kind: ProviderKind) -> String {
        kind.to_string()
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderKind::Onnx => f.write_str("onnx"),
            ProviderKind::Openai => f.write_str("openai"),
            ProviderKind::Anthropic => f.write_str("anthropic"),
            ProviderKind::Plugin(name) => write!(f, "plugin:{name}"),
        }
    }
}

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Texts in, vectors out.
    Embedding,
    /// Text in, text out.
    Generation,
    /// An image in, its foreground's alpha mask out (local ONNX models).
    BackgroundRemoval,
    /// A prompt (and images to edit) in, an image out (HTTP providers).
    ImageGeneration,
    /// An image in, the faces in it out (local ONNX models).
    FaceDetection,
}

impl ModelKind {
    /// Its name in configuration and in `model-info`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Embedding => "embedding",
            ModelKind::Generation => "generation",
            ModelKind::BackgroundRemoval => "background-removal",
            ModelKind::ImageGeneration => "image-generation",
            ModelKind::FaceDetection => "face-detection",
        }
    }
}

/// An image as 8-bit RGBA pixels, row by row (the WIT `image`).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// `width × height × 4` bytes.
    pub rgba: Vec<u8>,
}

/// A point of a [`Detection`], in pixels from the image's top left.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Keypoint {
    /// Pixels from the left.
    pub x: f32,
    /// Pixels from the top.
    pub y: f32,
    /// What the point is (`rightEye`, `noseTip`, …).
    pub label: String,
}

/// Something a detection model found in an image (the WIT `detection`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// What it is (`face`).
    pub label: String,
    /// How sure the model is, 0 to 1.
    pub score: f32,
    /// The box's left edge, in pixels.
    pub x: f32,
    /// The box's top edge, in pixels.
    pub y: f32,
    /// The box's width, in pixels.
    pub width: f32,
    /// The box's height, in pixels.
    pub height: f32,
    /// Its keypoints (a face's eyes, nose, mouth and ears).
    pub keypoints: Vec<Keypoint>,
}

/// Which detections a detection model answers (the WIT `detect-options`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectOptions {
    /// Those scoring below this are dropped.
    pub min_score: f32,
    /// Those overlapping a better one by more than this (intersection over
    /// union) are merged into it.
    pub max_overlap: f32,
}

/// The most detections one `detect` call answers.
pub const MAX_DETECTIONS: usize = 100;

impl DetectOptions {
    /// Both within 0 to 1; an `invalid-request` naming the one that is not.
    pub fn check(&self) -> Result<(), ModelError> {
        for (name, v) in [
            ("min-score", self.min_score),
            ("max-overlap", self.max_overlap),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ModelError::InvalidRequest(format!(
                    "{name} must be from 0 to 1, got {v}"
                )));
            }
        }
        Ok(())
    }
}

/// The most pixels an image given to a model may have: 50 megapixels (what
/// the image tasks take).
pub const MAX_IMAGE_PIXELS: u64 = 50_000_000;

impl Image {
    /// Whether its size and data agree and it is within
    /// [`MAX_IMAGE_PIXELS`]; an `invalid-request` saying what is wrong if not.
    pub fn check(&self) -> Result<(), ModelError> {
        let pixels = u64::from(self.width) * u64::from(self.height);
        if pixels == 0 || pixels > MAX_IMAGE_PIXELS {
            return Err(ModelError::InvalidRequest(format!(
                "image of {}×{} pixels: images of 1 to {MAX_IMAGE_PIXELS} pixels are taken",
                self.width, self.height
            )));
        }
        if self.rgba.len() as u64 != pixels * 4 {
            return Err(ModelError::InvalidRequest(format!(
                "image of {}×{} pixels needs {} bytes of RGBA, got {}",
                self.width,
                self.height,
                pixels * 4,
                self.rgba.len()
            )));
        }
        Ok(())
    }
}

/// One model, as configured under `[models.ID]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Where it is served from.
    pub provider: ProviderKind,
    /// What it does (default: `generation` for HTTP providers; required for ONNX).
    pub kind: Option<ModelKind>,
    /// ONNX: the `.onnx` file. HTTP: the provider's model name.
    pub model: String,
    /// ONNX: the `tokenizer.json` file (default: beside the model).
    pub tokenizer: Option<PathBuf>,
    /// ONNX: longest input in tokens; longer texts are truncated (default 256).
    pub max_length: Option<usize>,
    /// ONNX: sessions kept, so this many calls run at once (default 2).
    pub sessions: Option<usize>,
    /// HTTP: the API's base URL (default: the provider's public API).
    pub base_url: Option<String>,
    /// HTTP: the environment variable holding the API key (never logged).
    pub api_key_env: Option<String>,
    /// HTTP: per-request timeout in ms (default 60000).
    pub timeout_ms: Option<u64>,
    /// HTTP: retries on 429 and 5xx (default 3).
    pub max_retries: Option<u32>,
    /// Calls running at once (default: no limit beyond `sessions`).
    pub concurrency: Option<usize>,
    /// Calls per sliding window.
    pub rate: Option<RateConfig>,
    /// Longest a call waits for the limiter before it is answered
    /// `rate-limited` (default 60000 ms).
    pub max_wait_ms: Option<u64>,
    /// `weft models pull`: files to download into the model's folder.
    #[serde(default)]
    pub files: Vec<ModelFile>,
    /// A provider plugin: its settings for this model (`[models.ID.settings]`),
    /// passed to it as one JSON object.
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// Whether `name` is a plain file name: 1-255 of `[A-Za-z0-9._-]`, not
/// starting with `.` (so never `..`, a path, or a hidden file).
pub fn plain_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The folder model `id`'s files are downloaded into, under `models_dir`;
/// an error naming `id` unless it is a plain name.
pub fn model_folder(models_dir: &std::path::Path, id: &str) -> Result<PathBuf, String> {
    match plain_name(id) {
        true => Ok(models_dir.join(id)),
        false => Err(format!(
            "model id `{id}` is not a plain name (letters, digits, `.`, `-`, `_`; not starting with `.`): nothing is downloaded for it"
        )),
    }
}

/// A file `weft models pull` downloads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// HTTP(S) URL.
    pub url: String,
    /// Hex SHA-256 the download must have.
    pub sha256: String,
    /// The file's name in the model's folder: a plain name (no `/`, not
    /// starting with `.`).
    pub name: String,
    /// The most bytes the download may have (default 16 GiB): a server that
    /// sends more is cut off and the partial file removed.
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

impl ModelConfig {
    /// A local ONNX model of `kind` in the file `model` (its tokenizer beside
    /// it), with every other setting at its default.
    pub fn local(kind: ModelKind, model: &std::path::Path) -> Self {
        ModelConfig {
            provider: ProviderKind::Onnx,
            kind: Some(kind),
            model: model.display().to_string(),
            tokenizer: None,
            max_length: None,
            sessions: None,
            base_url: None,
            api_key_env: None,
            timeout_ms: None,
            max_retries: None,
            concurrency: None,
            rate: None,
            max_wait_ms: None,
            files: Vec::new(),
            settings: serde_json::Map::new(),
        }
    }

    /// The model's kind.
    pub fn kind(&self) -> ModelKind {
        self.kind.unwrap_or(ModelKind::Generation)
    }
}

/// Why a model call did not succeed (the WIT `model-error`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// No such model is configured.
    #[error("unknown model `{0}`")]
    UnknownModel(String),
    /// The plugin may not use this model.
    #[error(
        "plugin `{plugin}` is not granted model `{model}` (add it to `[grants] models` in its manifest)"
    )]
    NotGranted {
        /// The plugin.
        plugin: String,
        /// The model.
        model: String,
    },
    /// The model cannot serve now.
    #[error("model unavailable: {0}")]
    Unavailable(String),
    /// Over a rate limit: try again later.
    #[error("rate limited: retry after {retry_after_ms} ms")]
    RateLimited {
        /// How long to wait.
        retry_after_ms: u64,
    },
    /// The request does not suit the model.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ModelError {
    /// Model `id` of kind `is` was asked for what a `wanted` model does.
    pub fn wrong_kind(id: &str, is: ModelKind, wanted: ModelKind) -> Self {
        ModelError::InvalidRequest(format!(
            "model `{id}` serves `{}`, not `{}`",
            is.name(),
            wanted.name()
        ))
    }
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// What to generate from.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// A plain prompt.
    Text(String),
    /// A conversation.
    Chat(Vec<Message>),
}

impl Prompt {
    /// The prompt as one text (for models without a chat format).
    pub fn as_text(&self) -> String {
        match self {
            Prompt::Text(t) => t.clone(),
            Prompt::Chat(messages) => messages
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The prompt as messages (a plain prompt is one user message).
    pub fn messages(&self) -> Vec<Message> {
        match self {
            Prompt::Text(t) => vec![Message {
                role: "user".into(),
                content: t.clone(),
            }],
            Prompt::Chat(m) => m.clone(),
        }
    }
}

/// An image file given to a vision model with a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFile {
    /// `image/png` or `image/jpeg`.
    pub media_type: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

impl ImageFile {
    /// The most images one call gives.
    pub const MAX_IMAGES: usize = 8;
    /// The largest image file: 5 MB once in base64 (Anthropic's limit is
    /// on the encoded image).
    pub const MAX_BYTES: usize = 5_242_880 / 4 * 3;
    /// The most bytes of images in one call (about 27 MB in base64, under
    /// Anthropic's 32 MB request limit and OpenAI's 50 MB).
    pub const MAX_TOTAL_BYTES: usize = 20 << 20;

    /// Checks `images`: how many, how large, and that each is the PNG or
    /// JPEG its media type says.
    pub fn check_all(images: &[ImageFile]) -> Result<(), ModelError> {
        let invalid = |m: String| Err(ModelError::InvalidRequest(m));
        if images.is_empty() || images.len() > Self::MAX_IMAGES {
            return invalid(format!(
                "{} images; 1 to {}",
                images.len(),
                Self::MAX_IMAGES
            ));
        }
        for (i, image) in images.iter().enumerate() {
            let media_type = image.media_type.as_str();
            if !matches!(media_type, "image/png" | "image/jpeg") {
                return invalid(format!(
                    "image {i}: `{media_type}`; image/png or image/jpeg"
                ));
            }
            if image.bytes.len() > Self::MAX_BYTES {
                return invalid(format!(
                    "image {i}: {} bytes; at most {}",
                    image.bytes.len(),
                    Self::MAX_BYTES
                ));
            }
            if Self::sniff(&image.bytes) != Some(media_type) {
                return invalid(format!("image {i}: not a {media_type} file"));
            }
        }
        let total: usize = images.iter().map(|i| i.bytes.len()).sum();
        if total > Self::MAX_TOTAL_BYTES {
            return invalid(format!(
                "{total} bytes of images; at most {} in one call",
                Self::MAX_TOTAL_BYTES
            ));
        }
        Ok(())
    }

    /// The media type `bytes` are, by their first bytes: `image/png`,
    /// `image/jpeg` or `image/webp`.
    pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
        match bytes {
            [0x89, b'P', b'N', b'G', ..] => Some("image/png"),
            [0xff, 0xd8, 0xff, ..] => Some("image/jpeg"),
            [
                b'R',
                b'I',
                b'F',
                b'F',
                _,
                _,
                _,
                _,
                b'W',
                b'E',
                b'B',
                b'P',
                ..,
            ] => Some("image/webp"),
            _ => None,
        }
    }

    /// Its bytes in base64.
    pub fn base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }
}

/// What an image-generation model is asked to make (the WIT
/// `image-request`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageRequest {
    /// What to make, or the edit to apply.
    pub prompt: String,
    /// Images to edit: the first, with the rest as references.
    pub images: Vec<ImageFile>,
    /// Where to edit (transparent pixels).
    pub mask: Option<ImageFile>,
    /// `1:1`, `16:9`, `9:16`, `4:3` or `3:4`.
    pub aspect_ratio: Option<String>,
    /// `low`, `medium` or `high`.
    pub quality: Option<String>,
}

impl ImageRequest {
    /// Checks its images as [`ImageFile::check_all`] does, and the mask:
    /// a PNG (transparent where to edit), only with an image to edit.
    pub fn check(&self) -> Result<(), ModelError> {
        if !self.images.is_empty() {
            ImageFile::check_all(&self.images)?;
        }
        let Some(mask) = &self.mask else {
            return Ok(());
        };
        if self.images.is_empty() || mask.media_type != "image/png" {
            return Err(ModelError::InvalidRequest(
                "the mask is a PNG (transparent where to edit), given with the image to edit"
                    .into(),
            ));
        }
        ImageFile::check_all(std::slice::from_ref(mask))
    }
}

/// The last user message of `messages` (JSON, as a provider sends them), to
/// give images to; an error when there is none.
pub(crate) fn last_user(
    messages: &mut [serde_json::Value],
) -> Result<&mut serde_json::Value, ModelError> {
    messages
        .iter_mut()
        .rev()
        .find(|m| m["role"] == "user")
        .ok_or_else(|| ModelError::InvalidRequest("images need a user message to go with".into()))
}

/// Generation settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerateOptions {
    /// Most tokens to generate (default 256).
    pub max_tokens: Option<u32>,
    /// 0 (or unset, for local models): greedy.
    pub temperature: Option<f32>,
    /// Stop before any of these.
    pub stop: Vec<String>,
}

/// A generated text.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Generation {
    /// The text.
    pub text: String,
    /// Token ids, when the model exposes them.
    pub token_ids: Vec<u32>,
    /// Tokens generated.
    pub tokens: u32,
    /// `length`, `stop` or `end`.
    pub finish_reason: String,
}

/// What a model is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Its id.
    pub id: String,
    /// Where it is served from.
    pub provider: ProviderKind,
    /// What it does.
    pub kind: ModelKind,
    /// Vector size, when known.
    pub dimensions: Option<u32>,
}

/// Receives generated text as it comes.
pub type TokenSink<'a> = dyn Fn(&str) + Send + Sync + 'a;

/// A model backend.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// One vector per text.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError>;
    /// Generate, passing text to `sink` as it is produced.
    async fn generate(
        &self,
        prompt: &Prompt,
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError>;
    /// Tokens in `text`.
    async fn count_tokens(&self, text: &str) -> Result<u32, ModelError>;
    /// Vector size, for embedding models that know it.
    fn dimensions(&self) -> Option<u32> {
        None
    }
    /// Generate a JSON value for `schema` (an object): held to it where
    /// the provider has a native mode, else as [`Provider::generate`] (the
    /// schema is in the caller's prompt).
    async fn generate_json(
        &self,
        prompt: &Prompt,
        _schema: &serde_json::Value,
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        self.generate(prompt, options, sink).await
    }
    /// Generate from `prompt` with `images` (checked by
    /// [`ImageFile::check_all`]) given with its last user message. Only
    /// vision models of HTTP providers take images.
    async fn generate_seeing(
        &self,
        _prompt: &Prompt,
        _images: &[ImageFile],
        _options: &GenerateOptions,
        _sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        Err(ModelError::InvalidRequest(
            "this model does not take images (vision models of HTTP providers do)".into(),
        ))
    }
    /// An image made as `request` (checked by [`ImageRequest::check`])
    /// asks. Only image-generation models of HTTP providers make them.
    async fn generate_image(&self, _request: &ImageRequest) -> Result<ImageFile, ModelError> {
        Err(ModelError::InvalidRequest(
            "this model does not make images".into(),
        ))
    }
    /// The foreground's alpha mask of `image` (checked by [`Image::check`]):
    /// one byte per pixel. Only background-removal models have one.
    async fn foreground(&self, _image: Image) -> Result<Vec<u8>, ModelError> {
        Err(ModelError::InvalidRequest(
            "this model does not remove backgrounds".into(),
        ))
    }
    /// What the model finds in `image` (both checked), best first, at most
    /// [`MAX_DETECTIONS`]. Only detection models find anything.
    async fn detect(
        &self,
        _image: Image,
        _options: DetectOptions,
    ) -> Result<Vec<Detection>, ModelError> {
        Err(ModelError::InvalidRequest(
            "this model does not detect anything".into(),
        ))
    }
}

/// The configured models, ready to serve calls.
pub struct Models {
    entries: BTreeMap<String, Entry>,
    /// Where `ai.model-download` puts model files (one folder per model).
    dir: Option<PathBuf>,
    /// What Retry-After pauses are measured by.
    clock: Arc<dyn weft_core::clock::Clock>,
    /// The provider plugins loaded now, by name (swapped on reload).
    plugins: std::sync::RwLock<BTreeMap<String, Arc<plugin::ProviderPlugin>>>,
}

struct Entry {
    config: ModelConfig,
    /// Built on first use (loading an ONNX model takes a moment, and a
    /// missing runtime must not stop the host from starting).
    provider: tokio::sync::Mutex<Option<Built>>,
    queue: Queue,
    /// Serialises admission (check, then take) and wakes waiters on release.
    admit: tokio::sync::Mutex<()>,
    released: tokio::sync::Notify,
}

/// A model's provider, with the provider plugin it was built on (if any):
/// after a reload replaced that plugin, it is built again.
struct Built {
    plugin: Option<Arc<plugin::ProviderPlugin>>,
    provider: Arc<dyn Provider>,
}

/// `plugin` may call `model` if its manifest grants it (or grants `*`).
fn check_grant(plugin: &str, granted: &[String], model: &str) -> Result<(), ModelError> {
    if granted.iter().any(|g| g == model || g == "*") {
        Ok(())
    } else {
        Err(ModelError::NotGranted {
            plugin: plugin.to_string(),
            model: model.to_string(),
        })
    }
}

/// An `invalid-request` unless model `id` is of kind `wanted`.
fn expect_kind(id: &str, entry: &Entry, wanted: ModelKind) -> Result<(), ModelError> {
    let kind = entry.config.kind();
    if kind == wanted {
        Ok(())
    } else {
        Err(ModelError::wrong_kind(id, kind, wanted))
    }
}

/// A call admitted by a model's limiter; releases its slot when dropped.
struct Permit<'a>(&'a Entry);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.queue.release("");
        self.0.released.notify_one();
    }
}

/// Load or connect the provider of model `id` (a provider plugin's models
/// are built by [`Models::provider`]).
#[cfg_attr(not(any(feature = "onnx", feature = "http")), allow(unused_variables))]
async fn build_provider(id: &str, config: ModelConfig) -> Result<Arc<dyn Provider>, ModelError> {
    match config.provider {
        ProviderKind::Plugin(_) => Err(ModelError::Unavailable(format!(
            "model `{id}`: a provider plugin's model is built by `Models`"
        ))),
        #[cfg(not(feature = "onnx"))]
        ProviderKind::Onnx => Err(built_without("ONNX models", "onnx")),
        #[cfg(not(feature = "http"))]
        ProviderKind::Openai | ProviderKind::Anthropic => {
            Err(built_without("HTTP model providers", "http"))
        }
        #[cfg(feature = "onnx")]
        ProviderKind::Onnx => load_onnx(id.to_string(), config).await,
        #[cfg(feature = "http")]
        ProviderKind::Openai => Ok(Arc::new(openai::OpenAi::new(id, &config)?)),
        #[cfg(feature = "http")]
        ProviderKind::Anthropic => Ok(Arc::new(anthropic::Anthropic::new(id, &config)?)),
    }
}

/// Load ONNX model `id` (off the async threads: it reads and compiles the
/// model file).
#[cfg(feature = "onnx")]
async fn load_onnx(id: String, config: ModelConfig) -> Result<Arc<dyn Provider>, ModelError> {
    let joined = |e: tokio::task::JoinError| ModelError::Unavailable(e.to_string());
    Ok(match config.kind {
        Some(ModelKind::Embedding) => Arc::new(
            tokio::task::spawn_blocking(move || OnnxEmbedder::load(&id, &config))
                .await
                .map_err(joined)??,
        ),
        Some(ModelKind::Generation) => Arc::new(
            tokio::task::spawn_blocking(move || OnnxGenerator::load(&id, &config))
                .await
                .map_err(joined)??,
        ),
        Some(ModelKind::BackgroundRemoval) => Arc::new(
            tokio::task::spawn_blocking(move || OnnxForeground::load(&id, &config))
                .await
                .map_err(joined)??,
        ),
        Some(ModelKind::FaceDetection) => Arc::new(
            tokio::task::spawn_blocking(move || OnnxFaces::load(&id, &config))
                .await
                .map_err(joined)??,
        ),
        Some(ModelKind::ImageGeneration) => {
            return Err(ModelError::Unavailable(format!(
                "model `{id}`: image generation is served by HTTP providers (`openai`), not ONNX"
            )));
        }
        None => {
            return Err(ModelError::Unavailable(format!(
                "model `{id}`: an ONNX model needs `kind = \"embedding\"`, `\"generation\"`, `\"background-removal\"` or `\"face-detection\"`"
            )));
        }
    })
}

/// A model this build cannot serve.
#[cfg(not(all(feature = "onnx", feature = "http")))]
fn built_without(what: &str, feature: &str) -> ModelError {
    ModelError::Unavailable(format!(
        "this weft was built without {what} (cargo feature `{feature}`)"
    ))
}

impl Models {
    /// Models from configuration; limiter state is kept in `state`'s store.
    pub fn new(configs: BTreeMap<String, ModelConfig>, state: QueueState) -> Self {
        let entries = configs
            .into_iter()
            .map(|(id, config)| {
                let queue = Queue::new(
                    &format!("model:{id}"),
                    &QueueConfig {
                        concurrency: config.concurrency,
                        rate: config.rate,
                        ..QueueConfig::default()
                    },
                    &state,
                    // Concurrency is per host: it guards this host's own
                    // resources (ONNX sessions, connections); the rate and
                    // Retry-After pauses are in the store, shared by all.
                    None,
                );
                let entry = Entry {
                    config,
                    provider: tokio::sync::Mutex::new(None),
                    queue,
                    admit: tokio::sync::Mutex::new(()),
                    released: tokio::sync::Notify::new(),
                };
                (id, entry)
            })
            .collect();
        Models {
            entries,
            dir: None,
            clock: state.clock.clone(),
            plugins: std::sync::RwLock::default(),
        }
    }

    /// Keep downloaded model files under `dir` (one folder per model).
    pub fn with_dir(mut self, dir: PathBuf) -> Self {
        self.dir = Some(dir);
        self
    }

    /// Every configured model: id and configuration.
    pub fn configs(&self) -> impl Iterator<Item = (&str, &ModelConfig)> {
        self.entries.iter().map(|(id, e)| (id.as_str(), &e.config))
    }

    fn entry(&self, id: &str) -> Result<&Entry, ModelError> {
        self.entries
            .get(id)
            .ok_or_else(|| ModelError::UnknownModel(id.to_string()))
    }

    /// Serve models from these provider plugins (by name) from now on, in
    /// place of the ones before: the host calls it after loading or
    /// reloading its plugins.
    pub fn serve_plugins(&self, plugins: BTreeMap<String, Arc<plugin::ProviderPlugin>>) {
        *self.plugins.write().unwrap_or_else(|e| e.into_inner()) = plugins;
    }

    /// The provider plugins serving now, by name.
    pub fn plugins(&self) -> BTreeMap<String, Arc<plugin::ProviderPlugin>> {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Provider plugin `name`, for model `id`.
    fn plugin(&self, id: &str, name: &str) -> Result<Arc<plugin::ProviderPlugin>, ModelError> {
        let plugins = self.plugins.read().unwrap_or_else(|e| e.into_inner());
        plugins.get(name).cloned().ok_or_else(|| {
            ModelError::Unavailable(format!(
                "model `{id}` is served by plugin `{name}`, which is not loaded: put `{name}.wasm` (a component exporting `weft:plugin/provider`) in the plugins folder"
            ))
        })
    }

    async fn provider(&self, id: &str, entry: &Entry) -> Result<Arc<dyn Provider>, ModelError> {
        let plugin = match &entry.config.provider {
            ProviderKind::Plugin(name) => Some(self.plugin(id, name)?),
            _ => None,
        };
        let mut slot = entry.provider.lock().await;
        if let Some(built) = slot.as_ref() {
            let current = match (&built.plugin, &plugin) {
                (Some(was), Some(is)) => Arc::ptr_eq(was, is),
                (was, is) => was.is_none() && is.is_none(),
            };
            if current {
                return Ok(built.provider.clone());
            }
        }
        let provider: Arc<dyn Provider> = match &plugin {
            Some(p) => Arc::new(plugin::PluginModel::load(p.clone(), id, &entry.config).await?),
            None => build_provider(id, entry.config.clone()).await?,
        };
        *slot = Some(Built {
            plugin,
            provider: provider.clone(),
        });
        Ok(provider)
    }

    /// Wait (up to the model's `max_wait_ms`) until its limiter admits a call.
    async fn admit<'a>(&self, entry: &'a Entry) -> Result<Permit<'a>, ModelError> {
        let max_wait = Duration::from_millis(entry.config.max_wait_ms.unwrap_or(60_000));
        let deadline = tokio::time::Instant::now() + max_wait;
        let store_error = |e: weft_store::StoreError| ModelError::Unavailable(e.to_string());
        loop {
            let guard = entry.admit.lock().await;
            let mut wait = entry.queue.wait("").await.map_err(store_error)?;
            if wait == Wait::Now {
                wait = entry.queue.take("").await.map_err(store_error)?;
            }
            let released = entry.released.notified();
            match wait {
                Wait::Now => return Ok(Permit(entry)),
                Wait::For(d) => {
                    drop(guard);
                    if tokio::time::Instant::now() + d > deadline {
                        return Err(ModelError::RateLimited {
                            retry_after_ms: d.as_millis() as u64,
                        });
                    }
                    tokio::time::sleep(d).await;
                }
                Wait::UntilRelease => {
                    drop(guard);
                    if tokio::time::timeout_at(deadline, released).await.is_err() {
                        return Err(ModelError::RateLimited {
                            retry_after_ms: 1000,
                        });
                    }
                }
            }
        }
    }

    /// Check that `plugin` may use `model`, find it, and admit one call.
    async fn start<'a>(
        &'a self,
        plugin: &str,
        granted: &[String],
        model: &str,
    ) -> Result<(&'a Entry, Arc<dyn Provider>, Permit<'a>), ModelError> {
        let entry = self.entry(model)?;
        check_grant(plugin, granted, model)?;
        let provider = self.provider(model, entry).await?;
        let permit = self.admit(entry).await?;
        Ok((entry, provider, permit))
    }

    /// After a provider said 429 with Retry-After: pause the model's limiter.
    async fn note(&self, entry: &Entry, result: &Result<impl Sized, ModelError>) {
        if let Err(ModelError::RateLimited { retry_after_ms }) = result {
            let until = self.clock.now_ms() + retry_after_ms;
            let _ = entry.queue.pause("", until).await;
        }
    }

    /// Embed `texts` with `model`, for `plugin` (granted `granted`).
    pub async fn embed(
        &self,
        plugin: &str,
        granted: &[String],
        model: &str,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let (entry, provider, _permit) = self.start(plugin, granted, model).await?;
        expect_kind(model, entry, ModelKind::Embedding)?;
        let result = provider.embed(texts).await;
        self.note(entry, &result).await;
        result
    }

    /// Generate with `model`, for `plugin`, streaming text to `sink`.
    pub async fn generate(
        &self,
        plugin: &str,
        granted: &[String],
        model: &str,
        prompt: &Prompt,
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        let (entry, provider, _permit) = self.start(plugin, granted, model).await?;
        expect_kind(model, entry, ModelKind::Generation)?;
        let result = provider.generate(prompt, options, sink).await;
        self.note(entry, &result).await;
        result
    }

    /// The most bytes of a schema given to [`Models::generate_json`].
    pub const MAX_SCHEMA_BYTES: usize = 64 << 10;

    /// Generate a JSON value for `schema` (JSON text of an object) with
    /// `model`, for `plugin`, streaming text to `sink`.
    #[allow(clippy::too_many_arguments)]
    pub async fn generate_json(
        &self,
        plugin: &str,
        granted: &[String],
        model: &str,
        prompt: &Prompt,
        schema: &str,
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        if schema.len() > Self::MAX_SCHEMA_BYTES {
            return Err(ModelError::InvalidRequest(format!(
                "a schema of {} bytes; at most {}",
                schema.len(),
                Self::MAX_SCHEMA_BYTES
            )));
        }
        let schema: serde_json::Value = match serde_json::from_str(schema) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => {
                return Err(ModelError::InvalidRequest(
                    "the schema is not a JSON object".into(),
                ));
            }
        };
        let (entry, provider, _permit) = self.start(plugin, granted, model).await?;
        expect_kind(model, entry, ModelKind::Generation)?;
        let result = provider.generate_json(prompt, &schema, options, sink).await;
        self.note(entry, &result).await;
        result
    }

    /// Generate with `model` from `prompt` and `images`, for `plugin`,
    /// streaming text to `sink`.
    #[allow(clippy::too_many_arguments)]
    pub async fn generate_seeing(
        &self,
        plugin: &str,
        granted: &[String],
        model: &str,
        prompt: &Prompt,
        images: &[ImageFile],
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        ImageFile::check_all(images)?;
        let (entry, provider, _permit) = self.start(plugin, granted, model).await?;
        expect_kind(model, entry, ModelKind::Generation)?;
        let result = provider
            .generate_seeing(prompt, images, options, sink)
            .await;
        self.note(entry, &result).await;
        result
    }

    /// An image made by image-generation model `model`, for `plugin`.
    pub async fn generate_image(
        &self,
        plugin: &str,
        granted: &[String],
        model: &str,
        request: &ImageRequest,
    ) -> Result<ImageFile, ModelError> {
        request.check()?;
        let (entry, provider, _permit) = self.start(plugin, granted, model).await?;
        expect_kind(model, entry, ModelKind::ImageGeneration)?;
        let result = provider.generate_image(request).await;
        self.note(entry, &result).await;
        result
    }

    /// The foreground's alpha mask of `image` by background-removal model
    /// `model`, for `plugin`: one byte per pixel, 255 foreground.
    pub async fn foreground(
        &self,
        plugin: &str,
        granted: &[String],
        model: &str,
        image: Image,
    ) -> Result<Vec<u8>, ModelError> {
        image.check()?;
        let (entry, provider, _permit) = self.start(plugin, granted, model).await?;
        expect_kind(model, entry, ModelKind::BackgroundRemoval)?;
        let result = provider.foreground(image).await;
        self.note(entry, &result).await;
        result
    }

    /// What face-detection model `model` finds in `image`, for `plugin`.
    pub async fn detect(
        &self,
        plugin: &str,
        granted: &[String],
        model: &str,
        image: Image,
        options: DetectOptions,
    ) -> Result<Vec<Detection>, ModelError> {
        image.check()?;
        options.check()?;
        let (entry, provider, _permit) = self.start(plugin, granted, model).await?;
        expect_kind(model, entry, ModelKind::FaceDetection)?;
        let mut result = provider.detect(image, options).await;
        if let Ok(found) = &mut result {
            found.truncate(MAX_DETECTIONS);
        }
        self.note(entry, &result).await;
        result
    }

    /// Count the tokens of `text` for `model`.
    pub async fn count_tokens(
        &self,
        plugin: &str,
        granted: &[String],
        model: &str,
        text: &str,
    ) -> Result<u32, ModelError> {
        let (entry, provider, _permit) = self.start(plugin, granted, model).await?;
        let result = provider.count_tokens(text).await;
        self.note(entry, &result).await;
        result
    }

    /// What `model` is (loading it, to know an embedding's size).
    pub async fn info(&self, model: &str) -> Result<ModelInfo, ModelError> {
        let entry = self.entry(model)?;
        let dimensions = match entry.config.kind() {
            ModelKind::Embedding => self.provider(model, entry).await?.dimensions(),
            ModelKind::Generation
            | ModelKind::BackgroundRemoval
            | ModelKind::ImageGeneration
            | ModelKind::FaceDetection => None,
        };
        Ok(ModelInfo {
            id: model.to_string(),
            provider: entry.config.provider.clone(),
            kind: entry.config.kind(),
            dimensions,
        })
    }

    /// [`Models::info`] for a plugin, after checking its grant.
    pub async fn info_for(
        &self,
        plugin: &str,
        granted: &[String],
        model: &str,
    ) -> Result<ModelInfo, ModelError> {
        self.entry(model)?;
        check_grant(plugin, granted, model)?;
        self.info(model).await
    }
}

#[cfg(test)]
mod tests {
    use super::{Image, ModelError};

    fn image(width: u32, height: u32, bytes: usize) -> Image {
        Image {
            width,
            height,
            rgba: vec![0; bytes],
        }
    }

    /// A plugin can send any width, height and bytes: the host takes only
    /// an image whose data is its size, of 1 to 50 megapixels, before any
    /// model sees it.
    #[test]
    fn an_image_for_a_model_must_be_what_it_says_and_within_the_limit() {
        assert_eq!(image(3, 2, 24).check(), Ok(()));
        let refused = |i: Image| match i.check() {
            Err(ModelError::InvalidRequest(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused(image(3, 2, 23)).contains("needs 24 bytes of RGBA, got 23"));
        assert!(refused(image(0, 5, 0)).contains("images of 1 to 50000000 pixels"));
        // 65,536 × 65,536 would be 16 GiB of RGBA: refused on its size alone.
        assert!(refused(image(65_536, 65_536, 4)).contains("65536×65536"));
    }
}
