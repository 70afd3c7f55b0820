//! Counting tokens as Workglow's RAG tasks do: estimated as
//! `ceil(length / 4)` (UTF-16 units), or counted by a model's tokenizer
//! when one is named, falling back to the estimate if the model cannot
//! count (said once in the run's log, not once per count).
use std::cell::Cell;

/// A token counter for one task run.
pub struct Tokens<'a> {
    model: Option<&'a str>,
    failed: Cell<bool>,
}

impl<'a> Tokens<'a> {
    pub fn new(model: Option<&'a str>) -> Self {
        Tokens {
            model,
            failed: Cell::new(false),
        }
    }

    /// Whether counts are estimates (no model, or the model failed).
    pub fn estimates(&self) -> bool {
        self.model.is_none() || self.failed.get()
    }

    /// Tokens in `text`.
    pub fn count(&self, text: &str) -> u64 {
        match self.model {
            Some(model) if !self.failed.get() => self.by_model(model, text),
            _ => estimate(js::length(text)),
        }
    }

    /// Tokens in the UTF-16 units `text` (estimated without building a
    /// string when no model counts).
    pub fn count_units(&self, text: &[u16]) -> u64 {
        match self.estimates() {
            true => estimate(text.len()),
            false => self.count(&String::from_utf16_lossy(text)),
        }
    }

    fn by_model(&self, model: &str, text: &str) -> u64 {
        match weft_sdk::models::count_tokens(model, text) {
            Ok(n) => u64::from(n),
            Err(e) => {
                let why = weft_sdk::models::describe(&e);
                let line = format!("model `{model}` could not count tokens ({why}); estimating");
                weft_sdk::log(weft_sdk::Level::Warn, &line);
                self.failed.set(true);
                estimate(js::length(text))
            }
        }
    }
}

/// Workglow's estimate: a token per four UTF-16 units, rounded up.
fn estimate(units: usize) -> u64 {
    units.div_ceil(4) as u64
}
