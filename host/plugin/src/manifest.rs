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
/// network = ["10.0.0.5:443"]  # addresses it may connect to (`*` for any IP or port)
///
/// [[grants.folders]]
/// host = "data"         # relative to the manifest's folder
/// guest = "/data"       # where the plugin sees it
/// writable = false      # default false
///
/// http = ["https://api.example.com"]  # origins it may send HTTP requests to
/// storage = ["shared-index"]   # further storage namespaces, read-only
///
/// [[grants.storage]]    # ... or read-write
/// name = "cache"
/// writable = true
///
/// [storage]             # the quota of each namespace this plugin writes
/// max_keys = 10000      # (defaults and ceilings: the host's)
/// max_bytes = 10485760
///
/// [config]              # the plugin's own settings (the `config` import)
/// greeting = "hello"
/// api_key = { env = "EXAMPLE_API_KEY" }   # a host environment variable
/// prompt = { file = "prompt.txt" }        # a file's text
/// token = { secret = "EXAMPLE_TOKEN" }    # the run's user's secret
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
    /// The quota of each storage namespace the plugin writes.
    #[serde(default)]
    pub storage: StorageQuota,
    /// The plugin's own settings, read through the `config` import.
    #[serde(default)]
    pub config: toml::Table,
    /// `config`, resolved when the manifest was read.
    #[serde(skip)]
    pub settings: crate::config::Settings,
}

/// The quota of a storage namespace, as a manifest asks it (the host's
/// defaults and ceilings apply).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageQuota {
    /// The most keys.
    pub max_keys: Option<u64>,
    /// The most bytes of keys and values.
    pub max_bytes: Option<u64>,
}

/// A storage namespace granted beyond the plugin's own.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StorageGrant {
    /// Read-only, by name.
    Read(String),
    /// By name, read-only unless `writable`.
    Named {
        /// The namespace.
        name: String,
        /// Whether the plugin may change it.
        #[serde(default)]
        writable: bool,
    },
}

impl StorageGrant {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        match self {
            StorageGrant::Read(name) | StorageGrant::Named { name, .. } => name,
        }
    }

    /// Whether the plugin may change it.
    pub fn writable(&self) -> bool {
        matches!(self, StorageGrant::Named { writable: true, .. })
    }
}

/// A storage namespace name: 1–128 of `[a-z0-9._-]`.
pub fn valid_namespace(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
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
    /// A provider plugin's instances kept alive at once, each serving one
    /// model call at a time (default 1).
    pub instances: Option<u32>,
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
    /// Where the plugin may connect (TCP) or send (UDP): `IP:PORT` or
    /// `NAME:PORT`, where the IP or the port may be `*` (`"*:443"`,
    /// `"10.0.0.5:*"`, `"api.example.com:443"`; IPv6 as `[::1]:80`). A
    /// plugin resolves only the host names granted here (the host resolves
    /// them; every other name is refused), and connects only to granted
    /// addresses or the addresses of granted names. It may never listen or
    /// accept connections.
    #[serde(default)]
    pub network: Vec<String>,
    /// Storage namespaces beyond the plugin's own (see [`StorageGrant`]).
    #[serde(default)]
    pub storage: Vec<StorageGrant>,
    /// Origins the plugin may send HTTP requests to through `wasi:http`
    /// (`https://api.example.com`, `http://127.0.0.1:8080`): scheme, host
    /// and port must match; the host resolves and connects.
    #[serde(default)]
    pub http: Vec<String>,
}

/// Where a network grant points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetTarget {
    /// Any address (`*`).
    Any,
    /// One IP address.
    Ip(std::net::IpAddr),
    /// A host name (lower case): the addresses it resolves to.
    Name(String),
}

/// One parsed network grant: an address pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetGrant {
    /// The address, addresses or name.
    pub target: NetTarget,
    /// The port, or any.
    pub port: Option<u16>,
}

impl NetGrant {
    /// Parse `IP:PORT` or `NAME:PORT` (the IP or the port may be `*`; IPv6
    /// in brackets).
    pub fn parse(text: &str) -> Result<NetGrant, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| "expected IP:PORT or NAME:PORT (IP and port may be `*`)".to_string())?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let target = match bare {
            "*" => NetTarget::Any,
            _ => match bare.parse() {
                Ok(ip) => NetTarget::Ip(ip),
                Err(_) if is_host_name(bare) => NetTarget::Name(bare.to_ascii_lowercase()),
                Err(_) => {
                    return Err(format!("`{host}` is not an IP address, a host name or `*`"));
                }
            },
        };
        let port = match port {
            "*" => None,
            p => Some(
                p.parse()
                    .map_err(|_| format!("`{p}` is not a port number or `*`"))?,
            ),
        };
        Ok(NetGrant { target, port })
    }

    /// Whether `addr` matches an address grant (names match through the
    /// addresses the host resolved them to, see [`NetGrant::name`]).
    pub fn allows(&self, addr: std::net::SocketAddr) -> bool {
        let ip_ok = match &self.target {
            NetTarget::Any => true,
            NetTarget::Ip(ip) => *ip == addr.ip(),
            NetTarget::Name(_) => false,
        };
        ip_ok && self.port.is_none_or(|p| p == addr.port())
    }

    /// The host name granted, if this grant is one.
    pub fn name(&self) -> Option<&str> {
        match &self.target {
            NetTarget::Name(n) => Some(n),
            _ => None,
        }
    }
}

/// `a.b-c.example`: letters, digits and hyphens in dot-separated labels of
/// 1 to 63 characters, 253 in all, not all digits (that would be an IP).
fn is_host_name(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && !s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
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
#[non_exhaustive]
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
    /// A network grant is not `IP:PORT`.
    #[error("manifest {path}: network grant `{grant}`: {message}")]
    BadNetworkGrant {
        /// The manifest file.
        path: PathBuf,
        /// The grant as written.
        grant: String,
        /// What is wrong.
        message: String,
    },
    /// An HTTP grant is not an origin.
    #[error("manifest {path}: http grant `{grant}`: {message}")]
    BadHttpGrant {
        /// The manifest file.
        path: PathBuf,
        /// The grant as written.
        grant: String,
        /// What is wrong.
        message: String,
    },
    /// A storage grant names no valid namespace.
    #[error("manifest {path}: storage namespace `{name}` must be 1–128 of [a-z0-9._-]")]
    BadNamespace {
        /// The manifest file.
        path: PathBuf,
        /// The name as written.
        name: String,
    },
    /// A `[config]` value that refers to something unusable.
    #[error("manifest {path}: [config] {key}: {message}")]
    BadConfig {
        /// The manifest file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
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
        for grant in &manifest.grants.network {
            NetGrant::parse(grant).map_err(|message| ManifestError::BadNetworkGrant {
                path: path.to_path_buf(),
                grant: grant.clone(),
                message,
            })?;
        }
        for grant in &manifest.grants.http {
            crate::http::HttpGrant::parse(grant).map_err(|message| {
                ManifestError::BadHttpGrant {
                    path: path.to_path_buf(),
                    grant: grant.clone(),
                    message,
                }
            })?;
        }
        for grant in &manifest.grants.storage {
            if !valid_namespace(grant.name()) {
                return Err(ManifestError::BadNamespace {
                    path: path.to_path_buf(),
                    name: grant.name().to_string(),
                });
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        manifest.settings = crate::config::Settings::resolve(&manifest.config, base).map_err(
            |(key, message)| ManifestError::BadConfig {
                path: path.to_path_buf(),
                key,
                message,
            },
        )?;
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
    fn network_grants_are_address_or_name_patterns() {
        let g = NetGrant::parse("127.0.0.1:8080").unwrap();
        assert!(g.allows("127.0.0.1:8080".parse().unwrap()));
        assert!(!g.allows("127.0.0.1:8081".parse().unwrap()));
        assert!(!g.allows("127.0.0.2:8080".parse().unwrap()));
        let any_ip = NetGrant::parse("*:443").unwrap();
        assert!(any_ip.allows("10.1.2.3:443".parse().unwrap()));
        assert!(!any_ip.allows("10.1.2.3:80".parse().unwrap()));
        let v6 = NetGrant::parse("[::1]:*").unwrap();
        assert!(v6.allows("[::1]:9".parse().unwrap()));
        let path = Path::new("p.toml");
        let named = NetGrant::parse("API.Example.com:443").unwrap();
        assert_eq!(named.name(), Some("api.example.com"));
        assert!(
            !named.allows("10.1.2.3:443".parse().unwrap()),
            "names match by lookup only"
        );
        for bad in ["exa mple.com:443", "-x.example:1", "a..b:1", "999.1.1.1:80"] {
            let text = format!("[grants]\nnetwork = [\"{bad}\"]\n");
            let err = Manifest::parse(&text, path).unwrap_err();
            assert!(
                err.to_string()
                    .contains("is not an IP address, a host name or `*`"),
                "{bad}: {err}"
            );
        }
        let err = Manifest::parse("[grants]\nnetwork = [\"10.0.0.1\"]\n", path).unwrap_err();
        assert!(err.to_string().contains("expected IP:PORT"), "{err}");
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
