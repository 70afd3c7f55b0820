//! The plugin manifest: `NAME.toml` beside `NAME.wasm`, saying what the plugin
//! may touch (grants) and how much it may use (limits).
//!
//! Owns parsing and checking the manifest. Defaults are the sandbox's: no
//! folders, no environment variables, no network.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A plugin's manifest. Every field is optional.
///
/// ```toml
/// [limits]
/// memory_mib = 128      # linear memory per task run (default 64)
/// timeout_ms = 60000    # wall-clock limit per task run (default 300000)
/// fuel = 1000000000     # wasm fuel (about one unit per instruction) per task run (default: unlimited)
///
/// [grants]
/// env = ["LANG"]        # host environment variables the plugin may read
///
/// [[grants.folders]]
/// host = "data"         # relative to the manifest's folder
/// guest = "/data"       # where the plugin sees it
/// writable = false      # default false
///
/// [config]              # free-form settings for the plugin itself
/// greeting = "hello"
/// ```
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Resource limits.
    #[serde(default)]
    pub limits: Limits,
    /// Capabilities beyond the empty sandbox.
    #[serde(default)]
    pub grants: Grants,
    /// The plugin's own settings (reserved; exposed through the `storage`
    /// interface in a later contract version).
    #[serde(default)]
    pub config: toml::Table,
}

/// Resource limits of one task run.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory, in MiB (default: the host's, 64).
    pub memory_mib: Option<u64>,
    /// Wall-clock time per run, in milliseconds (default: the host's, 300000).
    pub timeout_ms: Option<u64>,
    /// Fuel per run: wasmtime counts about one unit per wasm instruction, so
    /// this bounds the work of a run whatever the machine's speed (default:
    /// the host's, unlimited).
    pub fuel: Option<u64>,
}

/// What the plugin may reach outside its sandbox.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Host folders mounted into the plugin's filesystem.
    #[serde(default)]
    pub folders: Vec<FolderGrant>,
    /// Names of host environment variables the plugin may read (with the
    /// host's values at load time).
    #[serde(default)]
    pub env: Vec<String>,
    /// Ids of the host's models (`[models.ID]`) the plugin may call through the
    /// `models` import; `"*"` grants every configured model.
    #[serde(default)]
    pub models: Vec<String>,
}

/// A host folder visible to the plugin.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FolderGrant {
    /// The host folder, absolute or relative to the manifest's folder.
    pub host: PathBuf,
    /// The path the plugin sees (absolute, e.g. `/data`).
    pub guest: String,
    /// Whether the plugin may create, change and delete files in it.
    #[serde(default)]
    pub writable: bool,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Reading the file failed.
    #[error("cannot read manifest {path}: {source}")]
    Read {
        /// The manifest file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys.
    #[error("manifest {path} is invalid: {message}")]
    Parse {
        /// The manifest file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A granted folder does not exist or is not a folder.
    #[error("manifest {path}: granted folder {folder} is not a folder on this host")]
    MissingFolder {
        /// The manifest file.
        path: PathBuf,
        /// The folder as resolved.
        folder: PathBuf,
    },
    /// A guest path is not absolute.
    #[error("manifest {path}: guest path `{guest}` must be absolute (start with `/`)")]
    RelativeGuestPath {
        /// The manifest file.
        path: PathBuf,
        /// The offending guest path.
        guest: String,
    },
}

impl Manifest {
    /// Read the manifest for the component at `wasm` (`x.wasm` → `x.toml`), or
    /// the default (empty) manifest when there is none. Relative folder grants
    /// are resolved against the manifest's folder.
    pub fn for_component(wasm: &Path) -> Result<Self, ManifestError> {
        let path = wasm.with_extension("toml");
        if !path.exists() {
            return Ok(Manifest::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)
    }

    /// Parse manifest text read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let mut manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for folder in &mut manifest.grants.folders {
            if !folder.guest.starts_with('/') {
                return Err(ManifestError::RelativeGuestPath {
                    path: path.to_path_buf(),
                    guest: folder.guest.clone(),
                });
            }
            if folder.host.is_relative() {
                folder.host = base.join(&folder.host);
            }
            if !folder.host.is_dir() {
                return Err(ManifestError::MissingFolder {
                    path: path.to_path_buf(),
                    folder: folder.host.clone(),
                });
            }
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_manifest_means_empty_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest::for_component(&dir.path().join("p.wasm")).unwrap();
        assert_eq!(m, Manifest::default());
        assert!(m.grants.folders.is_empty() && m.grants.env.is_empty());
    }

    #[test]
    fn resolves_relative_folders_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let path = dir.path().join("p.toml");
        let m = Manifest::parse(
            "[limits]\nmemory_mib = 8\n[[grants.folders]]\nhost = \"data\"\nguest = \"/data\"\n",
            &path,
        )
        .unwrap();
        assert_eq!(m.limits.memory_mib, Some(8));
        assert_eq!(m.grants.folders[0].host, dir.path().join("data"));

        let err = Manifest::parse("[limits]\nmemory = 8\n", &path).unwrap_err();
        assert!(err.to_string().contains("unknown field `memory`"), "{err}");
        let err = Manifest::parse(
            "[[grants.folders]]\nhost = \"nope\"\nguest = \"/x\"\n",
            &path,
        )
        .unwrap_err();
        assert!(matches!(err, ManifestError::MissingFolder { .. }), "{err}");
    }
}
