//! Exports Weft's `task` interface but also imports `acme:magic/wand`, which no
//! Weft host offers: loading it must fail with a link error naming the import.
wit_bindgen::generate!({
    inline: "
        package acme:magic;
        interface wand { wave: func() -> u32; }
        world bad { import wand; export weft:plugin/task@0.1.5; }
    ",
    path: "../../../wit",
    world: "acme:magic/bad",
    generate_all,
});

use exports::weft::plugin::task::{Context, Guest, TaskError, TaskType};

struct Bad;

impl Guest for Bad {
    fn describe() -> Vec<TaskType> {
        Vec::new()
    }
    fn run(_: String, _: String, _: Context) -> Result<String, TaskError> {
        Ok(format!("{{\"n\":{}}}", acme::magic::wand::wave()))
    }
}

export!(Bad);
