//! Local models on ONNX Runtime: sentence embeddings (tokenize, run the
//! encoder, mean-pool over the attention mask, L2-normalise) and text
//! generation with a decoder (greedy or sampled, one token per step).
//!
//! ONNX Runtime is a shared library loaded at run time, found through
//! `ORT_DYLIB_PATH` (or `WEFT_ONNXRUNTIME`); when it is missing the host still
//! starts, and model calls answer an error naming what to install.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ort::session::Session;
use ort::value::Tensor;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::{GenerateOptions, Generation, ModelConfig, ModelError, Prompt, Provider, TokenSink};

/// The ONNX Runtime version the project's setup installs.
const RUNTIME_HINT: &str = "ONNX Runtime 1.31 is needed for local models: run \
    `weft models pull minilm` (it puts libonnxruntime.so.1.31.1 from the PyPI wheel onnxruntime==1.31.1 \
    into onnxruntime/ beside the models folder, the data directory by default), or set ORT_DYLIB_PATH \
    to that library";

static DEFAULT_RUNTIME: OnceLock<PathBuf> = OnceLock::new();

/// Where to look for ONNX Runtime when neither `WEFT_ONNXRUNTIME` nor
/// `ORT_DYLIB_PATH` is set (the CLI passes the data directory's copy, as
/// installed by `weft models pull minilm`). The first call wins.
pub fn set_default_onnx_runtime(path: PathBuf) {
    let _ = DEFAULT_RUNTIME.set(path);
}

/// The process's ONNX Runtime environment, loaded once.
pub fn onnx_runtime() -> Result<ort::environment::Environment, String> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = std::env::var_os("WEFT_ONNXRUNTIME")
            .or_else(|| std::env::var_os("ORT_DYLIB_PATH"))
            .map(PathBuf::from)
            .or_else(|| DEFAULT_RUNTIME.get().cloned())
            .ok_or_else(|| format!("ORT_DYLIB_PATH is not set. {RUNTIME_HINT}"))?;
        if !path.is_file() {
            return Err(format!("{} does not exist. {RUNTIME_HINT}", path.display()));
        }
        let builder = ort::init_from(&path)
            .map_err(|e| format!("{}: {e}. {RUNTIME_HINT}", path.display()))?;
        builder
            .with_name("weft")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
    })
    .clone()
}

pub(super) fn unavailable(id: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Unavailable(format!("model `{id}`: {e}"))
}

/// Sessions of one model, each used by one call at a time.
pub(super) struct Pool {
    sessions: Mutex<Vec<Session>>,
    free: tokio::sync::Semaphore,
    inputs: Vec<String>,
    size: usize,
}

impl Pool {
    pub(super) fn load(id: &str, path: &Path, count: usize) -> Result<Pool, ModelError> {
        let env = onnx_runtime().map_err(|e| unavailable(id, e))?;
        let count = count.max(1);
        let threads = (std::thread::available_parallelism().map_or(2, |n| n.get()) / count).max(1);
        let mut sessions = Vec::with_capacity(count);
        for _ in 0..count {
            let session = Session::builder(&env)
                .and_then(|b| b.with_intra_threads(threads).map_err(Into::into))
                .and_then(|mut b| b.commit_from_file(path))
                .map_err(|e| unavailable(id, format!("cannot load {}: {e}", path.display())))?;
            sessions.push(session);
        }
        let inputs = sessions[0]
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        Ok(Pool {
            sessions: Mutex::new(sessions),
            free: tokio::sync::Semaphore::new(count),
            inputs,
            size: count,
        })
    }

    /// The sessions of image model `id` as configured: one unless
    /// `sessions` says more (each holds the model's activations at full
    /// size).
    pub(super) fn of_image_model(id: &str, config: &ModelConfig) -> Result<Arc<Pool>, ModelError> {
        let path = PathBuf::from(&config.model);
        Ok(Arc::new(Pool::load(
            id,
            &path,
            config.sessions.unwrap_or(1),
        )?))
    }

    /// How many sessions it keeps.
    fn size(&self) -> usize {
        self.size
    }

    /// Run `f` with a free session, on the blocking pool.
    pub(super) async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Session, &[String]) -> Result<T, ModelError> + Send + 'static,
    ) -> Result<T, ModelError> {
        let _permit = self
            .free
            .acquire()
            .await
            .map_err(|e| ModelError::Unavailable(e.to_string()))?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut session = pool
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .ok_or_else(|| ModelError::Unavailable("no free session".into()))?;
            let result = f(&mut session, &pool.inputs);
            pool.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(session);
            result
        })
        .await
        .map_err(|e| ModelError::Unavailable(format!("inference task failed: {e}")))?
    }
}

fn load_tokenizer(id: &str, config: &ModelConfig, model: &Path) -> Result<Tokenizer, ModelError> {
    let path = config
        .tokenizer
        .clone()
        .unwrap_or_else(|| model.with_file_name("tokenizer.json"));
    Tokenizer::from_file(&path)
        .map_err(|e| unavailable(id, format!("cannot read tokenizer {}: {e}", path.display())))
}

/// The inputs an encoder or decoder session takes, built from token ids and
/// masks (`batch` rows of `len` tokens).
fn session_inputs(
    names: &[String],
    batch: usize,
    len: usize,
    ids: Vec<i64>,
    mask: Vec<i64>,
    types: Vec<i64>,
) -> Result<Vec<(String, ort::value::DynValue)>, ModelError> {
    let shape = [batch as i64, len as i64];
    let tensor = |v: Vec<i64>| {
        Tensor::from_array((shape, v))
            .map(|t| t.into_dyn())
            .map_err(|e| ModelError::Unavailable(e.to_string()))
    };
    let mut out = Vec::new();
    let (mut ids, mut mask, mut types) = (Some(ids), Some(mask), Some(types));
    for name in names {
        let value = match name.as_str() {
            "input_ids" => ids.take(),
            "attention_mask" => mask.take(),
            "token_type_ids" => types.take(),
            "position_ids" => Some((0..batch).flat_map(|_| 0..len as i64).collect()),
            other => {
                return Err(ModelError::Unavailable(format!(
                    "the model takes an input `{other}` weft does not know how to fill"
                )));
            }
        };
        if let Some(v) = value {
            out.push((name.clone(), tensor(v)?));
        }
    }
    Ok(out)
}

/// A sentence-embedding model.
///
/// Calls from different tasks are batched: a call made while every session
/// is busy waits, and the next free session embeds all waiting calls' texts
/// in one inference (up to [`MAX_BATCH`] texts), so many small calls cost
/// about as much as a few large ones; a call on an idle model runs at once.
pub struct OnnxEmbedder {
    id: String,
    pool: Arc<Pool>,
    tokenizer: Arc<Tokenizer>,
    dimensions: Mutex<Option<u32>>,
    batcher: Arc<Mutex<Batcher>>,
    inferences: Arc<std::sync::atomic::AtomicU64>,
}

/// The most texts one batched inference takes (a single larger call still
/// runs whole).
pub const MAX_BATCH: usize = 64;

/// Embedding calls waiting for a session, and how many workers serve them.
#[derive(Default)]
struct Batcher {
    waiting: Vec<(Vec<String>, tokio::sync::oneshot::Sender<Embedded>)>,
    workers: usize,
}

/// One call's vectors, or why there are none.
type Embedded = Result<Vec<Vec<f32>>, ModelError>;

impl OnnxEmbedder {
    /// Load model `id` as configured.
    pub fn load(id: &str, config: &ModelConfig) -> Result<Self, ModelError> {
        onnx_runtime().map_err(|e| unavailable(id, e))?;
        let path = PathBuf::from(&config.model);
        let mut tokenizer = load_tokenizer(id, config, &path)?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.max_length.unwrap_or(256),
                ..TruncationParams::default()
            }))
            .map_err(|e| unavailable(id, e))?;
        Ok(OnnxEmbedder {
            id: id.to_string(),
            pool: Arc::new(Pool::load(id, &path, config.sessions.unwrap_or(2))?),
            tokenizer: Arc::new(tokenizer),
            dimensions: Mutex::new(None),
            batcher: Arc::default(),
            inferences: Arc::default(),
        })
    }

    /// Inferences run so far (each embeds one batch of texts).
    pub fn inferences(&self) -> u64 {
        self.inferences.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Serve waiting calls, a batch per inference, until none wait.
    async fn serve(
        id: String,
        pool: Arc<Pool>,
        tokenizer: Arc<Tokenizer>,
        batcher: Arc<Mutex<Batcher>>,
        inferences: Arc<std::sync::atomic::AtomicU64>,
    ) {
        loop {
            let calls = {
                let mut b = batcher.lock().unwrap_or_else(|e| e.into_inner());
                if b.waiting.is_empty() {
                    b.workers -= 1;
                    return;
                }
                // The oldest calls, as many as fit (at least one).
                let mut texts = 0;
                let n = b
                    .waiting
                    .iter()
                    .take_while(|(t, _)| {
                        texts += t.len();
                        texts <= MAX_BATCH
                    })
                    .count()
                    .max(1);
                b.waiting.drain(..n).collect::<Vec<_>>()
            };
            let sizes: Vec<usize> = calls.iter().map(|(t, _)| t.len()).collect();
            let texts: Vec<String> = calls.iter().flat_map(|(t, _)| t.clone()).collect();
            let (id, tokenizer) = (id.clone(), tokenizer.clone());
            inferences.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let result = pool
                .with(move |session, names| embed_batch(&id, session, names, &tokenizer, texts))
                .await;
            match result {
                Ok(vectors) => {
                    let mut vectors = vectors.into_iter();
                    for ((_, tx), n) in calls.into_iter().zip(sizes) {
                        let _ = tx.send(Ok(vectors.by_ref().take(n).collect()));
                    }
                }
                Err(e) => {
                    for (_, tx) in calls {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Provider for OnnxEmbedder {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start_worker = {
            let mut b = self.batcher.lock().unwrap_or_else(|e| e.into_inner());
            b.waiting.push((texts.to_vec(), tx));
            // One worker per session: more would only wait for a session.
            let start = b.workers < self.pool.size();
            if start {
                b.workers += 1;
            }
            start
        };
        if start_worker {
            // A task of its own: a caller that gives up stops nobody's batch.
            tokio::spawn(Self::serve(
                self.id.clone(),
                self.pool.clone(),
                self.tokenizer.clone(),
                self.batcher.clone(),
                self.inferences.clone(),
            ));
        }
        let vectors = rx
            .await
            .map_err(|_| ModelError::Unavailable("the embedding was dropped".into()))??;
        if let Some(first) = vectors.first() {
            *self.dimensions.lock().unwrap_or_else(|e| e.into_inner()) = Some(first.len() as u32);
        }
        Ok(vectors)
    }

    async fn generate(
        &self,
        _: &Prompt,
        _: &GenerateOptions,
        _: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        Err(ModelError::InvalidRequest(format!(
            "model `{}` is an embedding model",
            self.id
        )))
    }

    async fn count_tokens(&self, text: &str) -> Result<u32, ModelError> {
        count(&self.tokenizer, text)
    }

    fn dimensions(&self) -> Option<u32> {
        *self.dimensions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn count(tokenizer: &Tokenizer, text: &str) -> Result<u32, ModelError> {
    tokenizer
        .encode(text, false)
        .map(|e| e.get_ids().len() as u32)
        .map_err(|e| ModelError::InvalidRequest(e.to_string()))
}

/// Embed one batch: tokenize (padded to the longest), run, mean-pool over the
/// attention mask, L2-normalise.
fn embed_batch(
    id: &str,
    session: &mut Session,
    names: &[String],
    tokenizer: &Tokenizer,
    texts: Vec<String>,
) -> Result<Vec<Vec<f32>>, ModelError> {
    let encodings = tokenizer
        .encode_batch(texts, true)
        .map_err(|e| ModelError::InvalidRequest(e.to_string()))?;
    let batch = encodings.len();
    let len = encodings
        .iter()
        .map(|e| e.get_ids().len())
        .max()
        .unwrap_or(0);
    let mut ids = Vec::with_capacity(batch * len);
    let mut mask = Vec::with_capacity(batch * len);
    let mut types = Vec::with_capacity(batch * len);
    for e in &encodings {
        ids.extend(e.get_ids().iter().map(|&v| v as i64));
        mask.extend(e.get_attention_mask().iter().map(|&v| v as i64));
        types.extend(e.get_type_ids().iter().map(|&v| v as i64));
    }
    let inputs = session_inputs(names, batch, len, ids, mask.clone(), types)?;
    let outputs = session
        .run(inputs)
        .map_err(|e| unavailable(id, format!("inference failed: {e}")))?;
    let (shape, hidden) = outputs[0]
        .try_extract_tensor::<f32>()
        .map_err(|e| unavailable(id, format!("unexpected output: {e}")))?;
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let [b, s, h] = dims[..] else {
        return Err(unavailable(
            id,
            format!("expected an output of shape [batch, tokens, hidden], got {dims:?}"),
        ));
    };
    if b != batch || s != len {
        return Err(unavailable(
            id,
            format!("output shape {dims:?} does not match the input"),
        ));
    }
    let mut vectors = Vec::with_capacity(batch);
    for row in 0..batch {
        let mut sum = vec![0f32; h];
        let mut n = 0f32;
        for t in 0..len {
            if mask[row * len + t] == 0 {
                continue;
            }
            n += 1.0;
            let at = (row * len + t) * h;
            for (acc, v) in sum.iter_mut().zip(&hidden[at..at + h]) {
                *acc += v;
            }
        }
        let n = n.max(1.0);
        sum.iter_mut().for_each(|v| *v /= n);
        let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        sum.iter_mut().for_each(|v| *v /= norm);
        vectors.push(sum);
    }
    Ok(vectors)
}

/// A decoder-only text generation model (inputs: token ids and mask; output:
/// logits `[batch, tokens, vocabulary]`).
pub struct OnnxGenerator {
    id: String,
    pool: Arc<Pool>,
    tokenizer: Arc<Tokenizer>,
    eos: Option<u32>,
    max_length: usize,
}

impl OnnxGenerator {
    /// Load model `id` as configured.
    pub fn load(id: &str, config: &ModelConfig) -> Result<Self, ModelError> {
        onnx_runtime().map_err(|e| unavailable(id, e))?;
        let path = PathBuf::from(&config.model);
        let tokenizer = load_tokenizer(id, config, &path)?;
        let eos = ["<|endoftext|>", "</s>", "<eos>"]
            .iter()
            .find_map(|t| tokenizer.token_to_id(t));
        Ok(OnnxGenerator {
            id: id.to_string(),
            pool: Arc::new(Pool::load(id, &path, config.sessions.unwrap_or(2))?),
            tokenizer: Arc::new(tokenizer),
            eos,
            max_length: config.max_length.unwrap_or(1024),
        })
    }
}

/// A small, seedable random source for sampling (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32) / (1u64 << 24) as f32
    }
}

/// The next token from the last position's `logits`.
fn pick(logits: &[f32], temperature: f32, rng: &mut Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 { (i, v) } else { best }
            })
            .0 as u32
    };
    if temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f32> = logits
        .iter()
        .map(|v| ((v - max) / temperature).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let mut target = rng.next_f32() * total;
    for (i, w) in weights.iter().enumerate() {
        target -= w;
        if target <= 0.0 {
            return i as u32;
        }
    }
    argmax()
}

#[async_trait::async_trait]
impl Provider for OnnxGenerator {
    async fn embed(&self, _: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        Err(ModelError::InvalidRequest(format!(
            "model `{}` is a generation model",
            self.id
        )))
    }

    async fn generate(
        &self,
        prompt: &Prompt,
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        let mut ids: Vec<u32> = self
            .tokenizer
            .encode(prompt.as_text(), false)
            .map_err(|e| ModelError::InvalidRequest(e.to_string()))?
            .get_ids()
            .to_vec();
        if ids.is_empty() {
            return Err(ModelError::InvalidRequest("the prompt is empty".into()));
        }
        let prompt_len = ids.len();
        let max_tokens = options.max_tokens.unwrap_or(256) as usize;
        let temperature = options.temperature.unwrap_or(0.0);
        let mut rng = Rng(weft_core::clock::now_ms() | 1);
        let mut text = String::new();
        let mut finish = "length";
        while ids.len() - prompt_len < max_tokens {
            if ids.len() >= self.max_length {
                break;
            }
            let context: Vec<i64> = ids.iter().map(|&v| v as i64).collect();
            let id = self.id.clone();
            let logits = self
                .pool
                .with(move |session, names| {
                    let len = context.len();
                    let inputs =
                        session_inputs(names, 1, len, context, vec![1; len], vec![0; len])?;
                    let outputs = session
                        .run(inputs)
                        .map_err(|e| unavailable(&id, format!("inference failed: {e}")))?;
                    let (shape, logits) = outputs[0]
                        .try_extract_tensor::<f32>()
                        .map_err(|e| unavailable(&id, format!("unexpected output: {e}")))?;
                    let vocab = *shape.last().unwrap_or(&0) as usize;
                    if vocab == 0 || logits.len() < vocab {
                        return Err(unavailable(
                            &id,
                            format!("unexpected logits shape {shape:?}"),
                        ));
                    }
                    Ok(logits[logits.len() - vocab..].to_vec())
                })
                .await?;
            let next = pick(&logits, temperature, &mut rng);
            if Some(next) == self.eos {
                finish = "end";
                break;
            }
            ids.push(next);
            let decoded = self
                .tokenizer
                .decode(&ids[prompt_len..], true)
                .map_err(|e| ModelError::Unavailable(e.to_string()))?;
            if let Some(cut) = options
                .stop
                .iter()
                .filter_map(|s| decoded.find(s.as_str()))
                .min()
            {
                text = decoded[..cut].to_string();
                finish = "stop";
                break;
            }
            if decoded.len() > text.len() && decoded.starts_with(&text) {
                sink(&decoded[text.len()..]);
            }
            text = decoded;
        }
        let token_ids = ids[prompt_len..].to_vec();
        Ok(Generation {
            text,
            tokens: token_ids.len() as u32,
            token_ids,
            finish_reason: finish.to_string(),
        })
    }

    async fn count_tokens(&self, text: &str) -> Result<u32, ModelError> {
        count(&self.tokenizer, text)
    }
}
