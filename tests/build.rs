//! Builds the test guests (`tests/guests/*`) and the example plugin to wasm
//! components, and exposes their paths to the tests as constants.
use std::fmt::Write;
use std::path::PathBuf;

const GUESTS: &[(&str, &str, &str)] = &[
    (
        "MISBEHAVE",
        "weft-guest-misbehave",
        "tests/guests/misbehave",
    ),
    (
        "BAD_SCHEMA",
        "weft-guest-bad-schema",
        "tests/guests/bad-schema",
    ),
    (
        "BAD_IMPORT",
        "weft-guest-bad-import",
        "tests/guests/bad-import",
    ),
    (
        "WIT_0_1_0",
        "weft-guest-wit-0-1-0",
        "tests/guests/wit-0-1-0",
    ),
    ("STORAGE", "weft-guest-storage", "tests/guests/storage"),
    ("FETCH", "weft-guest-fetch", "tests/guests/fetch"),
    (
        "PROVIDER_MISBEHAVE",
        "weft-guest-provider-misbehave",
        "tests/guests/provider-misbehave",
    ),
    (
        "EXAMPLE_PLUGIN",
        "weft-example-plugin",
        "examples/plugin-rust",
    ),
    (
        "EXAMPLE_PROVIDER",
        "weft-example-provider",
        "examples/provider-rust",
    ),
];

fn main() {
    let root = weft_guest_build::workspace_root();
    let dirs: Vec<PathBuf> = GUESTS.iter().map(|(_, _, d)| root.join(d)).collect();
    let dir_refs: Vec<&std::path::Path> = dirs.iter().map(PathBuf::as_path).collect();
    let packages: Vec<&str> = GUESTS.iter().map(|(_, p, _)| *p).collect();
    let built = weft_guest_build::build(&packages, &dir_refs);
    let mut code = String::new();
    for ((name, pkg, _), file) in GUESTS.iter().zip(&built) {
        writeln!(code, "/// The component built from `{pkg}`.").unwrap();
        writeln!(
            code,
            "pub const {name}: &str = {:?};",
            file.display().to_string()
        )
        .unwrap();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    writeln!(
        code,
        "/// Compiled-artifact cache shared by the tests (content-addressed, so safe to share)."
    )
    .unwrap();
    writeln!(
        code,
        "pub const CACHE_DIR: &str = {:?};",
        target.join("weft-test-cache").display().to_string()
    )
    .unwrap();
    writeln!(code, "/// The workspace root.").unwrap();
    writeln!(
        code,
        "pub const ROOT: &str = {:?};",
        root.display().to_string()
    )
    .unwrap();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guests.rs");
    std::fs::write(out, code).unwrap();
}
