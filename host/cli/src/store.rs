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
    /// Write a consistent copy of the store to a new file.
    Backup {
        /// The file to write (must not exist).
        path: PathBuf,
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
    let file = redb_file(location)?;
    let mut out = std::io::stdout().lock();
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
        StoreAction::Backup { path } => {
            let store = RedbStore::open(&file)?;
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

fn size(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
