//! Copies and compaction of the embedded store's file.
//!
//! A backup is a consistent copy made from one read transaction (a
//! snapshot: writers go on meanwhile), table by table, into a new file
//! that appears under its name only when complete. Compaction and
//! restoring replace or rewrite the file, so they need it closed: the
//! daemon stopped.

use std::path::Path;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::*;

/// Copy every entry of table `def`.
fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    let source = from.open_table(def).map_err(backend)?;
    let mut target = to.open_table(def).map_err(backend)?;
    for item in source.iter().map_err(backend)? {
        let (k, v) = item.map_err(backend)?;
        target.insert(k.value(), v.value()).map_err(backend)?;
    }
    Ok(())
}

fn copy_all(from: &ReadTransaction, to: &WriteTransaction) -> Result<(), StoreError> {
    macro_rules! copy_table {
        ($table:expr) => {
            copy(from, to, $table)?;
        };
    }
    every_table!(copy_table);
    Ok(())
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::context(what, e)
}

impl RedbStore {
    /// Write a consistent copy of the store to `dest` (a new file) while
    /// it is in use: what was committed when the copy began.
    pub async fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        if dest.exists() {
            return Err(StoreError::context(
                format!(
                    "{} exists: a backup is written to a new file",
                    dest.display()
                ),
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        let dest = dest.to_path_buf();
        self.blocking(move |db| {
            let tmp = dest.with_extension(format!("partial-{}", std::process::id()));
            let result = (|| {
                let snapshot = db.begin_read().map_err(backend)?;
                let copy = Database::create(&tmp).map_err(|e| {
                    StoreError::context(format!("cannot create {}", tmp.display()), e)
                })?;
                let tx = copy.begin_write().map_err(backend)?;
                copy_all(&snapshot, &tx)?;
                tx.commit().map_err(backend)?;
                drop(copy);
                std::fs::rename(&tmp, &dest).map_err(io(format!("cannot write {}", dest.display())))
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        })
        .await
    }

    /// Compact the store file at `path` (closed: the daemon stopped), giving
    /// back the space of deleted runs; its size before and after, in bytes.
    pub fn compact_file(path: &Path) -> Result<(u64, u64), StoreError> {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len());
        let before = size(path).map_err(io(format!("cannot read {}", path.display())))?;
        // Opened (and closed) once as a store: the format is checked.
        drop(RedbStore::open(path)?);
        let mut db = Database::builder()
            .create(path)
            .map_err(|e| StoreError::context(format!("cannot open {}", path.display()), e))?;
        while db
            .compact()
            .map_err(|e| StoreError::context(format!("cannot compact {}", path.display()), e))?
        {
        }
        drop(db);
        let after = size(path).map_err(io(format!("cannot read {}", path.display())))?;
        Ok((before, after))
    }

    /// Put the backup `from` in place of the store file `path` (closed: the
    /// daemon stopped). The file replaced is kept beside it, renamed
    /// `*.before-restore`.
    pub fn restore_file(from: &Path, path: &Path) -> Result<(), StoreError> {
        if !from.is_file() {
            return Err(StoreError::context(
                format!("no backup at {}", from.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        // A weft store this build reads (its format checked), and the file
        // in place not held by a daemon.
        drop(RedbStore::open(from)?);
        if path.exists() {
            drop(RedbStore::open(path)?);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
        }
        let tmp = path.with_extension(format!("restoring-{}", std::process::id()));
        std::fs::copy(from, &tmp).map_err(io(format!("cannot copy {}", from.display())))?;
        if path.exists() {
            let kept = path.with_extension("redb.before-restore");
            std::fs::rename(path, &kept).map_err(io(format!("cannot keep {}", path.display())))?;
        }
        std::fs::rename(&tmp, path).map_err(io(format!("cannot write {}", path.display())))
    }
}
