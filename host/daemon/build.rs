//! With the `console` feature, the console's built files are embedded: say
//! how to build them when they are missing, instead of a derive's error.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_CONSOLE").is_none() {
        return;
    }
    let dist = std::path::Path::new("../../console/dist");
    if !dist.join("index.html").exists() {
        panic!(
            "the `console` feature embeds the web console from console/dist, which is not \
             built: run `console/build.sh` first (it needs node and npm), or build without \
             `--features console`"
        );
    }
    // Rebuilt when the console is.
    println!("cargo::rerun-if-changed=../../console/dist");
}
