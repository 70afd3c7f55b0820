//! Compiles wasm guest crates of this workspace to `wasm32-wasip2` components from
//! a build script, the way wasmtime's `test-programs` are built: the guests are
//! ordinary crates and every build of the host compiles them from source (cargo
//! makes it incremental), so no `.wasm` is ever checked in.
//!
//! The nested `cargo` writes into its own target directory (`<target>/guests`), so
//! it never waits on the lock of the outer build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root, found from the calling crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    let mut dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run from a build script"));
    while !dir.join("rust-toolchain.toml").exists() {
        if !dir.pop() {
            panic!("no rust-toolchain.toml above CARGO_MANIFEST_DIR");
        }
    }
    dir
}

/// Build the named guest crates (package names) in release-for-guests mode and
/// return the path of each one's component, in the same order.
///
/// `dirs` are the crates' folders, watched for changes along with the SDK and WIT.
pub fn build(packages: &[&str], dirs: &[&Path]) -> Vec<PathBuf> {
    let root = workspace_root();
    for dir in dirs {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    // The SDK, the WIT, and the library crates the standard plugins share
    // (not in `dirs`: they are no plugins of their own).
    for watched in [
        "sdk/rust",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
        "plugins/ask",
        "plugins/js",
        "plugins/pixels",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("guests");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "guest"])
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the host build (clippy's driver, target-cpu=native, ...)
        // must not leak into the guests'.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    for p in packages {
        cmd.args(["-p", p]);
    }
    let status = cmd
        .status()
        .expect("failed to start cargo for the wasm guests");
    if !status.success() {
        panic!(
            "building the wasm guests {packages:?} failed (is the target installed? run `rustup target add wasm32-wasip2`)"
        );
    }
    packages
        .iter()
        .map(|p| {
            let file = target_dir
                .join("wasm32-wasip2/guest")
                .join(format!("{}.wasm", p.replace('-', "_")));
            assert!(
                file.exists(),
                "guest {p} built but {} is missing",
                file.display()
            );
            file
        })
        .collect()
}
