//! Downloading model files (the seeds' DownloadModel): into the model's
//! folder, resuming an interrupted download (HTTP Range on a `.part` file),
//! checking the SHA-256 before the file is renamed into place.
//!
//! What a hostile or broken server cannot do: send more than the file's
//! `max_bytes` (the download is cut off and the partial file removed), lead
//! the client to a non-HTTP scheme or from HTTPS down to HTTP, or receive
//! credentials on a redirect to another host (reqwest drops them; the
//! redirect policy below keeps the rest). Names from the configuration are
//! plain names, so nothing is written outside the models folder, and one
//! download per file runs at a time, across processes (a lock file).

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::{ModelFile, plain_name};

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
    /// The file is larger than it may be.
    #[error("{url} is larger than its max_bytes ({max} bytes); the partial download was removed")]
    TooLarge {
        /// The file's URL.
        url: String,
        /// The limit.
        max: u64,
    },
    /// A model or file name is not a plain name.
    #[error(
        "`{0}` is not a plain file name (letters, digits, `.`, `-`, `_`; not starting with `.`)"
    )]
    BadName(String),
    /// Another download of the same file is running (here or in another
    /// process).
    #[error("{path} is being downloaded by another task or process; try again when it is done")]
    Busy {
        /// The file.
        path: PathBuf,
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

/// The default `max_bytes` of a model file: 16 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 16 << 30;

/// The HTTP client for downloads: at most 10 redirects, never to another
/// scheme than http(s) nor from https down to http.
fn client() -> Result<reqwest::Client, reqwest::Error> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let from_https = attempt
            .previous()
            .last()
            .is_some_and(|u| u.scheme() == "https");
        match attempt.url().scheme() {
            _ if attempt.previous().len() >= 10 => attempt.error("more than 10 redirects"),
            "https" => attempt.follow(),
            "http" if !from_https => attempt.follow(),
            "http" => attempt.error("a redirect from https down to http"),
            other => {
                let message = format!("a redirect to a `{other}:` URL");
                attempt.error(message)
            }
        }
    });
    reqwest::Client::builder().redirect(policy).build()
}

/// The lock of `file`'s download in `dir`: one download (or removal) of a
/// file at a time, across processes; released when dropped (or the process
/// ends).
fn lock(file: &ModelFile, dir: &Path) -> Result<std::fs::File, DownloadError> {
    let lock_path = lock_path(file, dir);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(DownloadError::Busy {
            path: dir.join(&file.name),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(&lock_path)(e)),
    }
}

fn lock_path(file: &ModelFile, dir: &Path) -> PathBuf {
    dir.join(format!(".{}.lock", file.name))
}

/// Delete `file` from `dir` (and a partial download of it), unless it is
/// being downloaded: the paths of the files deleted.
pub fn remove(file: &ModelFile, dir: &Path) -> Result<Vec<PathBuf>, DownloadError> {
    if !plain_name(&file.name) {
        return Err(DownloadError::BadName(file.name.clone()));
    }
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let _lock = lock(file, dir)?;
    let mut removed = Vec::new();
    for path in [
        dir.join(&file.name),
        dir.join(format!("{}.part", file.name)),
    ] {
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    let _ = std::fs::remove_file(lock_path(file, dir));
    Ok(removed)
}

/// Download `file` into `dir`, reporting (bytes so far, total if known) to
/// `progress`.
pub async fn pull(
    file: &ModelFile,
    dir: &Path,
    progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
) -> Result<Pulled, DownloadError> {
    if !plain_name(&file.name) {
        return Err(DownloadError::BadName(file.name.clone()));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let target = dir.join(&file.name);
    let _lock = lock(file, dir)?;
    let max = file.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
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
    let mut request = client().map_err(http)?.get(&file.url);
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
    let too_large = || DownloadError::TooLarge {
        url: file.url.clone(),
        max,
    };
    if total.is_some_and(|t| t > max) {
        let _ = std::fs::remove_file(&part);
        return Err(too_large());
    }
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
        done += chunk.len() as u64;
        if done > max {
            drop(out);
            let _ = std::fs::remove_file(&part);
            return Err(too_large());
        }
        out.write_all(&chunk).map_err(io(&part))?;
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
