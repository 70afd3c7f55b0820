//! `weft new` and `weft build`: plugin projects in Rust, Python or JavaScript.
//! A new project carries its own copy of the WIT contract and of the SDK, so
//! it builds with nothing but the language's package registry.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

use crate::toolchain::{JAVASCRIPT, PYTHON, Toolchain};

const WIT: &str = include_str!("../../../wit/weft.wit");
const RUST_SDK: &str = include_str!("../../../sdk/rust/src/lib.rs");
const PYTHON_SDK: &str = include_str!("../../../sdk/python/weft_sdk/__init__.py");
const JS_SDK: &str = include_str!("../../../sdk/js/weft-sdk.js");
const README: &str = include_str!("../templates/README.md");

/// A plugin project's language.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Rust, with the `weft-sdk` crate (cargo, `wasm32-wasip2`).
    Rust,
    /// Python, with the `weft_sdk` package (componentize-py).
    Python,
    /// JavaScript, with `weft-sdk.js` (componentize-js).
    Js,
}

/// A world of `wit/weft.wit` that a plugin implements.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    /// Tasks: exports `task`.
    Plugin,
    /// A model backend: exports `provider`.
    ProviderPlugin,
}

impl World {
    fn wit_name(self) -> &'static str {
        match self {
            World::Plugin => "plugin",
            World::ProviderPlugin => "provider-plugin",
        }
    }
}

/// `weft new NAME --lang L [--dir DIR]`.
pub fn new(name: &str, lang: Lang, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || name.starts_with('-')
    {
        bail!(
            "plugin name `{name}` must use only a-z, 0-9 and `-` (it names the task ids and the .wasm)"
        );
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} already exists and is not empty", dir.display());
    }
    let fill = |t: &str| {
        let (lang_name, test) = match lang {
            Lang::Rust => ("rust", "Tests: `cargo test`."),
            Lang::Python => (
                "python",
                "Tests: `python3 -m unittest` (plain Python, no wasm).",
            ),
            Lang::Js => ("js", "Tests: `node test.mjs` (plain Node, no wasm)."),
        };
        t.replace("{{name}}", name)
            .replace("{{id}}", name)
            .replace("{{lang}}", lang_name)
            .replace("{{test}}", test)
    };
    let mut files: Vec<(&str, String)> = vec![
        ("wit/weft.wit", WIT.to_string()),
        ("README.md", fill(README)),
    ];
    match lang {
        Lang::Rust => {
            files.push((
                "Cargo.toml",
                fill(include_str!("../templates/rust/Cargo.toml")),
            ));
            files.push(("src/lib.rs", fill(include_str!("../templates/rust/lib.rs"))));
            files.push((
                "weft-sdk/src/lib.rs",
                RUST_SDK.replace("\"../../wit\"", "\"../wit\""),
            ));
            files.push((
                "weft-sdk/Cargo.toml",
                "[package]\nname = \"weft-sdk\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
                 [dependencies]\nwit-bindgen = \"=0.61.1\"\nschemars = \"1.2\"\n\
                 serde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\n"
                    .to_string(),
            ));
        }
        Lang::Python => {
            files.push(("app.py", fill(include_str!("../templates/python/app.py"))));
            files.push((
                "test_app.py",
                fill(include_str!("../templates/python/test_app.py")),
            ));
            files.push(("weft_sdk/__init__.py", PYTHON_SDK.to_string()));
        }
        Lang::Js => {
            files.push(("app.js", fill(include_str!("../templates/js/app.js"))));
            files.push(("test.mjs", fill(include_str!("../templates/js/test.mjs"))));
            files.push((
                "package.json",
                fill(include_str!("../templates/js/package.json")),
            ));
            files.push(("weft-sdk.js", JS_SDK.to_string()));
        }
    }
    files.push((
        ".gitignore",
        "/dist\n/target\n/node_modules\n__pycache__\n".into(),
    ));
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "created {} ({lang:?} plugin); next: cd {} && weft build",
        dir.display(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `weft build [DIR] [--world W]`: build the project in DIR into
/// `DIR/dist/NAME.wasm`.
pub fn build(dir: &Path, world: World) -> anyhow::Result<ExitCode> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("no project at {}", dir.display()))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let lang = if dir.join("Cargo.toml").is_file() {
        Lang::Rust
    } else if dir.join("app.py").is_file() {
        Lang::Python
    } else if dir.join("app.js").is_file() {
        Lang::Js
    } else {
        bail!(
            "{} is not a plugin project: no Cargo.toml, app.py or app.js (make one with `weft new`)",
            dir.display()
        );
    };
    let dist = dir.join("dist");
    std::fs::create_dir_all(&dist)?;
    let out = dist.join(format!("{name}.wasm"));
    // The project's own copy of the contract, refreshed from this weft.
    std::fs::create_dir_all(dir.join("wit"))?;
    std::fs::write(dir.join("wit/weft.wit"), WIT)?;
    match lang {
        Lang::Rust => {
            run(Command::new("cargo")
                .args(["build", "--release", "--target", "wasm32-wasip2"])
                .current_dir(&dir))?;
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| dir.join("target"));
            let built = target
                .join("wasm32-wasip2/release")
                .join(format!("{}.wasm", name.replace('-', "_")));
            std::fs::copy(&built, &out)
                .with_context(|| format!("cargo did not produce {}", built.display()))?;
        }
        Lang::Python => {
            let tool = tool_or_install(&PYTHON, &[])?;
            run(Command::new(tool)
                .args([
                    "-d",
                    "wit",
                    "-w",
                    world.wit_name(),
                    "componentize",
                    "app",
                    "-p",
                    ".",
                    "-o",
                ])
                .arg(&out)
                .current_dir(&dir))?;
        }
        Lang::Js => {
            let local = dir.join("node_modules/.bin/componentize-js");
            let tool = tool_or_install(&JAVASCRIPT, &[local])?;
            run(Command::new(tool)
                .args([
                    "app.js",
                    "--wit",
                    "wit",
                    "--world-name",
                    world.wit_name(),
                    "--disable",
                    "http",
                    "fetch-event",
                    "-o",
                ])
                .arg(&out)
                .current_dir(&dir))?;
        }
    }
    let size = std::fs::metadata(&out)?.len();
    println!("built {} ({:.1} MB)", out.display(), size as f64 / 1e6);
    Ok(ExitCode::SUCCESS)
}

/// A toolchain's command: `$VAR`, else the first of `candidates` that
/// exists, else its command on the PATH, else its copy in the cache folder.
pub(crate) fn find_tool(tool: &Toolchain, candidates: &[PathBuf]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(tool.var) {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Some(p.clone());
    }
    crate::doctor::on_path(tool.name).or_else(|| tool.installed())
}

/// [`find_tool`], else installed into the cache folder now.
fn tool_or_install(tool: &Toolchain, candidates: &[PathBuf]) -> anyhow::Result<PathBuf> {
    match find_tool(tool, candidates) {
        Some(path) => Ok(path),
        None => tool.install(),
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{:?} failed ({status})", command.get_program());
    }
    Ok(())
}
