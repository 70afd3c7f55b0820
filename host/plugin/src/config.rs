//! The `config` import: a plugin's `[config]` table, each value given to
//! the plugin as one JSON document. A value may refer to a host environment
//! variable or a file (read when the manifest is read: the operator who
//! installs the manifest names them) or to a secret of the run's user,
//! fetched at each call from a [`Secrets`] source and given only when that
//! user granted it to this plugin. Owns resolving and serving the values; it
//! must not know how secrets are kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

/// One `[config]` value.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    /// A value known when the plugin loads (written, or read from the
    /// environment or a file).
    Value(Value),
    /// The run's user's secret of this name.
    Secret(String),
}

/// A plugin's `[config]`, resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings(pub BTreeMap<String, Setting>);

/// The longest file a `{ file = … }` value reads.
const MAX_FILE_BYTES: u64 = 1 << 20;

impl Settings {
    /// Resolve `table` (a manifest's `[config]`; files relative to `base`).
    /// A table of exactly one key `env`, `file` or `secret` is a reference.
    pub fn resolve(table: &toml::Table, base: &Path) -> Result<Self, (String, String)> {
        let mut out = BTreeMap::new();
        for (key, value) in table {
            let bad = |message: String| (key.clone(), message);
            let setting = match reference(value) {
                Some(("env", name)) => match std::env::var(name) {
                    Ok(v) => Setting::Value(Value::String(v)),
                    Err(_) => return Err(bad(format!("environment variable `{name}` is not set"))),
                },
                Some(("file", file)) => {
                    Setting::Value(Value::String(read(&base.join(file)).map_err(bad)?))
                }
                Some((_, name)) => Setting::Secret(name.to_string()),
                None => {
                    Setting::Value(serde_json::to_value(value).map_err(|e| bad(e.to_string()))?)
                }
            };
            out.insert(key.clone(), setting);
        }
        Ok(Settings(out))
    }

    /// The keys set.
    pub fn keys(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

/// `{ env = "X" }`, `{ file = "x" }` or `{ secret = "X" }`: the kind and name.
fn reference(value: &toml::Value) -> Option<(&'static str, &str)> {
    let table = value.as_table().filter(|t| t.len() == 1)?;
    let (kind, name) = table.iter().next()?;
    let kind = ["env", "file", "secret"].into_iter().find(|k| k == kind)?;
    Some((kind, name.as_str()?))
}

fn read(path: &Path) -> Result<String, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!("{} is over {MAX_FILE_BYTES} bytes", path.display()));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Where users' secrets come from.
#[async_trait::async_trait]
pub trait Secrets: Send + Sync {
    /// User `user`'s secret `name`, if they stored it and granted it to
    /// plugin `plugin`; `Err` when it cannot be read now.
    async fn reveal(&self, user: &str, name: &str, plugin: &str) -> Result<Option<String>, String>;
}

/// What one task run's `config` import serves.
#[derive(Clone)]
pub(crate) struct ConfigAccess {
    pub settings: Arc<Settings>,
    pub secrets: Option<Arc<dyn Secrets>>,
    pub plugin: String,
    /// The run's user (empty: none).
    pub user: String,
}

use crate::instance::weft::plugin::config as wit;

impl ConfigAccess {
    pub(crate) async fn get(&self, key: &str) -> Result<Option<String>, wit::ConfigError> {
        let name = match self.settings.0.get(key) {
            None => return Ok(None),
            Some(Setting::Value(v)) => return Ok(Some(v.to_string())),
            Some(Setting::Secret(name)) => name,
        };
        let refused = || {
            wit::ConfigError::NotGranted(format!(
                "secret `{name}` (config key `{key}`): the run's user has not stored it or not granted it to plugin `{}`",
                self.plugin
            ))
        };
        let (Some(secrets), false) = (&self.secrets, self.user.is_empty()) else {
            return Err(refused());
        };
        match secrets.reveal(&self.user, name, &self.plugin).await {
            Ok(Some(value)) => Ok(Some(Value::String(value).to_string())),
            Ok(None) => Err(refused()),
            Err(e) => Err(wit::ConfigError::Unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_references_and_their_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prompt.txt"), "Be brief.").unwrap();
        let table: toml::Table = toml::from_str(
            "n = 3\nlist = [1, 2]\nfile = { file = \"prompt.txt\" }\ntoken = { secret = \"T\" }\n\
             nested = { a = 1, b = 2 }\nhome = { env = \"PATH\" }\n",
        )
        .unwrap();
        let s = Settings::resolve(&table, dir.path()).unwrap();
        assert_eq!(s.0["n"], Setting::Value(serde_json::json!(3)));
        assert_eq!(s.0["list"], Setting::Value(serde_json::json!([1, 2])));
        assert_eq!(s.0["file"], Setting::Value(serde_json::json!("Be brief.")));
        assert_eq!(s.0["token"], Setting::Secret("T".into()));
        assert_eq!(
            s.0["nested"],
            Setting::Value(serde_json::json!({"a": 1, "b": 2}))
        );
        assert!(matches!(&s.0["home"], Setting::Value(Value::String(_))));
        let missing: toml::Table =
            toml::from_str("k = { env = \"WEFT_NO_SUCH_VAR_X\" }\n").unwrap();
        let (key, why) = Settings::resolve(&missing, dir.path()).unwrap_err();
        assert_eq!(key, "k");
        assert!(why.contains("`WEFT_NO_SUCH_VAR_X` is not set"), "{why}");
        let gone: toml::Table = toml::from_str("k = { file = \"nope.txt\" }\n").unwrap();
        assert!(
            Settings::resolve(&gone, dir.path())
                .unwrap_err()
                .1
                .contains("cannot read")
        );
    }
}
