//! Test support: paths of the wasm test guests (built from source by
//! `build.rs`) and helpers to lay out plugin folders.

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// A temporary plugins folder.
pub struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    /// An empty folder.
    pub fn new() -> Self {
        PluginDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Copy the component at `wasm` into the folder as `NAME.wasm`.
    pub fn add(self, name: &str, wasm: &str) -> Self {
        std::fs::copy(wasm, self.path().join(format!("{name}.wasm"))).expect("copy component");
        self
    }

    /// Write `NAME.toml` (a manifest) into the folder.
    pub fn manifest(self, name: &str, toml: &str) -> Self {
        std::fs::write(self.path().join(format!("{name}.toml")), toml).expect("write manifest");
        self
    }

    /// Write an arbitrary file into the folder.
    pub fn file(self, name: &str, bytes: &[u8]) -> Self {
        std::fs::write(self.path().join(name), bytes).expect("write file");
        self
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for PluginDir {
    fn default() -> Self {
        Self::new()
    }
}

/// The compiled-artifact cache folder for tests.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(CACHE_DIR)
}

/// A fresh, empty database on the test PostgreSQL server
/// (`WEFT_TEST_DATABASE_URL`, which `tests/run.sh` provides); its URL.
pub async fn fresh_postgres() -> String {
    let Ok(admin) = std::env::var("WEFT_TEST_DATABASE_URL") else {
        panic!(
            "WEFT_TEST_DATABASE_URL is not set: run tests/run.sh (it starts a throwaway \
             PostgreSQL), or point it at a server you own"
        );
    };
    let name = format!("weft_test_{}", uuid::Uuid::now_v7().simple());
    // One connection, so a failure says what it is (a pool says only that
    // it timed out).
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("the test PostgreSQL at {admin} is not reachable: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE");
    let (base, _) = admin.rsplit_once('/').expect("URL ends with /DATABASE");
    format!("{base}/{name}")
}
