//! OpenAI-compatible HTTP APIs (OpenAI, and local servers speaking the same
//! protocol: llama.cpp, vLLM, Ollama): chat completions, streamed, and
//! embeddings.

use serde_json::{Value, json};

use super::http::{EventReader, Http, KeyHeader};
use reqwest::multipart::{Form, Part};

use super::{
    GenerateOptions, Generation, ImageFile, ImageRequest, ModelConfig, ModelError, Prompt,
    Provider, TokenSink, last_user,
};

/// The image size `model` makes for an aspect ratio: `gpt-image-*` (and
/// servers speaking its API) 1024×1024, 1536×1024 or 1024×1536; DALL·E 3
/// 1792 wide or high; DALL·E 2 squares only.
fn size(model: &str, aspect_ratio: Option<&str>) -> Result<&'static str, ModelError> {
    let shape = match aspect_ratio.unwrap_or("1:1") {
        "1:1" => 0,
        "16:9" | "4:3" => 1,
        "9:16" | "3:4" => 2,
        other => {
            return Err(ModelError::InvalidRequest(format!(
                "aspect ratio `{other}`: 1:1, 16:9, 9:16, 4:3 or 3:4"
            )));
        }
    };
    let dall_e = |n| model.starts_with(&format!("dall-e-{n}"));
    Ok(match shape {
        0 => "1024x1024",
        _ if dall_e(2) => {
            return Err(ModelError::InvalidRequest(format!(
                "model `{model}` makes square images only (aspect ratio 1:1)"
            )));
        }
        1 if dall_e(3) => "1792x1024",
        2 if dall_e(3) => "1024x1792",
        1 => "1536x1024",
        _ => "1024x1536",
    })
}

/// The quality `model` is asked for: `low`, `medium`, `high` as given
/// (`gpt-image-*`); DALL·E 3 has `hd` for high and its standard otherwise,
/// DALL·E 2 one quality.
fn quality<'a>(model: &str, quality: Option<&'a str>) -> Option<&'a str> {
    match quality {
        _ if model.starts_with("dall-e-2") => None,
        Some("high") if model.starts_with("dall-e-3") => Some("hd"),
        _ if model.starts_with("dall-e-3") => None,
        q => q,
    }
}

/// A file part of a multipart form (`file` checked by
/// [`ImageFile::check_all`]: PNG or JPEG).
fn part(file: &ImageFile, name: &str) -> Part {
    let (ext, media_type) = match file.media_type.as_str() {
        "image/png" => ("png", "image/png"),
        _ => ("jpeg", "image/jpeg"),
    };
    let part = Part::bytes(file.bytes.clone()).file_name(format!("{name}.{ext}"));
    // Both constants parse; an empty part if that ever changed.
    part.mime_str(media_type)
        .unwrap_or_else(|_| Part::bytes(Vec::new()))
}

pub(super) struct OpenAi {
    http: Http,
    model: String,
}

impl OpenAi {
    pub fn new(id: &str, config: &ModelConfig) -> Result<Self, ModelError> {
        Ok(OpenAi {
            http: Http::new(
                id,
                config,
                "https://api.openai.com/v1",
                KeyHeader::Bearer,
                Vec::new(),
            )?,
            model: config.model.clone(),
        })
    }

    /// The prompt's messages; `images` join the last user message as
    /// `image_url` parts (`data:` URLs) after its text.
    fn messages(prompt: &Prompt, images: &[ImageFile]) -> Result<Vec<Value>, ModelError> {
        let mut messages: Vec<Value> = prompt
            .messages()
            .into_iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        if images.is_empty() {
            return Ok(messages);
        }
        let last = last_user(&mut messages)?;
        let mut parts = vec![json!({"type": "text", "text": last["content"]})];
        parts.extend(images.iter().map(|i| {
            let url = format!("data:{};base64,{}", i.media_type, i.base64());
            json!({"type": "image_url", "image_url": {"url": url}})
        }));
        last["content"] = json!(parts);
        Ok(messages)
    }

    /// A streamed chat completion of `messages`, with `response_format`
    /// when given.
    async fn chat(
        &self,
        messages: Vec<Value>,
        response_format: Option<Value>,
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": options.max_tokens.unwrap_or(256),
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(t) = options.temperature {
            body["temperature"] = json!(t);
        }
        if !options.stop.is_empty() {
            body["stop"] = json!(options.stop);
        }
        if let Some(format) = response_format {
            body["response_format"] = format;
        }
        let response = self
            .http
            .send(|| self.http.post("/chat/completions", &body))
            .await?;
        let mut events = EventReader::new(response);
        let mut generation = Generation::default();
        let mut chunks = 0;
        while let Some(event) = events.next(&self.http).await? {
            if event.data.trim() == "[DONE]" {
                break;
            }
            let chunk: Value =
                serde_json::from_str(&event.data).map_err(|e| self.http.malformed(e))?;
            if let Some(error) = chunk.get("error") {
                return Err(ModelError::Unavailable(format!(
                    "model `{}`: {}",
                    self.http.id,
                    error["message"].as_str().unwrap_or("error in stream")
                )));
            }
            let choice = &chunk["choices"][0];
            if let Some(text) = choice["delta"]["content"].as_str()
                && !text.is_empty()
            {
                sink(text);
                generation.text.push_str(text);
                chunks += 1;
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                generation.finish_reason = match reason {
                    "length" => "length",
                    "stop" if !options.stop.is_empty() => "stop",
                    _ => "end",
                }
                .to_string();
            }
            if let Some(n) = chunk["usage"]["completion_tokens"].as_u64() {
                generation.tokens = n as u32;
            }
        }
        if generation.finish_reason.is_empty() {
            return Err(self
                .http
                .malformed("the stream ended before the generation did"));
        }
        if generation.tokens == 0 {
            generation.tokens = chunks;
        }
        Ok(generation)
    }
}

#[async_trait::async_trait]
impl Provider for OpenAi {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        let body = json!({"model": self.model, "input": texts});
        let response = self
            .http
            .send(|| self.http.post("/embeddings", &body))
            .await?;
        let answer = self.http.json(response).await?;
        let mut rows: Vec<(u64, Vec<f32>)> = answer["data"]
            .as_array()
            .ok_or_else(|| self.http.malformed("no `data` list"))?
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let vector = item["embedding"]
                    .as_array()
                    .ok_or_else(|| self.http.malformed("an item has no `embedding`"))?
                    .iter()
                    .map(|v| v.as_f64().map(|f| f as f32))
                    .collect::<Option<Vec<f32>>>()
                    .ok_or_else(|| self.http.malformed("an embedding has a non-number"))?;
                Ok((item["index"].as_u64().unwrap_or(i as u64), vector))
            })
            .collect::<Result<_, ModelError>>()?;
        if rows.len() != texts.len() {
            return Err(self.http.malformed(format!(
                "{} embeddings for {} texts",
                rows.len(),
                texts.len()
            )));
        }
        rows.sort_by_key(|(i, _)| *i);
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }

    async fn generate(
        &self,
        prompt: &Prompt,
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        self.chat(Self::messages(prompt, &[])?, None, options, sink)
            .await
    }

    async fn generate_seeing(
        &self,
        prompt: &Prompt,
        images: &[ImageFile],
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        self.chat(Self::messages(prompt, images)?, None, options, sink)
            .await
    }

    /// Held to the schema by `response_format` (`json_schema`, not strict:
    /// strict mode refuses most schemas; the caller validates).
    async fn generate_json(
        &self,
        prompt: &Prompt,
        schema: &Value,
        options: &GenerateOptions,
        sink: &TokenSink<'_>,
    ) -> Result<Generation, ModelError> {
        let format = json!({"type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": false}});
        self.chat(Self::messages(prompt, &[])?, Some(format), options, sink)
            .await
    }
    /// `/images/generations` (JSON) or, with images, `/images/edits`
    /// (multipart); the image comes back as base64 (asked for, except of
    /// `gpt-image-*` models, which answer nothing else and refuse the
    /// option).
    async fn generate_image(&self, request: &ImageRequest) -> Result<ImageFile, ModelError> {
        let size = size(&self.model, request.aspect_ratio.as_deref())?;
        let quality = quality(&self.model, request.quality.as_deref());
        let base64_asked = !self.model.starts_with("gpt-image");
        let response = if request.images.is_empty() {
            let mut body =
                json!({"model": self.model, "prompt": request.prompt, "n": 1, "size": size});
            if let Some(q) = quality {
                body["quality"] = json!(q);
            }
            if base64_asked {
                body["response_format"] = json!("b64_json");
            }
            self.http
                .send(|| self.http.post("/images/generations", &body))
                .await?
        } else {
            let field = match request.images.len() {
                1 => "image",
                _ => "image[]",
            };
            let form = || {
                let mut form = Form::new()
                    .text("model", self.model.clone())
                    .text("prompt", request.prompt.clone())
                    .text("n", "1")
                    .text("size", size);
                if let Some(q) = quality {
                    form = form.text("quality", q.to_string());
                }
                if base64_asked {
                    form = form.text("response_format", "b64_json");
                }
                for (i, image) in request.images.iter().enumerate() {
                    form = form.part(field, part(image, &format!("image{i}")));
                }
                if let Some(mask) = &request.mask {
                    form = form.part("mask", part(mask, "mask"));
                }
                form
            };
            self.http
                .send(|| self.http.post_form("/images/edits", form()))
                .await?
        };
        let answer = self.http.json(response).await?;
        let encoded = answer["data"][0]["b64_json"].as_str().ok_or_else(|| {
            self.http
                .malformed("no `data[0].b64_json` (an image given as a URL is not fetched)")
        })?;
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded)
            .map_err(|e| self.http.malformed(e))?;
        let media_type = ImageFile::sniff(&bytes)
            .ok_or_else(|| self.http.malformed("the image is not PNG, JPEG or WebP"))?;
        Ok(ImageFile {
            media_type: media_type.to_string(),
            bytes,
        })
    }

    async fn count_tokens(&self, _: &str) -> Result<u32, ModelError> {
        Err(ModelError::InvalidRequest(format!(
            "model `{}`: OpenAI-compatible APIs do not count tokens",
            self.http.id
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::{quality, size};

    #[test]
    fn sizes_and_qualities_are_what_each_model_family_takes() {
        assert_eq!(size("gpt-image-1", None).unwrap(), "1024x1024");
        assert_eq!(size("gpt-image-1", Some("16:9")).unwrap(), "1536x1024");
        assert_eq!(size("gpt-image-1", Some("3:4")).unwrap(), "1024x1536");
        assert_eq!(size("dall-e-3", Some("9:16")).unwrap(), "1024x1792");
        assert_eq!(size("dall-e-3", Some("4:3")).unwrap(), "1792x1024");
        assert_eq!(size("dall-e-2", Some("1:1")).unwrap(), "1024x1024");
        assert!(size("dall-e-2", Some("16:9")).is_err());
        assert!(size("gpt-image-1", Some("2:1")).is_err());
        assert_eq!(quality("gpt-image-1", Some("low")), Some("low"));
        assert_eq!(quality("dall-e-3", Some("high")), Some("hd"));
        assert_eq!(quality("dall-e-3", Some("low")), None);
        assert_eq!(quality("dall-e-2", Some("high")), None);
    }
}
