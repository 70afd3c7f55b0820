//! Per-user secrets: values a user stores (`weft secrets set`, `PUT
//! /v1/secrets/{name}`) for the plugins they name, which read them through
//! the `config` import (`{ secret = "NAME" }` in the plugin's manifest).
//! Kept encrypted in the store's key-value space `weft.secrets` of the
//! user, with XChaCha20-Poly1305 under the operator's key (`[secrets]`), a
//! fresh random nonce per value and the user and name as associated data,
//! so a sealed value moved to another user or name does not open. Owns
//! sealing, opening and who may read; never logs a value. It must not know
//! how plugins are run.

use std::sync::Arc;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::store::key_values::{Delete, KvError, Quota, Space, Write};
use crate::store::{RunStore, StoreError};

/// The key-value namespace secrets are kept in (per user).
pub const NAMESPACE: &str = "weft.secrets";
/// The most secrets one user keeps.
pub const MAX_SECRETS: u64 = 100;
/// The largest secret, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 10;

/// Why a secret operation failed. Never holds a secret's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The operator's key is missing or malformed.
    #[error("secrets key: {0}")]
    Key(String),
    /// A secret or plugin name that is not one.
    #[error("{0}")]
    BadName(String),
    /// The value is too large.
    #[error("a secret of {size} bytes; at most {MAX_VALUE_BYTES}")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// The user has as many secrets as they may.
    #[error("{MAX_SECRETS} secrets already: delete one first")]
    Full,
    /// A stored secret does not open (another key, or changed).
    #[error("secret `{0}` does not open with this key (was the secrets key changed?)")]
    Sealed(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The operator's key: 32 bytes, written as 64 hex digits.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

impl SecretKey {
    /// Parse 64 hex digits (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let bytes = hex::decode(text.trim()).map_err(|_| {
            SecretError::Key("not hex: write 64 hex digits (`openssl rand -hex 32`)".into())
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            SecretError::Key("not 32 bytes: write 64 hex digits (`openssl rand -hex 32`)".into())
        })?;
        Ok(SecretKey(key))
    }
}

/// A secret as stored: who may read it, and its sealed value.
#[derive(Serialize, Deserialize)]
struct Sealed {
    plugins: Vec<String>,
    nonce: String,
    sealed: String,
    updated_ms: u64,
}

/// What a user sees of one of their secrets: never its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretInfo {
    /// Its name.
    pub name: String,
    /// The plugins that may read it.
    pub plugins: Vec<String>,
    /// When it was last set, ms since the Unix epoch.
    pub updated_ms: u64,
}

/// A secret's name, or a plugin's: 1–128 of `[A-Za-z0-9._-]`.
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Users' secrets, sealed in a store.
pub struct SecretStore {
    cipher: XChaCha20Poly1305,
    store: Arc<dyn RunStore>,
    clock: Arc<dyn Clock>,
}

fn space(user: &str) -> Space {
    Space::new(user, NAMESPACE)
}

fn aad(user: &str, name: &str) -> String {
    format!("weft-secret\0{user}\0{name}")
}

impl SecretStore {
    /// Secrets sealed with `key`, kept in `store`.
    pub fn new(key: &SecretKey, store: Arc<dyn RunStore>, clock: Arc<dyn Clock>) -> Self {
        SecretStore {
            cipher: XChaCha20Poly1305::new(&key.0.into()),
            store,
            clock,
        }
    }

    /// Set `user`'s secret `name` to `value`, readable by `plugins`.
    pub async fn set(
        &self,
        user: &str,
        name: &str,
        value: &str,
        plugins: Vec<String>,
    ) -> Result<(), SecretError> {
        if !valid_name(name) {
            return Err(SecretError::BadName(format!(
                "secret name `{name}`: 1–128 of [A-Za-z0-9._-]"
            )));
        }
        if let Some(bad) = plugins.iter().find(|p| !valid_name(p)) {
            return Err(SecretError::BadName(format!("plugin name `{bad}`")));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(SecretError::TooLarge { size: value.len() });
        }
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = aad(user, name);
        let payload = Payload {
            msg: value.as_bytes(),
            aad: aad.as_bytes(),
        };
        let sealed = self
            .cipher
            .encrypt(&nonce, payload)
            .map_err(|_| SecretError::Key("sealing failed".into()))?;
        let record = Sealed {
            plugins,
            nonce: hex::encode(nonce),
            sealed: hex::encode(sealed),
            updated_ms: self.clock.now_ms(),
        };
        let write = Write {
            key: name.to_string(),
            value: serde_json::to_vec(&record).unwrap_or_default(),
            if_version: None,
            expires_ms: None,
            vector: None,
        };
        let quota = Quota {
            max_keys: MAX_SECRETS,
            max_bytes: MAX_SECRETS * (3 * MAX_VALUE_BYTES as u64),
        };
        let now = self.clock.now_ms();
        match self.store.kv_set(&space(user), &[write], quota, now).await {
            Ok(_) => Ok(()),
            Err(KvError::Quota { .. }) => Err(SecretError::Full),
            Err(KvError::Store(e)) => Err(e.into()),
            Err(e) => Err(SecretError::Store(StoreError::backend(e.to_string()))),
        }
    }

    /// `user`'s secrets, by name.
    pub async fn list(&self, user: &str) -> Result<Vec<SecretInfo>, SecretError> {
        let now = self.clock.now_ms();
        let names = self
            .store
            .kv_list(&space(user), "", None, MAX_SECRETS as usize, now)
            .await?;
        let found = self.store.kv_get(&space(user), &names, now).await?;
        let mut out = Vec::new();
        for (name, entry) in names.into_iter().zip(found) {
            let Some(entry) = entry else { continue };
            let record = decode(&name, &entry.value)?;
            out.push(SecretInfo {
                name,
                plugins: record.plugins,
                updated_ms: record.updated_ms,
            });
        }
        Ok(out)
    }

    /// Delete `user`'s secret `name`: whether there was one.
    pub async fn delete(&self, user: &str, name: &str) -> Result<bool, SecretError> {
        let now = self.clock.now_ms();
        match self
            .store
            .kv_delete(&space(user), &[Delete::key(name)], now)
            .await
        {
            Ok(gone) => Ok(gone == [true]),
            Err(KvError::Store(e)) => Err(e.into()),
            Err(e) => Err(SecretError::Store(StoreError::backend(e.to_string()))),
        }
    }

    /// `user`'s secret `name`, if it exists and `plugin` may read it.
    pub async fn reveal_to(
        &self,
        user: &str,
        name: &str,
        plugin: &str,
    ) -> Result<Option<String>, SecretError> {
        let now = self.clock.now_ms();
        let found = self
            .store
            .kv_get(&space(user), &[name.to_string()], now)
            .await?
            .pop()
            .flatten();
        let Some(entry) = found else { return Ok(None) };
        let record = decode(name, &entry.value)?;
        if !record.plugins.iter().any(|p| p == plugin) {
            return Ok(None);
        }
        let sealed_err = || SecretError::Sealed(name.to_string());
        let nonce = hex::decode(&record.nonce).map_err(|_| sealed_err())?;
        let sealed = hex::decode(&record.sealed).map_err(|_| sealed_err())?;
        if nonce.len() != 24 {
            return Err(sealed_err());
        }
        let aad = aad(user, name);
        let payload = Payload {
            msg: &sealed,
            aad: aad.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|_| sealed_err())?;
        String::from_utf8(plain).map(Some).map_err(|_| sealed_err())
    }
}

fn decode(name: &str, bytes: &[u8]) -> Result<Sealed, SecretError> {
    serde_json::from_slice(bytes).map_err(|_| SecretError::Sealed(name.to_string()))
}

#[async_trait::async_trait]
impl crate::plugin::config::Secrets for SecretStore {
    async fn reveal(&self, user: &str, name: &str, plugin: &str) -> Result<Option<String>, String> {
        match self.reveal_to(user, name, plugin).await {
            Ok(found) => Ok(found),
            Err(e) => {
                tracing::warn!(user, secret = name, plugin, error = %e, "a secret could not be read");
                Err(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn secrets(store: Arc<dyn RunStore>, key: &str) -> SecretStore {
        SecretStore::new(
            &SecretKey::parse(key).unwrap(),
            store,
            crate::clock::system(),
        )
    }

    #[tokio::test]
    async fn sealed_for_one_user_and_name_and_the_plugins_given() {
        let store: Arc<dyn RunStore> = Arc::new(MemoryStore::new());
        let s = secrets(store.clone(), KEY);
        s.set("ann", "TOKEN", "s3cr3t-value", vec!["openai".into()])
            .await
            .unwrap();
        assert_eq!(
            s.reveal_to("ann", "TOKEN", "openai")
                .await
                .unwrap()
                .as_deref(),
            Some("s3cr3t-value")
        );
        assert_eq!(s.reveal_to("ann", "TOKEN", "other").await.unwrap(), None);
        assert_eq!(s.reveal_to("bob", "TOKEN", "openai").await.unwrap(), None);
        // At rest, no trace of the value.
        let raw = store
            .kv_get(&space("ann"), &["TOKEN".into()], 0)
            .await
            .unwrap()
            .pop()
            .flatten()
            .unwrap();
        assert!(!String::from_utf8_lossy(&raw.value).contains("s3cr3t"));
        // Moved to another user, it does not open.
        let moved = Write {
            key: "TOKEN".into(),
            value: raw.value,
            if_version: None,
            expires_ms: None,
            vector: None,
        };
        let roomy = Quota {
            max_keys: 10,
            max_bytes: 1 << 20,
        };
        store
            .kv_set(&space("bob"), &[moved], roomy, 0)
            .await
            .unwrap();
        assert!(matches!(
            s.reveal_to("bob", "TOKEN", "openai").await,
            Err(SecretError::Sealed(_))
        ));
        // Another key does not open it either.
        let other = secrets(store.clone(), &KEY.replace('0', "f"));
        assert!(matches!(
            other.reveal_to("ann", "TOKEN", "openai").await,
            Err(SecretError::Sealed(_))
        ));
        let listed = s.list("ann").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].plugins, ["openai"]);
        assert!(s.delete("ann", "TOKEN").await.unwrap());
        assert!(s.list("ann").await.unwrap().is_empty());
    }

    #[test]
    fn keys_are_64_hex_digits() {
        assert!(SecretKey::parse(KEY).is_ok());
        assert!(matches!(SecretKey::parse("abc"), Err(SecretError::Key(_))));
        assert!(matches!(
            SecretKey::parse(&"zz".repeat(32)),
            Err(SecretError::Key(_))
        ));
        assert_eq!(
            format!("{:?}", SecretKey::parse(KEY).unwrap()),
            "SecretKey(…)"
        );
    }
}
