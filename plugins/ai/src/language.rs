//! `ai.text-language-detection`: which language a text is in, by whatlang's
//! built-in trigram profiles (69 languages), inside the plugin: no model
//! call. The `model` port is Workglow's and is accepted but not used.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, TaskError};

fn five() -> usize {
    5
}

#[derive(Deserialize, JsonSchema)]
pub(crate) struct DetectIn {
    /// The text to detect the language of.
    text: String,
    /// The most languages to return (default 5). Detection names one
    /// language, so this only matters when it is 0.
    #[serde(default = "five", rename = "maxLanguages")]
    #[schemars(range(max = 100))]
    max_languages: usize,
    /// Accepted for Workglow's graphs; detection uses no model.
    #[serde(default)]
    #[allow(dead_code)]
    model: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct Language {
    /// ISO 639-1 code (`en`, `fr`) where the language has one, else its
    /// ISO 639-3 code (`cmn`).
    language: String,
    /// Confidence in [0, 1]: low for short or mixed texts.
    score: f64,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct DetectOut {
    /// The language found, if any (none for text without letters).
    languages: Vec<Language>,
}

/// `lang`'s ISO 639-1 code, or its 639-3 code when it has none.
fn code(lang: whatlang::Lang) -> String {
    let three = lang.code();
    isolang::Language::from_639_3(three)
        .and_then(|l| l.to_639_1())
        .unwrap_or(three)
        .to_string()
}

pub(crate) fn detect(input: DetectIn, _: &Context) -> Result<DetectOut, TaskError> {
    let languages = whatlang::detect(&input.text)
        .map(|info| Language {
            language: code(info.lang()),
            score: info.confidence(),
        })
        .into_iter()
        .take(input.max_languages)
        .collect();
    Ok(DetectOut { languages })
}
