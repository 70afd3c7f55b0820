//! A provider plugin: models served from an OpenAI-compatible HTTP API
//! (OpenAI, llama.cpp's server, vLLM, Ollama...) over outgoing `wasi:http`,
//! the host checking each request against the manifest's `[grants] http`.
//!
//! ```toml
//! # weft.toml
//! [models.chat]
//! provider = "plugin:openai-compat"   # this component as openai-compat.wasm
//! model = "llama-3.2-1b"              # the API's own name for the model
//! settings = { base_url = "http://127.0.0.1:8080/v1" }
//!
//! # plugins/openai-compat.toml
//! [grants]
//! http = ["http://127.0.0.1:8080"]
//! [config]
//! api_key = { env = "OPENAI_API_KEY" }   # optional: sent as a bearer token
//! ```
//!
//! Embeddings are one `POST /embeddings`; a generation is one streamed
//! `POST /chat/completions` that the host pulls chunk by chunk. The API has
//! no token counter, so `count-tokens` estimates (one per word or four
//! bytes, whichever is more).

mod http;

use std::cell::RefCell;

use serde::Deserialize;
use serde_json::{Value, json};

wit_bindgen::generate!({
    path: "../../wit",
    world: "provider-plugin",
});

use exports::weft::plugin::provider::{
    Chunk, Guest, GuestGenerationStream, GuestModel, ModelConfig, ModelKind,
};
use weft::plugin::config;
use weft::plugin::models::{GenerateOptions, Generation, Message, ModelError, Prompt};

struct OpenAiCompatible;

impl Guest for OpenAiCompatible {
    type Model = Remote;
    type GenerationStream = Stream;
}

export!(OpenAiCompatible);

/// `[models.ID.settings]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `http(s)://host[:port][/path]`, without the trailing `/embeddings`.
    base_url: String,
    /// The vector size, when the operator knows it.
    #[serde(default)]
    dimensions: Option<u32>,
}

/// One configured model of the API.
struct Remote {
    name: String,
    base: http::Base,
    dimensions: Option<u32>,
    api_key: Option<String>,
}

impl GuestModel for Remote {
    fn load(config: ModelConfig) -> Result<exports::weft::plugin::provider::Model, ModelError> {
        let invalid =
            |why: String| ModelError::InvalidRequest(format!("model `{}`: {why}", config.id));
        let settings: Settings = serde_json::from_str(&config.settings)
            .map_err(|e| invalid(format!("settings: {e}")))?;
        let base = http::Base::parse(&settings.base_url).map_err(invalid)?;
        let api_key = match config::get("api_key") {
            Ok(Some(json)) => serde_json::from_str::<String>(&json).ok(),
            Ok(None) => None,
            Err(e) => return Err(ModelError::Unavailable(format!("config api_key: {e:?}"))),
        };
        if config.kind == ModelKind::Generation && settings.dimensions.is_some() {
            return Err(invalid("`dimensions` is for embedding models".into()));
        }
        Ok(exports::weft::plugin::provider::Model::new(Remote {
            name: config.name,
            base,
            dimensions: settings.dimensions,
            api_key,
        }))
    }

    fn dimensions(&self) -> Option<u32> {
        self.dimensions
    }

    fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ModelError> {
        let body = json!({"model": self.name, "input": texts});
        let reply: Value = self.post("/embeddings", &body)?.json()?;
        let mut data: Vec<(u64, Vec<f32>)> = reply["data"]
            .as_array()
            .ok_or_else(|| malformed("no `data` in the embeddings answer"))?
            .iter()
            .map(|item| {
                let index = item["index"]
                    .as_u64()
                    .ok_or_else(|| malformed("an embedding without `index`"))?;
                let vector = serde_json::from_value(item["embedding"].clone())
                    .map_err(|e| malformed(&format!("embedding {index}: {e}")))?;
                Ok((index, vector))
            })
            .collect::<Result<_, ModelError>>()?;
        // The API may answer out of order.
        data.sort_by_key(|(index, _)| *index);
        Ok(data.into_iter().map(|(_, v)| v).collect())
    }

    fn generate(
        &self,
        prompt: Prompt,
        options: GenerateOptions,
    ) -> Result<exports::weft::plugin::provider::GenerationStream, ModelError> {
        let messages: Vec<Message> = match prompt {
            Prompt::Text(text) => vec![Message {
                role: "user".into(),
                content: text,
            }],
            Prompt::Chat(messages) => messages,
        };
        let mut body = json!({
            "model": self.name,
            "messages": messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect::<Vec<_>>(),
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": options.max_tokens.unwrap_or(256),
        });
        if let Some(t) = options.temperature {
            body["temperature"] = json!(t);
        }
        if !options.stop.is_empty() {
            body["stop"] = json!(options.stop);
        }
        let response = self.post("/chat/completions", &body)?;
        Ok(exports::weft::plugin::provider::GenerationStream::new(
            Stream {
                state: RefCell::new(Streaming {
                    response,
                    pending: Vec::new(),
                    text: String::new(),
                    tokens: 0,
                    finish_reason: None,
                    stops: !options.stop.is_empty(),
                }),
            },
        ))
    }

    fn count_tokens(&self, text: String) -> Result<u32, ModelError> {
        let words = text.split_whitespace().count();
        Ok(words.max(text.len().div_ceil(4)) as u32)
    }
}

impl Remote {
    /// POST `body` to `path` under the base URL; a non-2xx status as the
    /// model error it means.
    fn post(&self, path: &str, body: &Value) -> Result<http::Response, ModelError> {
        let response =
            self.base
                .post_json(path, self.api_key.as_deref(), body.to_string().as_bytes())?;
        match response.status {
            200..=299 => Ok(response),
            429 => Err(ModelError::RateLimited(
                response.retry_after_ms.unwrap_or(1000),
            )),
            status => {
                let text = response.text(4096).unwrap_or_default();
                let why = format!("the API answered {status}: {text}");
                Err(match status {
                    400..=499 => ModelError::InvalidRequest(why),
                    _ => ModelError::Unavailable(why),
                })
            }
        }
    }
}

fn malformed(what: &str) -> ModelError {
    ModelError::Unavailable(format!("malformed answer from the API: {what}"))
}

/// A streamed chat completion (Server-Sent Events), read as the host pulls.
struct Stream {
    state: RefCell<Streaming>,
}

struct Streaming {
    response: http::Response,
    /// Bytes read but not yet a whole event.
    pending: Vec<u8>,
    text: String,
    tokens: u32,
    finish_reason: Option<String>,
    /// Whether the request named stop strings (`stop` means one was hit).
    stops: bool,
}

impl GuestGenerationStream for Stream {
    fn next(&self) -> Result<Chunk, ModelError> {
        let mut s = self.state.borrow_mut();
        loop {
            let Some(event) = s.take_event() else {
                if !s.read_more()? {
                    return s.done_or_cut_short();
                }
                continue;
            };
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                return s.done_or_cut_short();
            }
            let chunk: Value = serde_json::from_str(data).map_err(|e| malformed(&e.to_string()))?;
            if let Some(n) = chunk["usage"]["completion_tokens"].as_u64() {
                s.tokens = n as u32;
            }
            let Some(choice) = chunk["choices"].get(0) else {
                continue;
            };
            if let Some(reason) = choice["finish_reason"].as_str() {
                s.finish_reason = Some(
                    match reason {
                        "length" => "length",
                        "stop" if s.stops => "stop",
                        _ => "end",
                    }
                    .to_string(),
                );
            }
            match choice["delta"]["content"].as_str() {
                Some(text) if !text.is_empty() => {
                    s.text.push_str(text);
                    return Ok(Chunk::Text(text.to_string()));
                }
                _ => continue,
            }
        }
    }
}

impl Streaming {
    /// The next whole event (up to a blank line), if one was read.
    fn take_event(&mut self) -> Option<String> {
        let end = self.pending.windows(2).position(|w| w == b"\n\n")?;
        let event: Vec<u8> = self.pending.drain(..end + 2).collect();
        Some(String::from_utf8_lossy(&event).into_owned())
    }

    /// Read more of the body; false at its end.
    fn read_more(&mut self) -> Result<bool, ModelError> {
        match self.response.read_chunk()? {
            Some(bytes) => {
                self.pending.extend(bytes.iter().filter(|b| **b != b'\r'));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn done_or_cut_short(&mut self) -> Result<Chunk, ModelError> {
        let Some(finish_reason) = self.finish_reason.take() else {
            return Err(malformed("the stream ended before the generation did"));
        };
        Ok(Chunk::Done(Generation {
            text: std::mem::take(&mut self.text),
            token_ids: Vec::new(),
            tokens: self.tokens,
            finish_reason,
        }))
    }
}
