//! Tasks in three languages: `weft new` makes a Rust, a Python and a
//! JavaScript plugin project, `weft build` compiles each from source with the
//! registry toolchains (installed by `sdk/install-tools.sh`, which the test
//! command runs), one host loads all three, and a graph passes data
//! Rust → Python → JavaScript → Rust. Failures in each language fail only
//! their task, with a clear message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};
use weft_tests::ROOT;

fn weft(dir: &Path, args: &[&str]) -> Output {
    // Where `sdk/install-tools.sh` puts them (tests/run.sh exports these).
    let tools = PathBuf::from(ROOT).join(".weft/cache/tools");
    let mut c = Command::new(env!("CARGO_BIN_EXE_weft"));
    c.args(args)
        .current_dir(dir)
        .env("WEFT_CACHE_DIR", dir.join("cache"))
        .env("WEFT_DATA_DIR", dir.join("data"))
        .env_remove("WEFT_PLUGINS_DIR");
    if std::env::var_os("WEFT_COMPONENTIZE_PY").is_none() {
        let py = tools.join("componentize-py-0.25.1/bin/componentize-py");
        c.env("WEFT_COMPONENTIZE_PY", py);
    }
    if std::env::var_os("WEFT_COMPONENTIZE_JS").is_none() {
        c.env(
            "WEFT_COMPONENTIZE_JS",
            tools.join("componentize-js-0.23.0/node_modules/.bin/componentize-js"),
        );
    }
    // The Rust project shares a target folder between test runs.
    c.env(
        "CARGO_TARGET_DIR",
        PathBuf::from(ROOT).join("target/sdk-test"),
    );
    c.output().expect("weft runs")
}

/// A plugin made with `weft new NAME --lang LANG` under `d`, `tasks`
/// appended to its app, built, and put in `plugins` with a manifest
/// granting `models` (a TOML array).
fn guest_granted(d: &Path, plugins: &Path, (name, lang, tasks): (&str, &str, &str), models: &str) {
    ok(weft(d, &["new", name, "--lang", lang]), "weft new");
    let app = d
        .join(name)
        .join(if lang == "js" { "app.js" } else { "app.py" });
    let code = std::fs::read_to_string(&app).unwrap() + tasks;
    std::fs::write(&app, code).unwrap();
    ok(weft(&d.join(name), &["build"]), "weft build");
    let wasm = d.join(name).join(format!("dist/{name}.wasm"));
    std::fs::copy(wasm, plugins.join(format!("{name}.wasm"))).unwrap();
    let manifest = format!("[grants]\nmodels = {models}\n");
    std::fs::write(plugins.join(format!("{name}.toml")), manifest).unwrap();
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const RUST_TASKS: &str = r#"
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, TaskDef, TaskError};

#[derive(Deserialize, JsonSchema)]
struct Count { n: u32 }
#[derive(Serialize, JsonSchema)]
struct Numbers { numbers: Vec<i64> }
#[derive(Deserialize, JsonSchema)]
struct Total { result: i64 }
#[derive(Serialize, JsonSchema)]
struct Text { text: String }

fn numbers(input: Count, _: &Context) -> Result<Numbers, TaskError> {
    Ok(Numbers { numbers: (1..=input.n as i64).collect() })
}

fn report(input: Total, _: &Context) -> Result<Text, TaskError> {
    Ok(Text { text: format!("the total is {}", input.result) })
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("rs.numbers", numbers).title("Numbers 1..n"),
        TaskDef::new("rs.report", report).title("Report"),
    ]
}

weft_sdk::export_plugin!(tasks);
"#;

const PYTHON_TASKS: &str = r#"

@dataclass
class Numbers:
    numbers: List[int]


@task("py.squares", title="Squares")
def squares(input: Numbers) -> Numbers:
    """Squares every number."""
    return Numbers([n * n for n in input.numbers])


@task("py.fails")
def fails(input: Numbers) -> Numbers:
    return Numbers([1 // 0])


@dataclass
class Counter:
    key: str


@dataclass
class Counted:
    key: str
    n: int


@task("py.count", side_effects=True)
def count(input: Counter) -> Counted:
    """Counts in the plugin's storage, by compare-and-swap."""
    from weft_sdk import storage, StorageConflict
    while True:
        found = storage.get(input.key)
        n, version = (int(found[0]), found[1]) if found else (0, 0)
        try:
            storage.set(input.key, str(n + 1).encode(), if_version=version)
            return Counted(input.key, n + 1)
        except StorageConflict:
            continue


@dataclass
class Found:
    found: List[bool]


@task("py.forget", side_effects=True)
def forget(input: Counter) -> Found:
    """Deletes the counter and a key never written, together."""
    from weft_sdk import storage
    return Found(storage.delete_many([input.key, "never-written"]))


@dataclass
class Nearest:
    keys: List[str]


@task("py.nearest", side_effects=True)
def nearest(input: Counter) -> Nearest:
    """Keeps three vectors and asks for the two nearest (1, 0.1)."""
    from weft_sdk import vectors
    vectors.set_many([("v/a", b"a", [1.0, 0.0]), ("v/b", b"b", [0.0, 1.0]),
                      ("v/c", b"c", [1.0, 1.0])])
    return Nearest([k for k, _ in vectors.nearest([1.0, 0.1], prefix="v/", limit=2)])


@dataclass
class Setting:
    key: str


@dataclass
class SettingValue:
    value: str


@task("py.setting", cacheable=False)
def setting(input: Setting) -> SettingValue:
    from weft_sdk import config
    return SettingValue(str(config.get(input.key)))
"#;

/// A Python task over the `models` import: a model's token count and
/// description, and a call of another kind, refused.
const PYTHON_MODELS: &str = r#"


@dataclass
class ModelCall:
    model: str
    text: str


@dataclass
class ModelAnswers:
    tokens: int
    provider: str
    kind: str
    dimensions: int
    foreground: str
    detect: str


@task("pm.model", cacheable=False)
def model_calls(input: ModelCall) -> ModelAnswers:
    """Counts tokens, describes the model, and asks it for a foreground
    and for faces."""
    from weft_sdk import models, TaskError
    try:
        models.foreground(input.model, 1, 1, bytes([0, 0, 0, 255]))
        refused = "not refused"
    except TaskError as e:
        refused = str(e)
    try:
        models.detect(input.model, 1, 1, bytes([0, 0, 0, 255]))
        no_faces = "not refused"
    except TaskError as e:
        no_faces = str(e)
    info = models.info(input.model)
    return ModelAnswers(models.count_tokens(input.model, input.text), info["provider"],
                        info["kind"], info["dimensions"] or 0, refused, no_faces)
"#;

/// The same in JavaScript.
const JS_MODELS: &str = r#"
import { models as modelCalls } from "./weft-sdk.js";

defineTask(
  {
    id: "jm.model",
    input: {
      type: "object",
      properties: { model: { type: "string" }, text: { type: "string" } },
      required: ["model", "text"],
    },
    output: { type: "object" },
    cacheable: false,
  },
  (input) => {
    let refused = "not refused";
    try {
      modelCalls.foreground(input.model, { width: 1, height: 1, rgba: [0, 0, 0, 255] });
    } catch (e) {
      refused = String(e.message ?? e);
    }
    let noFaces = "not refused";
    try {
      modelCalls.detect(input.model, { width: 1, height: 1, rgba: [0, 0, 0, 255] });
    } catch (e) {
      noFaces = String(e.message ?? e);
    }
    const info = modelCalls.info(input.model);
    return {
      tokens: modelCalls.countTokens(input.model, input.text),
      provider: info.provider,
      kind: info.kind,
      dimensions: info.dimensions ?? 0,
      foreground: refused,
      detect: noFaces,
    };
  },
);
"#;

/// A JavaScript task over the `storage` import, appended to the code task
/// example.
const JS_COUNT: &str = r#"
import { storage, config, vectors } from "./weft-sdk.js";

defineTask(
  {
    id: "js.count",
    input: { type: "object", properties: { key: { type: "string" } }, required: ["key"] },
    output: { type: "object", properties: { key: { type: "string" }, n: { type: "integer" }, greeting: {} } },
    sideEffects: true,
  },
  (input) => {
    for (;;) {
      const found = storage.get(input.key);
      const n = found ? Number(new TextDecoder().decode(found.value)) : 0;
      try {
        storage.set(input.key, String(n + 1), undefined, { ifVersion: found ? found.version : 0 });
        return { key: input.key, n: n + 1, greeting: config.get("greeting") ?? null };
      } catch (e) {
        if (!e.conflict) throw e;
      }
    }
  },
);

defineTask(
  {
    id: "js.nearest",
    input: { type: "object" },
    output: { type: "object" },
    sideEffects: true,
  },
  () => {
    // Keeps three vectors and asks for the two nearest (1, 0.1), then for
    // two past the first.
    const versions = vectors.setMany([
      ["v/a", "a", [1, 0]], ["v/b", "b", [0, 1]], ["v/c", new Uint8Array([99]), [1, 1]],
    ]);
    const near = vectors.nearest([1, 0.1], { prefix: "v/", limit: 2 });
    const past = vectors.nearest([1, 0.1], { prefix: "v/", skip: 1, limit: 2 });
    return {
      versions,
      keys: near.map((n) => n.key),
      similarity: near[0].similarity,
      past: past.map((n) => n.key),
      kept: storage.getText("v/c"),
    };
  },
);

defineTask(
  {
    id: "js.forget",
    input: { type: "object", properties: { key: { type: "string" } }, required: ["key"] },
    output: { type: "object", properties: { found: { type: "array" }, left: {} } },
    sideEffects: true,
  },
  (input) => ({
    found: storage.deleteMany([input.key, "never-written"]),
    left: storage.get(input.key) ?? null,
  }),
);
"#;

#[test]
fn plugins_in_rust_python_and_javascript_build_load_and_pass_data_along() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, lang) in [("rs", "rust"), ("py", "python"), ("js", "js")] {
        ok(weft(d, &["new", name, "--lang", lang]), "weft new");
    }
    // The generated projects' own tests pass with the plain language tools.
    ok(
        Command::new("python3")
            .args(["-m", "unittest", "-q"])
            .current_dir(d.join("py"))
            .output()
            .unwrap(),
        "python3 -m unittest",
    );
    ok(
        Command::new("node")
            .arg("test.mjs")
            .current_dir(d.join("js"))
            .output()
            .unwrap(),
        "node test.mjs",
    );
    // Each gets tasks of its own: Rust replaces the example, Python adds to it,
    // JavaScript becomes the code task example.
    std::fs::write(d.join("rs/src/lib.rs"), RUST_TASKS).unwrap();
    let mut app = std::fs::read_to_string(d.join("py/app.py")).unwrap();
    app = app.replace(
        "from dataclasses import dataclass",
        "from dataclasses import dataclass\nfrom typing import List",
    );
    app.push_str(PYTHON_TASKS);
    std::fs::write(d.join("py/app.py"), app).unwrap();
    let js = std::fs::read_to_string(PathBuf::from(ROOT).join("examples/plugin-js-code/app.js"))
        .unwrap();
    std::fs::write(d.join("js/app.js"), js + JS_COUNT).unwrap();

    let plugins = d.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let mut sizes = Vec::new();
    for name in ["rs", "py", "js"] {
        let started = Instant::now();
        let said = ok(weft(&d.join(name), &["build"]), "weft build");
        assert!(said.contains(&format!("dist/{name}.wasm")), "{said}");
        let wasm = d.join(name).join(format!("dist/{name}.wasm"));
        sizes.push((
            name,
            std::fs::metadata(&wasm).unwrap().len(),
            started.elapsed(),
        ));
        std::fs::copy(&wasm, plugins.join(format!("{name}.wasm"))).unwrap();
    }
    for name in ["py", "js"] {
        let manifest = "[config]\ngreeting = \"hi from the manifest\"\n";
        std::fs::write(plugins.join(format!("{name}.toml")), manifest).unwrap();
    }

    // One host loads all three (first load compiles; the second is cached).
    let started = Instant::now();
    let listed = ok(
        weft(d, &["tasks", "--json", "--plugins", "plugins"]),
        "weft tasks",
    );
    let first_load = started.elapsed();
    let started = Instant::now();
    ok(
        weft(d, &["tasks", "--json", "--plugins", "plugins"]),
        "weft tasks",
    );
    let cached_load = started.elapsed();
    let tasks: Value = serde_json::from_str(&listed).unwrap();
    let find = |id: &str| {
        tasks
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("{id} not loaded: {listed}"))
            .clone()
    };
    let squares = find("py.squares");
    assert_eq!(squares["plugin"], "py");
    assert_eq!(squares["description"], "Squares every number.");
    assert_eq!(
        squares["input_schema"]["properties"]["numbers"],
        json!({"type": "array", "items": {"type": "integer"}})
    );
    assert_eq!(
        find("code.javascript")["input_schema"]["required"],
        json!(["code"])
    );
    assert_eq!(find("rs.numbers")["plugin"], "rs");
    find("py.greet");

    // Rust → Python → JavaScript → Rust, and each language failing on its own.
    let flow = |s: &str, sp: &str, t: &str, tp: &str| json!({"sourceTaskId": s, "sourceTaskPortId": sp, "targetTaskId": t, "targetTaskPortId": tp});
    let graph = json!({
        "tasks": [
            {"id": "numbers", "type": "rs.numbers", "defaults": {"n": 4}},
            {"id": "squares", "type": "py.squares"},
            {"id": "sum", "type": "code.javascript",
             "defaults": {"code": "log('summing'); return args.numbers.reduce((a, b) => a + b, 0);"}},
            {"id": "report", "type": "rs.report"},
            {"id": "greet", "type": "py.greet", "defaults": {"name": "loom"}},
            {"id": "py_raises", "type": "py.fails", "defaults": {"numbers": []}},
            {"id": "js_throws", "type": "code.javascript",
             "defaults": {"code": "throw new RangeError('no such thing')"}},
            {"id": "js_loops", "type": "code.javascript", "config": {"timeout_ms": 2000},
             "defaults": {"code": "while (true) {}"}},
            {"id": "py1", "type": "py.count", "defaults": {"key": "visits"}},
            {"id": "py2", "type": "py.count"},
            {"id": "js1", "type": "js.count", "defaults": {"key": "visits"}},
            {"id": "js2", "type": "js.count"},
            {"id": "py3", "type": "py.forget"},
            {"id": "js3", "type": "js.forget"},
            {"id": "setting", "type": "py.setting", "defaults": {"key": "greeting"}},
            {"id": "py_near", "type": "py.nearest", "defaults": {"key": "unused"}},
            {"id": "js_near", "type": "js.nearest"}
        ],
        "dataflows": [
            flow("numbers", "numbers", "squares", "numbers"),
            flow("squares", "*", "sum", "args"),
            flow("sum", "result", "report", "result"),
            flow("py1", "key", "py2", "key"),
            flow("js1", "key", "js2", "key"),
            flow("py2", "key", "py3", "key"),
            flow("js2", "key", "js3", "key")
        ]
    });
    std::fs::write(d.join("g.json"), graph.to_string()).unwrap();
    let out = weft(
        d,
        &[
            "run",
            "g.json",
            "--plugins",
            "plugins",
            "--json",
            "--all-outputs",
            "--ephemeral",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "some nodes fail on purpose");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        result["outputs"]["squares"]["numbers"],
        json!([1, 4, 9, 16])
    );
    assert_eq!(result["outputs"]["sum"]["result"], 30);
    assert_eq!(result["outputs"]["report"]["text"], "the total is 30");
    assert_eq!(result["outputs"]["greet"]["greeting"], "Hello, loom!");
    // Storage and configuration from Python and JavaScript: each plugin
    // counts in its own namespace.
    assert_eq!(result["outputs"]["py2"], json!({"key": "visits", "n": 2}));
    assert_eq!(result["outputs"]["js2"]["n"], 2);
    assert_eq!(result["outputs"]["js2"]["greeting"], "hi from the manifest");
    // Vectors from Python and JavaScript: the nearest keys, best first.
    assert_eq!(result["outputs"]["py_near"]["keys"], json!(["v/a", "v/c"]));
    let js_near = &result["outputs"]["js_near"];
    assert_eq!(js_near["keys"], json!(["v/a", "v/c"]), "{result}");
    assert_eq!(js_near["past"], json!(["v/c", "v/b"]), "{result}");
    let similarity = js_near["similarity"].as_f64().unwrap_or_default();
    assert!(
        (similarity - 1.0 / 1.01f64.sqrt()).abs() < 1e-4,
        "cosine of (1, 0) and (1, 0.1): {similarity}"
    );
    // The versions come back as numbers, one a key; each key keeps its value.
    let versions = js_near["versions"].as_array().cloned().unwrap_or_default();
    assert_eq!(versions.len(), 3, "{result}");
    assert!(versions.iter().all(|v| v.as_u64().is_some_and(|v| v > 0)));
    assert_eq!(js_near["kept"], "c");
    // Keys deleted together, each said to be there or not.
    assert_eq!(result["outputs"]["py3"]["found"], json!([true, false]));
    assert_eq!(
        result["outputs"]["js3"],
        json!({"found": [true, false], "left": null})
    );
    assert_eq!(
        result["outputs"]["setting"]["value"],
        "hi from the manifest"
    );
    let error = |node: &str| {
        result["failures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["node"] == node)
            .unwrap_or_else(|| panic!("{node} did not fail: {result}"))["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        error("py_raises").contains("uncaught ZeroDivisionError: division by zero"),
        "{}",
        error("py_raises")
    );
    assert!(
        error("js_throws").contains("uncaught RangeError: no such thing"),
        "{}",
        error("js_throws")
    );
    assert!(
        error("js_loops").contains("timed out after 2000 ms"),
        "{}",
        error("js_loops")
    );
    assert_eq!(
        result["failures"].as_array().unwrap().len(),
        3,
        "nothing else failed"
    );

    for (name, bytes, built) in sizes {
        eprintln!(
            "{name}: {:.2} MB, built in {:.1} s",
            bytes as f64 / 1e6,
            built.as_secs_f64()
        );
    }
    eprintln!(
        "all three loaded: first {:.1} s (compiling), cached {:.2} s",
        first_load.as_secs_f64(),
        cached_load.as_secs_f64()
    );
}

/// With nothing installed (a clean HOME and cache folder, no
/// WEFT_COMPONENTIZE_*), the first `weft build` of a Python and of a
/// JavaScript project installs the pinned toolchain from the registries into
/// the cache folder; the next build uses it; `weft toolchain` lists and
/// removes it; without python3 the build says what to install.
#[test]
fn the_first_build_installs_its_toolchain_and_later_builds_reuse_it() {
    let home = tempfile::tempdir().unwrap();
    let weft = |args: &[&str], path: &str| {
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(args)
            .current_dir(home.path())
            .env("HOME", home.path())
            .env("PATH", path)
            .env_remove("XDG_CACHE_HOME")
            .env_remove("WEFT_CACHE_DIR")
            .env_remove("WEFT_COMPONENTIZE_PY")
            .env_remove("WEFT_COMPONENTIZE_JS")
            .output()
            .expect("weft runs")
    };
    let path = std::env::var("PATH").unwrap();
    let cache = home.path().join(".cache/weft/tools");
    for (project, lang, tool) in [
        ("hello-py", "python", "componentize-py 0.25.1"),
        ("hello-js", "js", "componentize-js 0.23.0"),
    ] {
        ok(weft(&["new", project, "--lang", lang], &path), "weft new");
        let first = weft(&["build", project], &path);
        let said = String::from_utf8_lossy(&first.stderr).into_owned();
        ok(first, "the first build");
        assert!(said.contains(&format!("installing {tool}")), "{said}");
        let began = Instant::now();
        let second = weft(&["build", project], &path);
        let said = String::from_utf8_lossy(&second.stderr).into_owned();
        ok(second, "the second build");
        assert!(!said.contains("installing"), "{said}");
        eprintln!("{project}: second build {:?}", began.elapsed());
        assert!(
            home.path()
                .join(project)
                .join("dist")
                .read_dir()
                .unwrap()
                .count()
                == 1
        );
    }
    let listed = ok(weft(&["toolchain", "list"], &path), "toolchain list");
    assert_eq!(
        listed.matches(&cache.display().to_string()).count(),
        2,
        "{listed}"
    );
    let removed = ok(
        weft(&["toolchain", "remove", "componentize-js"], &path),
        "remove",
    );
    assert!(removed.contains("componentize-js-0.23.0"), "{removed}");
    let listed = ok(weft(&["toolchain", "list"], &path), "toolchain list");
    assert!(
        listed.contains("componentize-js 0.23.0 (JavaScript): not installed"),
        "{listed}"
    );

    // No python3 on the PATH and no toolchain: the fix, named.
    ok(
        weft(&["toolchain", "remove", "componentize-py"], &path),
        "remove",
    );
    let out = weft(&["build", "hello-py"], "/nonexistent");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        said.contains("componentize-py 0.25.1 needs python3"),
        "{said}"
    );
    assert!(said.contains("install Python 3.11 or later"), "{said}");
}

/// The example provider's model, re-done here from its description: each
/// lower-cased word hashed (32-bit FNV-1a) into one of `dimensions`
/// buckets, signed by the hash's top bit, the vector scaled to length 1.
fn hash_words(text: &str, dimensions: usize) -> Vec<f64> {
    let mut v = vec![0.0; dimensions];
    let lower = text.to_lowercase();
    let words = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty());
    for word in words {
        let h = word.bytes().fold(0x811C_9DC5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        v[h as usize % dimensions] += if h >> 31 == 0 { 1.0 } else { -1.0 };
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `examples/provider-python` built by `weft build --world provider-plugin`
/// serves an embedding model that the standard AI tasks use like any other.
#[test]
fn a_python_provider_plugin_serves_an_embedding_model_to_the_standard_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = d.join("hash-words");
    std::fs::create_dir_all(&project).unwrap();
    for file in ["app.py", "provider.py"] {
        let example = PathBuf::from(ROOT)
            .join("examples/provider-python")
            .join(file);
        std::fs::copy(example, project.join(file)).unwrap();
    }
    let said = ok(
        weft(&project, &["build", "--world", "provider-plugin"]),
        "weft build",
    );
    assert!(said.contains("dist/hash-words.wasm"), "{said}");
    let plugins = d.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        project.join("dist/hash-words.wasm"),
        plugins.join("hash-words.wasm"),
    )
    .unwrap();
    let model = |id: &str, dimensions: i64| {
        format!(
            "[models.{id}]\nprovider = \"plugin:hash-words\"\nkind = \"embedding\"\n\
             model = \"hash-words\"\nsettings = {{ dimensions = {dimensions} }}\n"
        )
    };
    std::fs::write(
        d.join("weft.toml"),
        model("words", 32) + &model("broken", 0),
    )
    .unwrap();
    let listed = ok(
        weft(d, &["plugins", "--plugins", "plugins"]),
        "weft plugins",
    );
    assert!(
        listed.contains("hash-words (plugins/hash-words.wasm)")
            && listed.contains(": serves models (provider = \"plugin:hash-words\")"),
        "{listed}"
    );
    let texts = [
        "The cat sat on the mat",
        "Stock prices fell sharply today",
        "A cat sat down on a mat",
    ];
    let graph = json!({
        "tasks": [
            {"id": "embed", "type": "ai.text-embedding", "defaults": {"model": "words"}},
            {"id": "info", "type": "ai.model-info", "defaults": {"model": "words"}},
            {"id": "broken", "type": "ai.text-embedding",
             "defaults": {"model": "broken", "texts": ["x"]}}
        ],
        "dataflows": []
    });
    std::fs::write(d.join("graph.json"), graph.to_string()).unwrap();
    let input = json!({"texts": texts, "text": "Where did the cat sit?"}).to_string();
    let out = weft(
        d,
        &[
            "run",
            "graph.json",
            "--input",
            &input,
            "--json",
            "--plugins",
            "plugins",
        ],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    let outputs = &v["outputs"];
    assert_eq!(outputs["info"]["provider"], "plugin:hash-words", "{v}");
    assert_eq!(outputs["info"]["dimensions"], 32, "{v}");
    let vectors: Vec<Vec<f64>> =
        serde_json::from_value(outputs["embed"]["vectors"].clone()).unwrap();
    assert_eq!(vectors.len(), 4, "three texts and `text`");
    for (got, text) in vectors
        .iter()
        .zip(texts.iter().chain(["Where did the cat sit?"].iter()))
    {
        let expected = hash_words(text, 32);
        let off = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(off < 1e-6, "{text}: {got:?} vs {expected:?}");
    }
    // Texts sharing words are the closest.
    assert!(cosine(&vectors[0], &vectors[2]) > cosine(&vectors[0], &vectors[1]));
    // A bad setting fails only the node using that model, saying why.
    let failure = v["failures"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["node"] == "broken"))
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .contains("settings.dimensions must be an integer from 1 to 4096"),
        "{failure}"
    );

    // The Python and JavaScript SDKs call the same model: its token count
    // and description, and a call of another kind refused, naming both.
    for (name, lang, tasks) in [("pm", "python", PYTHON_MODELS), ("jm", "js", JS_MODELS)] {
        guest_granted(d, &plugins, (name, lang, tasks), r#"["words"]"#);
    }
    let defaults = json!({"model": "words", "text": "one two three four"});
    let graph = json!({"tasks": [
        {"id": "py", "type": "pm.model", "defaults": defaults},
        {"id": "js", "type": "jm.model", "defaults": defaults},
    ]});
    std::fs::write(d.join("models.json"), graph.to_string()).unwrap();
    let out = weft(d, &["run", "models.json", "--json", "--plugins", "plugins"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    for node in ["py", "js"] {
        let o = &v["outputs"][node];
        assert_eq!(o["tokens"], 4, "{node}: {v}");
        assert_eq!(o["provider"], "plugin:hash-words", "{node}: {v}");
        assert_eq!(o["kind"], "embedding", "{node}: {v}");
        assert_eq!(o["dimensions"], 32, "{node}: {v}");
        let refused = o["foreground"].as_str().unwrap_or_default();
        assert!(
            refused.contains("model `words` serves `embedding`, not `background-removal`"),
            "{node}: {refused}"
        );
        let refused = o["detect"].as_str().unwrap_or_default();
        assert!(
            refused.contains("model `words` serves `embedding`, not `face-detection`"),
            "{node}: {refused}"
        );
    }
}

/// A Python task over `models.generate_seeing`, `generate_json` and
/// `generate_image`, and a JSON schema that is not an object, refused.
const PYTHON_GENERATE: &str = r#"
from typing import Any, Dict, List


@dataclass
class Ask:
    model: str
    painter: str
    image: List[int]
    schema: Dict[str, Any]


@dataclass
class Answers:
    seen: str
    answer: Dict[str, Any]
    image_type: str
    image: List[int]
    refused: str


@task("pg.ask", cacheable=False)
def ask(input: Ask) -> Answers:
    """Asks about an image, for JSON, and for an image."""
    import json
    from weft_sdk import models, TaskError
    seen = models.generate_seeing(input.model, "What is in the picture?",
                                  [("image/png", bytes(input.image))])
    chat = [("system", "Answer in JSON."), ("user", "Who wrote the first program?")]
    answer = json.loads(models.generate_json(input.model, chat, input.schema, max_tokens=50))
    media_type, made = models.generate_image(input.painter, "a loom at dawn",
                                             aspect_ratio="16:9", quality="low")
    try:
        models.generate_json(input.model, "?", "[1]")
        refused = "not refused"
    except TaskError as e:
        refused = str(e)
    return Answers(seen, answer, media_type, list(made), refused)
"#;

/// The same in JavaScript.
const JS_GENERATE: &str = r#"
import { models as modelCalls } from "./weft-sdk.js";

defineTask(
  {
    id: "jg.ask",
    input: {
      type: "object",
      properties: {
        model: { type: "string" }, painter: { type: "string" },
        image: { type: "array", items: { type: "integer" } }, schema: { type: "object" },
      },
      required: ["model", "painter", "image", "schema"],
    },
    output: { type: "object" },
    cacheable: false,
  },
  (input) => {
    const png = { mediaType: "image/png", bytes: input.image };
    const seen = modelCalls.generateSeeing(input.model, "What is in the picture?", [png]);
    const chat = [
      { role: "system", content: "Answer in JSON." },
      { role: "user", content: "Who wrote the first program?" },
    ];
    const answer = modelCalls.generateJson(input.model, chat, input.schema, { maxTokens: 50 });
    const made = modelCalls.generateImage(input.painter, {
      prompt: "a loom at dawn", aspectRatio: "16:9", quality: "low",
    });
    let refused = "not refused";
    try {
      modelCalls.generateJson(input.model, "?", "[1]");
    } catch (e) {
      refused = String(e.message ?? e);
    }
    return {
      seen: seen.text,
      answer: JSON.parse(answer.text),
      image_type: made.mediaType,
      image: Array.from(made.bytes),
      refused,
    };
  },
);
"#;

/// A 1×1 PNG, red.
const RED_PIXEL: [u8; 70] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x56, 0xc7, 0x2f, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A 1×1 PNG, blue.
const BLUE_PIXEL: [u8; 70] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x60, 0x60, 0xf8, 0xff,
    0x1f, 0x00, 0x03, 0x02, 0x01, 0xff, 0x39, 0x29, 0x19, 0xbe, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Standard base64, padded.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Requests an OpenAI-compatible API was sent: (path, JSON body).
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// An OpenAI-compatible API on a free loopback port, on a thread of its
/// own, as far as the generate calls go: a chat completion (streamed)
/// answers JSON when asked for it and a description otherwise; an image
/// generation answers `BLUE_PIXEL`. Its base URL, and what it was sent.
fn openai_on_loopback() -> (String, Seen) {
    use axum::response::IntoResponse;
    let seen = Seen::default();
    let kept = seen.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: String| {
        let kept = kept.clone();
        async move {
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let path = uri.path().to_string();
            kept.lock().unwrap().push((path.clone(), body.clone()));
            if path == "/v1/images/generations" {
                return axum::Json(json!({"data": [{"b64_json": base64(&BLUE_PIXEL)}]}))
                    .into_response();
            }
            let text = match body.get("response_format") {
                Some(_) => r#"{"name": "Ada", "born": 1815}"#,
                None => "A red pixel.",
            };
            let chunk = json!({"choices": [{"delta": {"content": text}, "finish_reason": "stop"}]});
            (
                [("content-type", "text/event-stream")],
                format!("data: {chunk}\n\ndata: [DONE]\n\n"),
            )
                .into_response()
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (format!("http://{}/v1", rx.recv().unwrap()), seen)
}

/// The Python and JavaScript SDKs' `generate_seeing` / `generateSeeing`,
/// `generate_json` / `generateJson` and `generate_image` / `generateImage`
/// reach an OpenAI-compatible provider on loopback with what each call
/// means (the image with the prompt, the schema as `response_format`, the
/// aspect ratio and quality), and give back its answers; a schema that is
/// not an object is refused as an invalid request.
#[test]
fn python_and_javascript_tasks_see_answer_in_json_and_make_images_through_a_provider() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (base, seen) = openai_on_loopback();
    let model = |id: &str, kind: &str, name: &str| {
        format!(
            "[models.{id}]\nprovider = \"openai\"\nkind = \"{kind}\"\nmodel = \"{name}\"\n\
             base_url = \"{base}\"\nmax_retries = 0\n"
        )
    };
    std::fs::write(
        d.join("weft.toml"),
        model("chat", "generation", "gpt-4o-mini")
            + &model("painter", "image-generation", "gpt-image-1"),
    )
    .unwrap();
    let plugins = d.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for (name, lang, tasks) in [("pg", "python", PYTHON_GENERATE), ("jg", "js", JS_GENERATE)] {
        guest_granted(d, &plugins, (name, lang, tasks), r#"["chat", "painter"]"#);
    }
    let schema = json!({"type": "object", "required": ["name", "born"],
        "properties": {"name": {"type": "string"}, "born": {"type": "integer"}}});
    let defaults = json!({"model": "chat", "painter": "painter", "image": RED_PIXEL.to_vec(), "schema": schema});
    let graph = json!({"tasks": [
        {"id": "py", "type": "pg.ask", "defaults": defaults},
        {"id": "js", "type": "jg.ask", "defaults": defaults},
    ]});
    std::fs::write(d.join("ask.json"), graph.to_string()).unwrap();
    let out = weft(d, &["run", "ask.json", "--json", "--plugins", "plugins"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(v["status"], "succeeded", "{v}");
    for node in ["py", "js"] {
        let o = &v["outputs"][node];
        assert_eq!(o["seen"], "A red pixel.", "{node}: {v}");
        assert_eq!(o["answer"], json!({"name": "Ada", "born": 1815}), "{node}");
        assert_eq!(o["image_type"], "image/png", "{node}");
        assert_eq!(o["image"], json!(BLUE_PIXEL.to_vec()), "{node}");
        let refused = o["refused"].as_str().unwrap_or_default();
        assert!(
            refused.starts_with("invalid model request")
                && refused.contains("the schema is not a JSON object"),
            "{node}: {refused}"
        );
    }

    // What the provider was sent, twice each (once per language): no
    // request for the refused schema.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6, "{seen:?}");
    let chats: Vec<&Value> = seen
        .iter()
        .filter(|(path, _)| path == "/v1/chat/completions")
        .map(|(_, body)| body)
        .collect();
    let (json_asks, seeing): (Vec<&Value>, Vec<&Value>) = chats
        .into_iter()
        .partition(|b| b.get("response_format").is_some());
    assert_eq!((json_asks.len(), seeing.len()), (2, 2), "{seen:?}");
    let red = format!("data:image/png;base64,{}", base64(&RED_PIXEL));
    for body in seeing {
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "What is in the picture?"},
                {"type": "image_url", "image_url": {"url": red}}
            ]}]),
            "the image goes with the prompt"
        );
    }
    for body in json_asks {
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema",
                   "json_schema": {"name": "answer", "schema": schema, "strict": false}})
        );
        assert_eq!(
            body["messages"],
            json!([{"role": "system", "content": "Answer in JSON."},
                   {"role": "user", "content": "Who wrote the first program?"}])
        );
        assert_eq!(body["max_tokens"], 50);
    }
    let images: Vec<&Value> = seen
        .iter()
        .filter(|(path, _)| path == "/v1/images/generations")
        .map(|(_, body)| body)
        .collect();
    assert_eq!(images.len(), 2, "{seen:?}");
    for body in images {
        assert_eq!(
            *body,
            json!({"model": "gpt-image-1", "prompt": "a loom at dawn", "n": 1,
                   "size": "1536x1024", "quality": "low"}),
            "a 16:9 image of low quality"
        );
    }
}
