//! `docs/tasks.md`: every task class of Workglow's utility and AI packages
//! (`@workglow/tasks`, `@workglow/ai` 0.2.37, read from the npm packages by
//! `tests/workglow/classes.mjs`) with what Weft has for it, generated from
//! Weft's registry so that it never drifts. A class is an **alias** (a
//! Weft task type of the same ports and behaviour, which Workglow graphs
//! name by the class), a **node kind**, a Weft task that does the **same
//! job with other ports** (both sides' ports listed), or **not provided**
//! with the reason. The test fails when a class is in none of these, when
//! a list here names a class the package does not have or one that became
//! an alias, when an alias lacks one of its class's ports (unless its
//! schema is open), and when the committed file differs from what it generates
//! (`WEFT_BLESS=1 cargo test --test coverage` rewrites it).

use crate::common;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use weft::graph::workglow;

/// Classes whose job a Weft task does with other ports.
const SAME_JOB: &[(&str, &str)] = &[
    ("CountTokensTask", "ai.count-tokens"),
    ("DebugLogTask", "util.debug-log"),
    ("DelayTask", "util.delay"),
    ("MergeTask", "json.merge"),
    ("ModelInfoTask", "ai.model-info"),
    ("TextEmbeddingTask", "ai.text-embedding"),
    ("TextGenerationTask", "ai.text-generation"),
    ("TextQuestionAnswerTask", "ai.text-question-answer"),
    ("TextRewriterTask", "ai.text-rewriter"),
    ("TextTranslationTask", "ai.text-translation"),
    ("VectorSimilarityTask", "ai.vector-similarity"),
];

const CONVERTED: &str = "not yet: MediaPipe's models for it ship in packages on the registries as TensorFlow Lite or TensorFlow.js, not ONNX (converting them needs TensorFlow), and no common HTTP API serves it (the image models served: face detection on BlazeFace, background removal on ISNet, vision chat and image generation over HTTP)";
const NO_MODEL: &str = "not yet: no general model for it ships in a package on the registries (only specialised ones: document rotation, NSFW), and no common HTTP API serves it (the image models served: face detection on BlazeFace, background removal on ISNet, vision chat and image generation over HTTP)";
const GESTURES: &str = "not yet: MediaPipe's gesture model ships in no package on the registries (its hand-landmark models ship as TensorFlow Lite, not ONNX), and no common HTTP API serves it";
const BASE: &str = "an abstract base class of Workglow's AI tasks, not a task";

/// Classes Weft does not provide, and why.
const NOT_PROVIDED: &[(&str, &str)] = &[
    ("AiImageOutputTask", BASE),
    ("AiTask", BASE),
    (
        "ArrayTask",
        "a base class for tasks that run once per element of their array inputs (in Weft: the `map` node)",
    ),
    ("FaceLandmarkerTask", CONVERTED),
    ("GestureRecognizerTask", GESTURES),
    ("HandLandmarkerTask", CONVERTED),
    ("ImageClassificationTask", NO_MODEL),
    ("ImageEmbeddingTask", NO_MODEL),
    ("ImageSegmentationTask", CONVERTED),
    (
        "JsonTask",
        "builds a graph from JSON while running: in Weft a graph is data before it runs (subgraph nodes, saved graphs)",
    ),
    (
        "LambdaTask",
        "calls a function of the host program: a Weft graph carries no code; code runs in plugins",
    ),
    ("ObjectDetectionTask", CONVERTED),
    ("PoseLandmarkerTask", CONVERTED),
    ("StreamingAiTask", BASE),
];

#[derive(Deserialize)]
struct Class {
    class: String,
    package: String,
    category: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

/// Workglow's task classes, from its npm packages.
fn workglow_classes() -> Vec<Class> {
    let out = Command::new("node")
        .args(["--conditions=browser", "classes.mjs"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("workglow"))
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "classes.mjs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("classes.mjs prints JSON")
}

/// The ports of Workglow's `class` that its alias `task` lacks (none where
/// the alias's schema is open).
fn port_mismatches(class: &Class, task: &weft::task::TaskType) -> Vec<String> {
    let missing = |theirs: &[String], ours: &weft::schema::ObjectSchema, side: &str| {
        let have = ours.ports();
        theirs
            .iter()
            .filter(|p| !ours.is_open() && !have.contains(&p.as_str()))
            .map(|p| format!("{} → `{}`: no {side} port `{p}`", class.class, task.id))
            .collect::<Vec<_>>()
    };
    let mut found = missing(&class.inputs, &task.input, "input");
    found.extend(missing(&class.outputs, &task.output, "output"));
    found
}

/// What Weft has for one class.
enum Has {
    Alias(String),
    NodeKind(&'static str),
    SameJob(String, Vec<String>, Vec<String>),
    Not(&'static str),
}

fn ports(list: &[String]) -> String {
    list.iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn row(class: &Class, has: &Has) -> String {
    let weft = match has {
        Has::Alias(id) => format!("`{id}` (alias)"),
        Has::NodeKind(kind) => format!("node kind `{kind}`"),
        Has::SameJob(id, inputs, outputs) => format!(
            "`{id}`, other ports: in {} → out {} (Workglow: in {} → out {})",
            ports(inputs),
            ports(outputs),
            ports(&class.inputs),
            ports(&class.outputs)
        ),
        Has::Not(why) => why.to_string(),
    };
    format!("| `{}` | {} | {weft} |\n", class.class, class.category)
}

#[tokio::test]
async fn docs_tasks_md_is_the_coverage_of_workglows_task_classes() {
    let host = common::host(None).await;
    let registry = host.registry();
    let classes = workglow_classes();
    assert!(classes.len() > 100, "classes.mjs found {}", classes.len());
    let names: Vec<&str> = classes.iter().map(|c| c.class.as_str()).collect();
    for (class, _) in SAME_JOB.iter().chain(NOT_PROVIDED) {
        assert!(
            names.contains(class),
            "{class} is not a class of the packages"
        );
    }
    let mut by_package: BTreeMap<&str, Vec<(&Class, Has)>> = BTreeMap::new();
    let mut mismatches = Vec::new();
    for class in &classes {
        let name = class.class.as_str();
        let listed = SAME_JOB
            .iter()
            .find(|(c, _)| *c == name)
            .map(|(_, id)| *id)
            .or(NOT_PROVIDED.iter().find(|(c, _)| *c == name).map(|_| ""));
        let has = if let Some(kind) = workglow::node_kind_of(name) {
            Has::NodeKind(kind)
        } else if let Some(task) = registry.get(name) {
            assert!(
                listed.is_none(),
                "{name} is an alias of `{}` now: take it off the lists",
                task.id
            );
            mismatches.extend(port_mismatches(class, task));
            Has::Alias(task.id.clone())
        } else if let Some((_, id)) = SAME_JOB.iter().find(|(c, _)| *c == name) {
            let task = registry
                .get(id)
                .unwrap_or_else(|| panic!("{name}: no task type `{id}`"));
            let names = |s: &weft::schema::ObjectSchema| {
                s.ports().into_iter().map(str::to_string).collect()
            };
            Has::SameJob(id.to_string(), names(&task.input), names(&task.output))
        } else if let Some((_, why)) = NOT_PROVIDED.iter().find(|(c, _)| *c == name) {
            Has::Not(why)
        } else {
            panic!(
                "{name} ({}): neither an alias nor listed in SAME_JOB or NOT_PROVIDED",
                class.package
            )
        };
        by_package
            .entry(&class.package)
            .or_default()
            .push((class, has));
    }
    assert!(
        mismatches.is_empty(),
        "aliases must have Workglow's ports:\n{}",
        mismatches.join("\n")
    );
    let expected = render(&by_package);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/tasks.md");
    if std::env::var_os("WEFT_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "docs/tasks.md is out of date: run `WEFT_BLESS=1 cargo test --test coverage` and commit it"
    );
}

fn render(by_package: &BTreeMap<&str, Vec<(&Class, Has)>>) -> String {
    let all: Vec<&Has> = by_package.values().flatten().map(|(_, h)| h).collect();
    let count = |f: fn(&Has) -> bool| all.iter().filter(|h| f(h)).count();
    let aliases = count(|h| matches!(h, Has::Alias(_)));
    let kinds = count(|h| matches!(h, Has::NodeKind(_)));
    let same = count(|h| matches!(h, Has::SameJob(..)));
    let mut doc = String::from(
        "# Task coverage: Workglow's task classes in Weft\n\n\
         Generated by `tests/coverage.rs` from Weft's registry and Workglow's npm packages \
         (`@workglow/tasks` and `@workglow/ai` 0.2.37); do not edit by hand.\n\n",
    );
    writeln!(
        doc,
        "Of {} classes, Weft runs {} as they are named: {aliases} as aliases of Weft task types \
         (same ports, same behaviour) and {kinds} as node kinds. {same} more have a Weft task \
         doing the same job with other ports (a graph written by Workglow naming them must be \
         rewritten). {} are not provided.\n",
        all.len(),
        aliases + kinds,
        all.len() - aliases - kinds - same
    )
    .unwrap();
    for (package, rows) in by_package {
        writeln!(
            doc,
            "## `{package}`\n\n| Workglow class | category | Weft |\n|---|---|---|"
        )
        .unwrap();
        for (class, has) in rows {
            doc.push_str(&row(class, has));
        }
        doc.push('\n');
    }
    doc
}
