//! `weft storage`: the key-value spaces plugins keep (their `storage`
//! import), read and cleaned up by the operator from the store itself:
//! namespaces with their use, keys by prefix, one value, a key removed.
//! Each user's spaces are apart: `--user` picks whose (default: runs
//! without an owner, as `weft run` makes).

use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use weft::store::RunStore;
use weft::store::key_values::{Delete, Space};

#[derive(Subcommand, Debug)]
pub enum StorageAction {
    /// Namespaces with their keys and bytes; with NAMESPACE, its keys
    /// (starting with PREFIX).
    Ls {
        /// A namespace, as listed (`plugin.NAME`, `shared.NAME`).
        namespace: Option<String>,
        /// Only keys that start with this.
        prefix: Option<String>,
        /// The most keys to list.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Print one value (as text; bytes that are not UTF-8 as hex).
    Get {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
    },
    /// Remove one key.
    Rm {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
    },
}

pub async fn main(
    store: &dyn RunStore,
    user: &str,
    action: StorageAction,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let now = weft::clock::now_ms();
    let mut out = std::io::stdout();
    match action {
        StorageAction::Ls {
            namespace: None, ..
        } => {
            let spaces = store.kv_spaces(user).await?;
            if json_out {
                let list: Vec<_> = spaces
                    .iter()
                    .map(|(ns, u)| serde_json::json!({"namespace": ns, "keys": u.keys, "bytes": u.bytes}))
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            }
            for (ns, usage) in spaces.iter().filter(|_| !json_out) {
                writeln!(out, "{ns}  {} keys  {} bytes", usage.keys, usage.bytes)?;
            }
        }
        StorageAction::Ls {
            namespace: Some(ns),
            prefix,
            limit,
        } => {
            let prefix = prefix.unwrap_or_default();
            let keys = store
                .kv_list(&Space::new(user, &ns), &prefix, None, limit, now)
                .await?;
            match json_out {
                true => writeln!(out, "{}", serde_json::to_string_pretty(&keys)?)?,
                false => keys.iter().try_for_each(|k| writeln!(out, "{k}"))?,
            }
        }
        StorageAction::Get { namespace, key } => {
            let space = Space::new(user, &namespace);
            let Some(entry) = store
                .kv_get(&space, std::slice::from_ref(&key), now)
                .await?
                .pop()
                .flatten()
            else {
                bail!("no key `{key}` in namespace `{namespace}` of user `{user}`");
            };
            match String::from_utf8(entry.value) {
                Ok(text) => writeln!(out, "{text}")?,
                Err(e) => writeln!(out, "{}", hex::encode(e.into_bytes()))?,
            }
        }
        StorageAction::Rm { namespace, key } => {
            let space = Space::new(user, &namespace);
            if store.kv_delete(&space, &[Delete::key(&key)], now).await? != [true] {
                bail!("no key `{key}` in namespace `{namespace}` of user `{user}`");
            }
            writeln!(out, "removed {key} from {namespace}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
