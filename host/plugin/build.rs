//! Builds the standard task plugins (`plugins/*`) to wasm components and embeds
//! them in the host, so `weft` knows the standard tasks with no flags.
use std::fmt::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

const STANDARD: &[(&str, &str)] = &[
    ("std-text", "weft-plugin-text"),
    ("std-json", "weft-plugin-json"),
    ("std-math", "weft-plugin-math"),
    ("std-util", "weft-plugin-util"),
    ("std-ai", "weft-plugin-ai"),
    ("std-scalar", "weft-plugin-scalar"),
    ("std-string", "weft-plugin-string"),
    ("std-vector", "weft-plugin-vector"),
    ("std-image", "weft-plugin-image"),
    ("std-rag", "weft-plugin-rag"),
    ("std-net", "weft-plugin-net"),
];

fn main() {
    let root = weft_guest_build::workspace_root();
    let dirs: Vec<PathBuf> = STANDARD
        .iter()
        .map(|(_, pkg)| {
            root.join("plugins")
                .join(pkg.trim_start_matches("weft-plugin-"))
        })
        .collect();
    let dir_refs: Vec<&std::path::Path> = dirs.iter().map(PathBuf::as_path).collect();
    let packages: Vec<&str> = STANDARD.iter().map(|(_, p)| *p).collect();
    let built = weft_guest_build::build(&packages, &dir_refs);

    let mut code = String::from(
        "/// The standard plugins, built from `plugins/` by `build.rs`: (name, component bytes,\n\
         /// their SHA-256 in hex: hashed here, so a start neither hashes nor touches them).\n",
    );
    code.push_str("pub const STANDARD_PLUGINS: &[(&str, &[u8], &str)] = &[\n");
    for ((name, _), file) in STANDARD.iter().zip(&built) {
        let bytes = std::fs::read(file).unwrap();
        writeln!(
            code,
            "    ({name:?}, include_bytes!({:?}), {:?}),",
            file.display().to_string(),
            hex::encode(Sha256::digest(&bytes)),
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("standard_plugins.rs");
    std::fs::write(out, code).unwrap();
}
