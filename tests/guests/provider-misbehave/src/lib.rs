//! A provider whose model `counter` answers each text with `[calls, loads,
//! len]`: the calls this instance served (this one included) and the models
//! it loaded, so a test sees whether an instance was kept or replaced. The
//! text `panic` panics, `spin` never returns, `grow` asks for 256 MiB;
//! settings `{"fail": true}` make `load` refuse. Generation streams
//! `one`, ` two`, ` three`, or spins after `one` when the prompt is `spin`.

use std::cell::{Cell, RefCell};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "provider-plugin",
});

use exports::weft::plugin::provider::{
    Chunk, Guest, GuestGenerationStream, GuestModel, ModelConfig,
};
use weft::plugin::models::{GenerateOptions, Generation, ModelError, Prompt};

thread_local! {
    static CALLS: Cell<u32> = const { Cell::new(0) };
    static LOADS: Cell<u32> = const { Cell::new(0) };
}

fn count_call() -> u32 {
    CALLS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    })
}

struct Misbehave;

impl Guest for Misbehave {
    type Model = Counter;
    type GenerationStream = Words;
}

export!(Misbehave);

struct Counter;

fn misbehave(text: &str) {
    match text {
        "panic" => panic!("asked to panic"),
        "spin" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "grow" => {
            let big = vec![1u8; 256 << 20];
            std::hint::black_box(&big);
        }
        _ => {}
    }
}

impl GuestModel for Counter {
    fn load(config: ModelConfig) -> Result<exports::weft::plugin::provider::Model, ModelError> {
        if config.settings.contains("\"fail\":true") {
            return Err(ModelError::InvalidRequest(format!(
                "model `{}`: settings say fail",
                config.id
            )));
        }
        LOADS.with(|l| l.set(l.get() + 1));
        Ok(exports::weft::plugin::provider::Model::new(Counter))
    }

    fn dimensions(&self) -> Option<u32> {
        Some(3)
    }

    fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ModelError> {
        let calls = count_call();
        let loads = LOADS.with(Cell::get);
        texts.iter().for_each(|t| misbehave(t));
        Ok(texts
            .iter()
            .map(|t| vec![calls as f32, loads as f32, t.len() as f32])
            .collect())
    }

    fn generate(
        &self,
        prompt: Prompt,
        _options: GenerateOptions,
    ) -> Result<exports::weft::plugin::provider::GenerationStream, ModelError> {
        count_call();
        let spin = matches!(&prompt, Prompt::Text(t) if t == "spin");
        Ok(exports::weft::plugin::provider::GenerationStream::new(
            Words {
                left: RefCell::new(vec![" three", " two", "one"]),
                spin,
            },
        ))
    }

    fn count_tokens(&self, _text: String) -> Result<u32, ModelError> {
        Ok(count_call())
    }
}

struct Words {
    left: RefCell<Vec<&'static str>>,
    spin: bool,
}

impl GuestGenerationStream for Words {
    fn next(&self) -> Result<Chunk, ModelError> {
        let mut left = self.left.borrow_mut();
        if self.spin && left.len() < 3 {
            misbehave("spin");
        }
        Ok(match left.pop() {
            Some(word) => Chunk::Text(word.to_string()),
            None => Chunk::Done(Generation {
                text: "one two three".into(),
                token_ids: Vec::new(),
                tokens: 3,
                finish_reason: "end".into(),
            }),
        })
    }
}
