//! Anthropic's Messages API: streamed generation and token counting.

use serde_json::{Value, json};

use super::http::{EventReader, Http, KeyHeader};
use super::{
    GenerateOptions, Generation, ImageFile, ModelConfig, ModelError, Prompt, Provider, TokenSink,
    last_user,
};

const VERSION: &str = "2023-06-01";

pub(super) struct Anthropic {
    http: Http,
    model: String,
}

impl Anthropic {
    pub fn new(id: &str, config: &ModelConfig) -> Result<Self, ModelError> {
        Ok(Anthropic {
            http: Http::new(
                id,
                config,
                "https://api.anthropic.com",
                KeyHeader::Named("x-api-key"),
                vec![("anthropic-version", VERSION)],
            )?,
            model: config.model.clone(),
        })
    }

    /// System messages go in `system`; the rest are the conversation.
    /// `images` join the last user message as base64 `image` blocks before
    /// its text, as Anthropic advises.
    fn split(
        prompt: &Prompt,
        images: &[ImageFile],
    ) -> Result<(Option<String>, Vec<Value>), ModelError> {
        let mut system = Vec::new();
        let mut messages = Vec::new();
        for m in prompt.messages() {
            if m.role == "system" {
                system.push(m.content);
            } else {
                messages.push(json!({"role": m.role, "content": m.content}));
            }
        }
        if !images.is_empty() {
            let last = last_user(&mut messages)?;
            let mut blocks: Vec<Value> = images
                .iter()
                .map(|i| {
                    let source =
                        json!({"type": "base64", "media_type": i.media_type, "data": i.base64()});
                    json!({"type": "image", "source": source})
                })
                .collect();
            blocks.push(json!({"type": "text", "text": last["content"]}));
            last["content"] = json!(blocks);
        }
        Ok(((!system.is_empty()).then(|| system.join("\n")), messages))
    }
}

#[async_trait::async_trait]
impl Provider for Anthropic {
    async fn embed(&self, _: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        Err(ModelError::InvalidRequest(format!(
            "model `{}`: Anthropic does not serve embeddings",
            self.http.id
        )))
    }

    async fn generate(
        &self,
        prompt: &Prompt,
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        self.generate_seeing(prompt, &[], options, sink).await
    }

    async fn generate_seeing(
        &self,
        prompt: &Prompt,
        images: &[ImageFile],
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        let (system, messages) = Self::split(prompt, images)?;
        let mut body = json!({
            "model": self.model,
            "max_tokens": options.max_tokens.unwrap_or(256),
            "messages": messages,
            "stream": true,
        });
        if let Some(s) = system {
            body["system"] = json!(s);
        }
        if let Some(t) = options.temperature {
            body["temperature"] = json!(t);
        }
        if !options.stop.is_empty() {
            body["stop_sequences"] = json!(options.stop);
        }
        let response = self
            .http
            .send(|| self.http.post("/v1/messages", &body))
            .await?;
        let mut events = EventReader::new(response);
        let mut generation = Generation::default();
        let mut finished = false;
        while let Some(event) = events.next(&self.http).await? {
            let data: Value =
                serde_json::from_str(&event.data).map_err(|e| self.http.malformed(e))?;
            let kind = event
                .event
                .clone()
                .or_else(|| data["type"].as_str().map(str::to_string))
                .unwrap_or_default();
            match kind.as_str() {
                "content_block_delta" => {
                    if let Some(text) = data["delta"]["text"].as_str() {
                        sink(text);
                        generation.text.push_str(text);
                    }
                }
                "message_delta" => {
                    if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                        generation.finish_reason = match reason {
                            "max_tokens" => "length",
                            "stop_sequence" => "stop",
                            _ => "end",
                        }
                        .to_string();
                    }
                    if let Some(n) = data["usage"]["output_tokens"].as_u64() {
                        generation.tokens = n as u32;
                    }
                }
                "message_stop" => {
                    finished = true;
                    break;
                }
                "error" => {
                    let kind = data["error"]["type"].as_str().unwrap_or("error");
                    let message = data["error"]["message"].as_str().unwrap_or("");
                    return Err(if kind == "rate_limit_error" {
                        ModelError::RateLimited {
                            retry_after_ms: 1000,
                        }
                    } else {
                        ModelError::Unavailable(format!(
                            "model `{}`: {kind}: {message}",
                            self.http.id
                        ))
                    });
                }
                _ => {}
            }
        }
        if !finished {
            return Err(self
                .http
                .malformed("the stream ended before the message did"));
        }
        if generation.finish_reason.is_empty() {
            generation.finish_reason = "end".into();
        }
        Ok(generation)
    }

    async fn count_tokens(&self, text: &str) -> Result<u32, ModelError> {
        let body = json!({
            "model": self.model,
            "messages": [{"role": "user", "content": text}],
        });
        let response = self
            .http
            .send(|| self.http.post("/v1/messages/count_tokens", &body))
            .await?;
        let answer = self.http.json(response).await?;
        answer["input_tokens"]
            .as_u64()
            .map(|n| n as u32)
            .ok_or_else(|| self.http.malformed("no `input_tokens`"))
    }
}
