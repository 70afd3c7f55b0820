//! Standard tasks: AI (`ai.*`). Each calls a model the host serves through the
//! `models` import, named by the task's `model` input (an id from the host's
//! `[models]` configuration), except `ai.vector-similarity`, which is plain
//! arithmetic over embeddings, and `ai.text-language-detection`, which uses
//! trigram profiles built into the plugin. Ranking by meaning (classification,
//! reranking) is in [`ranking`], structured output in [`structured`], tool
//! calling in [`tools`], a chat's turns in [`chat`], background removal (an image model) in
//! [`background`], faces found by a face-detection model in [`faces`], an image
//! described by a vision model in [`vision`].
mod background;
mod chat;
mod entities;
mod faces;
mod fill_mask;
mod language;
mod ranking;
mod structured;
mod tools;
mod vision;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::models::{self, GenerateOptions, Message, Prompt};
use weft_sdk::{Context, TaskDef, TaskError};

#[derive(Deserialize, JsonSchema)]
struct EmbedIn {
    /// The embedding model's id.
    model: String,
    /// The texts to embed.
    #[serde(default)]
    texts: Vec<String>,
    /// Or one text (its vector is also given as `vector`).
    #[serde(default)]
    text: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct EmbedOut {
    /// One vector per text, in order (`text` last, when given).
    vectors: Vec<Vec<f32>>,
    /// The vector of `text`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    vector: Option<Vec<f32>>,
}

fn embed(input: EmbedIn, _: &Context) -> Result<EmbedOut, TaskError> {
    let mut texts = input.texts;
    let single = input.text.is_some();
    texts.extend(input.text);
    if texts.is_empty() {
        return Err(TaskError::invalid_input("give `texts` or `text`"));
    }
    let vectors = models::embed(&input.model, &texts)?;
    Ok(EmbedOut {
        vector: if single {
            vectors.last().cloned()
        } else {
            None
        },
        vectors,
    })
}

#[derive(Deserialize, JsonSchema)]
struct GenerateIn {
    /// The generation model's id.
    model: String,
    /// The prompt.
    prompt: String,
    /// An optional system instruction.
    #[serde(default)]
    system: Option<String>,
    /// Most tokens to generate (default 256).
    #[serde(default)]
    max_tokens: Option<u32>,
    /// 0 for greedy decoding.
    #[serde(default)]
    temperature: Option<f32>,
    /// Stop before any of these strings.
    #[serde(default)]
    stop: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
struct GenerateOut {
    /// The generated text.
    text: String,
    /// Tokens generated.
    tokens: u32,
    /// Ids of the generated tokens (local models only).
    token_ids: Vec<u32>,
    /// `length`, `stop` or `end`.
    finish_reason: String,
}

fn chat(system: Option<String>, user: String) -> Prompt {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(Message {
            role: "system".into(),
            content: s,
        });
    }
    messages.push(Message {
        role: "user".into(),
        content: user,
    });
    Prompt::Chat(messages)
}

fn run_generation(
    model: &str,
    prompt: Prompt,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    stop: Vec<String>,
) -> Result<GenerateOut, TaskError> {
    let g = models::generate(
        model,
        &prompt,
        &GenerateOptions {
            max_tokens,
            temperature,
            stop,
        },
    )?;
    Ok(GenerateOut {
        text: g.text,
        tokens: g.tokens,
        token_ids: g.token_ids,
        finish_reason: g.finish_reason,
    })
}

fn generate(input: GenerateIn, _: &Context) -> Result<GenerateOut, TaskError> {
    let prompt = match input.system {
        Some(s) => chat(Some(s), input.prompt),
        None => Prompt::Text(input.prompt),
    };
    run_generation(
        &input.model,
        prompt,
        input.max_tokens,
        input.temperature,
        input.stop,
    )
}

#[derive(Deserialize, JsonSchema)]
struct SummaryIn {
    /// The generation model's id.
    model: String,
    /// The text to summarise.
    text: String,
    /// Most tokens of summary (default 256).
    #[serde(default)]
    max_tokens: Option<u32>,
}

#[derive(Serialize, JsonSchema)]
struct TextOut {
    /// The result.
    text: String,
}

fn summary(input: SummaryIn, _: &Context) -> Result<TextOut, TaskError> {
    let g = run_generation(
        &input.model,
        chat(Some(ask::SUMMARISE.into()), input.text),
        input.max_tokens,
        None,
        Vec::new(),
    )?;
    Ok(TextOut { text: g.text })
}

#[derive(Deserialize, JsonSchema)]
struct RewriteIn {
    /// The generation model's id.
    model: String,
    /// The text to rewrite.
    text: String,
    /// How to rewrite it, e.g. "more formal".
    instruction: String,
}

fn rewrite(input: RewriteIn, _: &Context) -> Result<TextOut, TaskError> {
    let g = run_generation(
        &input.model,
        chat(
            Some(format!(
                "Rewrite the user's text: {}. Answer with the rewritten text only.",
                input.instruction
            )),
            input.text,
        ),
        None,
        None,
        Vec::new(),
    )?;
    Ok(TextOut { text: g.text })
}

#[derive(Deserialize, JsonSchema)]
struct TranslateIn {
    /// The generation model's id.
    model: String,
    /// The text to translate.
    text: String,
    /// The language to translate into, e.g. "French".
    target_language: String,
    /// The text's language, if known.
    #[serde(default)]
    source_language: Option<String>,
}

fn translate(input: TranslateIn, _: &Context) -> Result<TextOut, TaskError> {
    let from = input
        .source_language
        .map(|l| format!(" from {l}"))
        .unwrap_or_default();
    let g = run_generation(
        &input.model,
        chat(
            Some(format!(
                "Translate the user's text{from} into {}. Answer with the translation only.",
                input.target_language
            )),
            input.text,
        ),
        None,
        None,
        Vec::new(),
    )?;
    Ok(TextOut { text: g.text })
}

#[derive(Deserialize, JsonSchema)]
struct AnswerIn {
    /// The generation model's id.
    model: String,
    /// What the answer must come from.
    context: String,
    /// The question.
    question: String,
}

#[derive(Serialize, JsonSchema)]
struct AnswerOut {
    /// The answer.
    answer: String,
}

fn answer(input: AnswerIn, _: &Context) -> Result<AnswerOut, TaskError> {
    let g = run_generation(
        &input.model,
        chat(
            Some("Answer the question from the context only. If the context does not say, answer \"I don't know\".".into()),
            format!("Context:\n{}\n\nQuestion: {}", input.context, input.question),
        ),
        None,
        None,
        Vec::new(),
    )?;
    Ok(AnswerOut { answer: g.text })
}

#[derive(Deserialize, JsonSchema)]
struct ModelIn {
    /// A model's id.
    model: String,
}

#[derive(Serialize, JsonSchema)]
struct ModelInfoOut {
    /// The model's id.
    id: String,
    /// `onnx`, `openai`, `anthropic` or `plugin:NAME`.
    provider: String,
    /// `embedding` or `generation`.
    kind: String,
    /// The vector size of an embedding model, when known.
    dimensions: Option<u32>,
}

fn model_info(input: ModelIn, _: &Context) -> Result<ModelInfoOut, TaskError> {
    let i = models::info(&input.model)?;
    Ok(ModelInfoOut {
        id: i.id,
        provider: i.provider,
        kind: i.kind,
        dimensions: i.dimensions,
    })
}

#[derive(Deserialize, JsonSchema)]
struct CountIn {
    /// A model's id.
    model: String,
    /// The text.
    text: String,
}

#[derive(Serialize, JsonSchema)]
struct CountOut {
    /// Tokens in the text, for this model.
    tokens: u32,
}

fn count_tokens(input: CountIn, _: &Context) -> Result<CountOut, TaskError> {
    Ok(CountOut {
        tokens: models::count_tokens(&input.model, &input.text)?,
    })
}

#[derive(Deserialize, JsonSchema)]
struct SimilarityIn {
    /// The query vector.
    query: Vec<f32>,
    /// The vectors to rank.
    vectors: Vec<Vec<f32>>,
    /// How many of the best to return (default: all).
    #[serde(default)]
    top_k: Option<usize>,
    /// Items the vectors stand for (e.g. the texts embedded), returned in
    /// rank order as `top_items`.
    #[serde(default)]
    items: Vec<weft_sdk::Value>,
}

#[derive(Serialize, JsonSchema)]
struct Match {
    /// Position in `vectors`.
    index: usize,
    /// Cosine similarity with the query, in [-1, 1].
    score: f32,
}

#[derive(Serialize, JsonSchema)]
struct SimilarityOut {
    /// Best first.
    matches: Vec<Match>,
    /// The indices of `matches`, in the same order.
    indices: Vec<usize>,
    /// `items` at those indices (when `items` was given).
    top_items: Vec<weft_sdk::Value>,
}

fn similarity(input: SimilarityIn, _: &Context) -> Result<SimilarityOut, TaskError> {
    if input.query.iter().all(|x| *x == 0.0) {
        return Err(TaskError::invalid_input("the query vector is zero"));
    }
    let mut matches = Vec::with_capacity(input.vectors.len());
    for (index, v) in input.vectors.iter().enumerate() {
        if v.len() != input.query.len() {
            return Err(TaskError::invalid_input(format!(
                "vectors[{index}] has {} dimensions, the query {}",
                v.len(),
                input.query.len()
            )));
        }
        let score = ranking::cosine(&input.query, v);
        matches.push(Match { index, score });
    }
    matches.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    matches.truncate(input.top_k.unwrap_or(usize::MAX));
    if !input.items.is_empty() && input.items.len() != input.vectors.len() {
        return Err(TaskError::invalid_input(format!(
            "{} items for {} vectors",
            input.items.len(),
            input.vectors.len()
        )));
    }
    Ok(SimilarityOut {
        indices: matches.iter().map(|m| m.index).collect(),
        top_items: matches
            .iter()
            .filter_map(|m| input.items.get(m.index).cloned())
            .collect(),
        matches,
    })
}

fn tasks() -> Vec<TaskDef> {
    let generation = |def: TaskDef| def.category("ai").not_cacheable();
    vec![
        TaskDef::new("ai.text-embedding", embed)
            .title("Text embedding")
            .category("ai")
            .description("Embeds texts with an embedding model: one vector per text."),
        generation(TaskDef::new("ai.text-generation", generate))
            .title("Text generation")
            .description("Generates text from a prompt; the text streams as progress events."),
        generation(TaskDef::new("ai.text-summary", summary))
            .title("Summarise text")
            .description("Summarises a text with a generation model."),
        generation(TaskDef::new("ai.text-rewriter", rewrite))
            .title("Rewrite text")
            .description("Rewrites a text following an instruction."),
        generation(TaskDef::new("ai.text-translation", translate))
            .title("Translate text")
            .description("Translates a text into another language."),
        generation(TaskDef::new("ai.text-question-answer", answer))
            .title("Answer a question")
            .description("Answers a question from a context."),
        TaskDef::new("ai.model-info", model_info)
            .title("Model info")
            .category("ai")
            .not_cacheable()
            .description("Says what a model is: provider, kind, vector size."),
        TaskDef::new("ai.count-tokens", count_tokens)
            .title("Count tokens")
            .category("ai")
            .description("Counts the tokens of a text for a model."),
        TaskDef::new("ai.vector-similarity", similarity)
            .title("Vector similarity")
            .category("ai")
            .description("Ranks vectors by cosine similarity to a query (top-k)."),
        TaskDef::new("ai.text-classification", ranking::classify)
            .title("Text classifier")
            .category("ai")
            .description(
                "Classifies a text into candidate labels, zero-shot: each label is compared with \
                 the text by an embedding model; the scores sum to 1.",
            ),
        TaskDef::new("ai.text-reranker", ranking::rerank)
            .title("Text reranker")
            .category("ai")
            .description(
                "Scores documents against a query by an embedding model's cosine similarity; \
                 the best first.",
            ),
        TaskDef::new("ai.text-language-detection", language::detect)
            .title("Language detection")
            .category("ai")
            .description("Detects the language of a text (ISO 639-1 code and confidence)."),
        generation(TaskDef::new(
            "ai.structured-generation",
            structured::generate,
        ))
        .title("Structured generation")
        .description(
            "Generates a JSON object conforming to a JSON Schema with a generation model, \
                 validated, asking again with the errors when it does not conform.",
        ),
        generation(TaskDef::new(
            "ai.text-named-entity-recognition",
            entities::recognise,
        ))
        .title("Named entities")
        .description(
            "The named entities of `text` (PER, ORG, LOC, MISC; `blockList` leaves types out) \
             from a generation model, asked for as JSON and checked: each a type, a score and \
             words that occur in the text.",
        ),
        generation(TaskDef::new("ai.text-fill-mask", fill_mask::fill))
            .title("Fill mask")
            .description(
                "The words most likely at `text`'s mask (`[MASK]` or `<mask>`), from a \
                 generation model, each with its probability and the filled text.",
            ),
        generation(TaskDef::new("ai.chat", chat::turn))
            .title("AI chat turn")
            .description(
                "The model's reply to a conversation (started from `prompt`); with a `wait` for \
                 the person's reply and `ai.chat-answer` in a `while` node, a chat (Workglow's \
                 AiChatTask).",
            ),
        TaskDef::new("ai.chat-answer", chat::answer)
            .title("AI chat answer")
            .category("ai")
            .description(
                "Adds a person's reply to a conversation and says whether the chat goes on \
                 (`go`: they replied, and turns are left).",
            ),
        generation(TaskDef::new("ai.tool-calling", tools::call))
            .title("Tool calling")
            .description(
                "Offers a model tools (name, description, input schema) and returns its text and \
                 the calls it asks for, each checked against its tool's schema.",
            ),
        TaskDef::new("ai.background-removal", background::remove)
            .title("Background removal")
            .category("ai")
            .description(
                "The image with its background transparent, by a background-removal `model` \
                 (`isnet`) → image.",
            ),
        TaskDef::new("ai.face-detector", faces::detect)
            .title("Face detector")
            .category("ai")
            .description(
                "The faces in an image (boxes in pixels, eyes, nose, mouth and ears, scores) by a \
                 face-detection `model` (`blazeface`) → faces.",
            ),
        generation(TaskDef::new("ai.image-to-text", vision::image_to_text))
            .title("Image to text")
            .description(
                "Text about an image (a description, or the answer to `prompt`) by a vision \
                 `model` of an HTTP provider → text.",
            ),
        generation(TaskDef::new("ai.image-generate", vision::image_generate))
            .title("Generate image")
            .description(
                "An image made from `prompt` by an image-generation `model` of an HTTP provider \
                 → image.",
            ),
        generation(TaskDef::new("ai.image-edit", vision::image_edit))
            .title("Edit image")
            .description(
                "`image` edited as `prompt` says (where `mask` is transparent; with reference \
                 `additionalImages`) by an image-generation `model` of an HTTP provider → image.",
            ),
    ]
}

weft_sdk::export_plugin!(tasks);
