//! Downloading model files (the seeds' DownloadModel): into the model's
//! folder, resuming an interrupted download (HTTP Range on a `.part` file),
//! checking the SHA-256 before the file is renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::ModelFile;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The server refused or could not be reached.
    #[error("cannot download {url}: {message}")]
    Http {
        /// The file's URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The transfer broke off; what arrived is kept for the next attempt.
    #[error("download of {url} interrupted (run again to resume): {message}")]
    Interrupted {
        /// The file's URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The file arrived but is not the expected one; it was removed.
    #[error("{name}: SHA-256 is {found}, expected {expected}; the download was removed")]
    Checksum {
        /// The file's name.
        name: String,
        /// What it hashed to.
        found: String,
        /// What the configuration says.
        expected: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What [`pull`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pulled {
    /// The file was there with the right checksum.
    AlreadyThere,
    /// It was downloaded (continuing an earlier attempt when `resumed`).
    Downloaded {
        /// Whether an interrupted download was continued.
        resumed: bool,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Download `file` into `dir`, reporting (bytes so far, total if known) to
/// `progress`.
pub async fn pull(
    file: &ModelFile,
    dir: &Path,
    progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
) -> Result<Pulled, DownloadError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let target = dir.join(&file.name);
    let expected = file.sha256.to_lowercase();
    if target.is_file() && sha256_of(&target)? == expected {
        return Ok(Pulled::AlreadyThere);
    }
    let part = dir.join(format!("{}.part", file.name));
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let http = |e: reqwest::Error| DownloadError::Http {
        url: file.url.clone(),
        message: e.to_string(),
    };
    let mut request = reqwest::Client::new().get(&file.url);
    if have > 0 {
        request = request.header("range", format!("bytes={have}-"));
    }
    let response = request.send().await.map_err(http)?;
    let status = response.status();
    if !status.is_success() {
        return Err(DownloadError::Http {
            url: file.url.clone(),
            message: format!("HTTP {status}"),
        });
    }
    let resumed = status == reqwest::StatusCode::PARTIAL_CONTENT;
    let mut done = if resumed { have } else { 0 };
    let total = response.content_length().map(|n| n + done);
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&part)
        .map_err(io(&part))?;
    progress(done, total);
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| DownloadError::Interrupted {
            url: file.url.clone(),
            message: e.to_string(),
        })?;
        out.write_all(&chunk).map_err(io(&part))?;
        done += chunk.len() as u64;
        progress(done, total);
    }
    out.sync_all().map_err(io(&part))?;
    let found = sha256_of(&part)?;
    if found != expected {
        std::fs::remove_file(&part).map_err(io(&part))?;
        return Err(DownloadError::Checksum {
            name: file.name.clone(),
            found,
            expected: file.sha256.clone(),
        });
    }
    std::fs::rename(&part, &target).map_err(io(&target))?;
    Ok(Pulled::Downloaded { resumed })
}

fn sha256_of(path: &Path) -> Result<String, DownloadError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher).map_err(io(path))?;
    Ok(hex::encode(hasher.finalize()))
}
