//! Engine policy: how wasm is compiled and where instances live.
//!
//! Owns the wasmtime [`Engine`] configuration (pooling allocator probed at
//! start with a fallback, epoch interruption driven by a ticker thread, fuel,
//! no component-model concurrency), the compiled-artifact cache on disk, and the
//! semaphore that keeps instantiation within the pool. It must not know about
//! task types, graphs or runs.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::fair::{FairPermits, Permit};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of timeouts and of yielding
/// a CPU-bound guest back to the async runtime.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Instances that may exist at once (the pool's size). Task runs beyond this wait.
    pub max_instances: u32,
    /// The largest linear memory any plugin may be granted, in bytes. The pool
    /// reserves address space for it in every instance of the pool.
    pub max_memory_bytes: u64,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Instances one user's runs may hold at once (`None`: up to the pool);
    /// free instances go to the waiting user holding the fewest either way.
    pub max_instances_per_user: Option<u32>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            // 2 cores here, but tasks waiting on timers or I/O hold an instance too.
            max_instances: 256,
            // Per-plugin limits are lower (64 MiB by default); this is the ceiling
            // a manifest may raise them to.
            max_memory_bytes: 4 << 30,
            cache_dir: default_cache_dir(),
            max_instances_per_user: None,
        }
    }
}

/// `$WEFT_CACHE_DIR`, else `$XDG_CACHE_HOME/weft`, else `~/.cache/weft`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WEFT_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("weft"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/weft"))
}

/// The shared engine: compile, cache, and bound instantiation.
#[derive(Clone)]
pub struct WeftEngine {
    engine: Engine,
    pooling: bool,
    cache_dir: Option<PathBuf>,
    engine_hash: String,
    instances: Arc<FairPermits>,
}

impl std::fmt::Debug for WeftEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeftEngine")
            .field("pooling", &self.pooling)
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Fuel limits (`[limits] fuel`): every store gets fuel, unlimited unless
    // the plugin's manifest or the host sets a limit.
    config.consume_fuel(true);
    // WASI 0.2 tasks do not use component-model async; leaving it on costs ~4x
    // per host→guest call (WASMTIME-NOTES.md).
    config.concurrency_support(false);
    config
}

/// Instances whose memories are returned to the kernel together.
const DECOMMIT_BATCH: usize = 32;

/// Bytes of a linear memory reset in place rather than given back.
const MEMORY_KEEP_RESIDENT: usize = 256 << 10;
/// Bytes of a table reset in place rather than given back.
const TABLE_KEEP_RESIDENT: usize = 16 << 10;

impl WeftEngine {
    /// Build the engine. Tries the pooling allocator first and falls back to
    /// on-demand allocation when the address space for it cannot be reserved.
    pub fn new(options: &EngineOptions) -> Result<Self, wasmtime::Error> {
        let mut pool = PoolingAllocationConfig::new();
        let instances = options.max_instances.max(1);
        pool.total_component_instances(instances)
            // A Rust wasip2 component has a handful of core instances and one
            // or two memories; leave headroom for other toolchains.
            .total_core_instances(instances * 16)
            .max_core_instances_per_component(32)
            .total_memories(instances * 2)
            .max_memories_per_component(4)
            .total_tables(instances * 8)
            .max_tables_per_component(16)
            .total_stacks(instances)
            .max_memory_size(options.max_memory_bytes as usize)
            // Returning an instance's memory to the kernel (madvise) flushes
            // the TLB of every core running this process: one flush per
            // instance made a map of quick tasks spend most of its time in
            // the kernel once another thread (the store's committer) ran
            // beside it. Flush once per batch.
            .decommit_batch_size(DECOMMIT_BATCH.min(instances as usize))
            // A fresh instance's memory starts as a copy-on-write mapping of
            // the component's image, so every page the guest touches used to
            // cost a page fault, and every reset an madvise and a TLB flush.
            // Where the kernel has PAGEMAP_SCAN (Linux 6.7), the pages a guest
            // dirtied are copied back from the image instead, up to this many
            // bytes per memory; anything beyond is returned to the kernel as
            // before, so a large guest (a Python plugin) costs what it did.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
        let mut config = base_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let (engine, pooling) = match Engine::new(&config) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; allocating instances on demand");
                (Engine::new(&base_config())?, false)
            }
        };
        start_epoch_ticker(&engine);
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(WeftEngine {
            engine_hash: format!("{:016x}", hasher.finish()),
            engine,
            pooling,
            cache_dir: options.cache_dir.clone().filter(|dir| usable_cache(dir)),
            instances: FairPermits::new(
                instances as usize,
                options.max_instances_per_user.map(|n| n as usize),
            ),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether instances come from the pooling allocator.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// Wait for a free instance permit for `user` (a run's owner; `""` for
    /// the host itself), shared fairly between users ([`crate::fair`]). Hold
    /// it while the instance lives.
    pub async fn instance_permit(&self, user: &str) -> Permit {
        self.instances.acquire(user).await
    }

    /// Compile `bytes`, or load the artifact compiled earlier from the cache:
    /// then `bytes` are not read at all. `digest` must be their SHA-256 (a
    /// [`crate::PluginSource`]'s is), as the cache is keyed by it.
    pub fn load_component(&self, bytes: &[u8], digest: &str) -> Result<Component, wasmtime::Error> {
        let Some(dir) = &self.cache_dir else {
            return self.compiled(&compile(bytes)?);
        };
        let path = dir.join(format!("{digest}-{}.cwasm", self.engine_hash));
        if path.exists() && trusted(&path).is_ok() {
            // SAFETY: the file is named by the hash of the wasm it was compiled
            // from (`digest`, as this function requires) and of this engine's configuration, and only this function
            // writes files with such names (atomically, by rename), so it holds
            // an artifact this engine produced for exactly these bytes. No one
            // but this user could have replaced it: the folder and the file
            // are this user's and writable by no one else (`trusted`).
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => {
                    tracing::debug!(path = %path.display(), "loaded compiled component from the cache");
                    return Ok(c);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unreadable compiled artifact")
                }
            }
        }
        let artifact = compile(bytes)?;
        if let Err(e) = write_private(dir, &path, &artifact) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot cache compiled component");
            return self.compiled(&artifact);
        }
        tracing::debug!(path = %path.display(), "compiled component and cached it");
        // From the file, as a later start would: its code is then the
        // file's pages, which the kernel may drop and read back, not memory
        // of this process's own.
        // SAFETY: written just now by this function, from `compile`'s
        // artifact, in the folder that `trusted` keeps this user's alone.
        unsafe { Component::deserialize_file(&self.engine, &path) }
    }

    /// The component of `artifact`, which [`compile`] returned.
    fn compiled(&self, artifact: &[u8]) -> Result<Component, wasmtime::Error> {
        // SAFETY: `compile` made it, with this engine's settings.
        unsafe { Component::deserialize(&self.engine, artifact) }
    }

    /// The description kept for the component with SHA-256 `digest`
    /// ([`crate::described`]), if the cache has one.
    pub fn description(&self, digest: &str) -> Option<String> {
        let path = self.description_path(digest)?;
        trusted(&path).ok()?;
        std::fs::read_to_string(&path).ok()
    }

    /// Keep `text` as the description of the component with SHA-256 `digest`.
    pub fn keep_description(&self, digest: &str, text: &str) {
        let (Some(dir), Some(path)) = (&self.cache_dir, self.description_path(digest)) else {
            return;
        };
        if let Err(e) = write_private(dir, &path, text.as_bytes()) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot keep a plugin's description");
        }
    }

    fn description_path(&self, digest: &str) -> Option<PathBuf> {
        let name = format!(
            "{digest}-{}.describe-{}.json",
            self.engine_hash,
            crate::described::FORMAT
        );
        self.cache_dir.as_ref().map(|dir| dir.join(name))
    }

    /// Delete the compiled artifacts of the component with SHA-256 `digest`
    /// (of any engine configuration) from the cache: it is no longer
    /// needed. Another process sharing the cache that still loads it just
    /// compiles it again.
    pub fn forget_compiled(&self, digest: &str) {
        let Some(dir) = &self.cache_dir else { return };
        let prefix = format!("{digest}-");
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.ends_with(".cwasm") || name.ends_with(".json");
            if name.starts_with(&prefix) && ours {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Create the cache folder if needed (private to this user) and check that
/// it may be trusted; if not, say why and run without the cache.
fn usable_cache(dir: &Path) -> bool {
    let created = {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)
    };
    let checked = created
        .map_err(|e| e.to_string())
        .and_then(|()| trusted(dir));
    match checked {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!(dir = %dir.display(), %why, "not using the compiled-component cache: plugins are compiled at every start");
            false
        }
    }
}

/// Whether `path` may hold compiled code for this process to load: owned by
/// this user (or root), not a symlink, and writable by no one else. Loading
/// an artifact runs its native code, so a cache that others can write would
/// let them run code as this user.
#[cfg(unix)]
fn trusted(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() {
        Err(format!("{} is a symbolic link", path.display()))
    } else if meta.uid() != me && meta.uid() != 0 {
        Err(format!(
            "{} belongs to another user (uid {})",
            path.display(),
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Err(format!(
            "{} is writable by other users (mode {:o})",
            path.display(),
            meta.mode() & 0o777
        ))
    } else {
        Ok(())
    }
}

#[cfg(not(unix))]
fn trusted(_: &Path) -> Result<(), String> {
    Ok(())
}

/// Compile `bytes` into an artifact for an engine of [`base_config`]'s
/// settings (the pooling allocator does not change what is compiled), by
/// the [`Compiler`] of the compiles under way.
fn compile(bytes: &[u8]) -> Result<Vec<u8>, wasmtime::Error> {
    let compiler = Compiler::shared()?;
    compiler
        .threads
        .install(|| compiler.engine.precompile_component(bytes))
}

/// An engine and threads that compile, shared by the compiles under way and
/// ended with the last of them. The memory a compile allocates and frees
/// stays with the threads that freed it, and Cranelift keeps a compiler
/// context per thread for as long as its engine lives: compiled by the
/// shared engine on long-lived threads, the standard plugins left an idle
/// daemon at ~210 MB instead of ~105.
struct Compiler {
    engine: Engine,
    threads: rayon::ThreadPool,
}

impl Compiler {
    fn shared() -> Result<Arc<Compiler>, wasmtime::Error> {
        static UNDER_WAY: std::sync::Mutex<std::sync::Weak<Compiler>> =
            std::sync::Mutex::new(std::sync::Weak::new());
        let mut under_way = UNDER_WAY.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(compiler) = under_way.upgrade() {
            return Ok(compiler);
        }
        let threads = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("weft-compile-{i}"))
            .build()
            .map_err(|e| wasmtime::format_err!("cannot start the compiler's threads: {e}"))?;
        let compiler = Arc::new(Compiler {
            engine: Engine::new(&base_config())?,
            threads,
        });
        *under_way = Arc::downgrade(&compiler);
        Ok(compiler)
    }
}

/// Write `bytes` to `path` in the cache folder `dir`, readable by this user
/// alone, atomically (by rename).
fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tempfile_in(dir)?;
    std::fs::write(&tmp, bytes)?;
    #[cfg(unix)]
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    std::fs::rename(&tmp, path)
}

fn tempfile_in(dir: &Path) -> std::io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(dir.join(format!(".tmp-{}-{nanos}", std::process::id())))
}

/// Advance the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("weft-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("cannot start the epoch thread");
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The smallest component: the header of an empty one.
    const EMPTY: &[u8] = b"\0asm\x0d\0\x01\0";
    /// Its SHA-256.
    const EMPTY_SHA256: &str = "24eaf3439a60c96764c4f2c92a0a81b52bd4fe5d5b91f090184a0f6486b1bf29";

    fn engine(cache: &Path) -> WeftEngine {
        WeftEngine::new(&EngineOptions {
            max_instances: 2,
            max_memory_bytes: 1 << 20,
            cache_dir: Some(cache.to_path_buf()),
            max_instances_per_user: None,
        })
        .unwrap()
    }

    fn artifacts(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("cwasm".as_ref()))
            .count()
    }

    #[test]
    fn a_private_cache_is_used_and_one_others_can_write_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        engine(&private)
            .load_component(EMPTY, EMPTY_SHA256)
            .unwrap();
        assert_eq!(artifacts(&private), 1, "cached");
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "created private");

        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        engine(&shared).load_component(EMPTY, EMPTY_SHA256).unwrap();
        assert_eq!(
            artifacts(&shared),
            0,
            "a world-writable cache is neither read nor written"
        );
    }

    #[test]
    fn an_artifact_others_can_write_is_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        e.load_component(EMPTY, EMPTY_SHA256).unwrap();
        let artifact = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::set_permissions(&artifact, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(
            trusted(&artifact)
                .unwrap_err()
                .contains("writable by other users")
        );
        std::fs::write(&artifact, b"not native code").unwrap();
        // Compiled afresh instead of loading the tampered file.
        assert!(e.load_component(EMPTY, EMPTY_SHA256).is_ok());
    }

    #[test]
    fn a_description_is_kept_private_read_back_and_forgotten_with_its_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        assert_eq!(e.description(EMPTY_SHA256), None);
        e.load_component(EMPTY, EMPTY_SHA256).unwrap();
        e.keep_description(EMPTY_SHA256, "[]");
        assert_eq!(e.description(EMPTY_SHA256).as_deref(), Some("[]"));
        let path = e.description_path(EMPTY_SHA256).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(e.description(EMPTY_SHA256), None, "others could write it");
        e.forget_compiled(EMPTY_SHA256);
        assert_eq!(artifacts(dir.path()), 0);
        assert!(!path.exists(), "forgotten with the artifact");
    }
}
