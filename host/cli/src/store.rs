//! `weft store`: compaction, backups and restores of the embedded store
//! (PostgreSQL has its own tools: docs/operations.md).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use weft::setup::StoreLocation;
use weft::store::RedbStore;

#[derive(Subcommand, Debug)]
pub enum StoreAction {
    /// Give back the space of deleted runs (the daemon stopped).
    Compact,
    /// Write a consistent copy of the store to a new file (the daemon
    /// stopped), or, with `--server`, have the running daemon write one into
    /// its backups folder (for operators).
    Backup {
        /// The file to write (must not exist).
        #[arg(required_unless_present = "server")]
        path: Option<PathBuf>,
        /// The running daemon to ask instead.
        #[arg(long, conflicts_with = "path")]
        server: Option<String>,
        /// Bearer token for the daemon.
        #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Put a backup in place of the store (the daemon stopped); the file
    /// replaced is kept as `weft.redb.before-restore`.
    Restore {
        /// The backup file.
        path: PathBuf,
    },
}

/// The embedded store's file, or why these commands do not apply.
fn redb_file(location: StoreLocation) -> anyhow::Result<PathBuf> {
    match location {
        StoreLocation::Redb(path) => Ok(path),
        StoreLocation::Postgres(_) => bail!(
            "the store is a PostgreSQL database: back it up with pg_dump and restore it with \
             pg_restore (docs/operations.md); PostgreSQL compacts itself (autovacuum)"
        ),
        _ => bail!("an in-memory store has nothing to keep"),
    }
}

pub async fn main(action: StoreAction, location: StoreLocation) -> anyhow::Result<ExitCode> {
    if let StoreAction::Backup {
        server: Some(server),
        token,
        ..
    } = action
    {
        return crate::client::backup(&crate::client::ServerArgs { server, token }).await;
    }
    let file = redb_file(location)?;
    let mut out = std::io::stdout();
    match action {
        StoreAction::Compact => {
            let (before, after) = RedbStore::compact_file(&file)?;
            writeln!(
                out,
                "{}: {} → {}",
                file.display(),
                size(before),
                size(after)
            )?;
        }
        StoreAction::Backup { path, .. } => {
            let path = path.unwrap_or_default();
            let store = RedbStore::open(&file).map_err(|e| in_use(e, &file))?;
            store.backup_to(&path).await?;
            writeln!(out, "{} → {}", file.display(), path.display())?;
        }
        StoreAction::Restore { path } => {
            RedbStore::restore_file(&path, &file)?;
            writeln!(out, "{} → {}", path.display(), file.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A store that does not open because a daemon holds it: say what to do.
fn in_use(e: weft::store::StoreError, file: &std::path::Path) -> anyhow::Error {
    if matches!(e, weft::store::StoreError::InUse { .. }) {
        anyhow::anyhow!(
            "{} is in use (a daemon serves it): ask it for a backup with \
             `weft store backup --server URL`, or set [backup] in weft.toml",
            file.display()
        )
    } else {
        e.into()
    }
}

fn size(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
